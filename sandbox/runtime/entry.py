"""The idea process: ``python -m sandbox.runtime.entry JOB.json``.

Imports the idea file, calls ``run(ctx)`` and writes ``predictions.npy`` (no pickle) and
``diagnostics.json`` to the job's output directory. The parent re-validates everything.
Exit codes: 0 ok, 2 the idea raised, 3 the idea broke the contract.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import traceback
from pathlib import Path

import numpy as np

from sandbox.runtime.context import IdeaContext, JobSpec

EXIT_IDEA_ERROR = 2
EXIT_CONTRACT = 3


def _load_idea(path: str) -> object:
    spec = importlib.util.spec_from_file_location("idea", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["idea"] = module
    spec.loader.exec_module(module)
    return module


def _write_error(out_dir: Path, kind: str, message: str, tb: str) -> None:
    payload = {"kind": kind, "message": message[:2000], "traceback": tb[-8000:]}
    (out_dir / "error.json").write_text(json.dumps(payload))


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def main(argv: list[str]) -> int:
    job = JobSpec.model_validate_json(Path(argv[1]).read_text())
    out_dir = Path(job.out_dir)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    _set_threads(job.threads)
    ctx = IdeaContext.from_job(job)
    try:
        idea = _load_idea(job.idea_path)
        run = getattr(idea, "run", None)
        if not callable(run):
            _write_error(out_dir, "contract", "the idea file defines no run(ctx) function", "")
            return EXIT_CONTRACT
        predictions = run(ctx)
    except Exception as exc:  # the idea's own failure: report it, do not crash the harness
        _write_error(out_dir, "error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return EXIT_IDEA_ERROR
    try:
        array = np.asarray(predictions)
        if array.dtype == object:
            raise TypeError("predictions are not numeric")
    except Exception as exc:
        _write_error(out_dir, "contract", f"run(ctx) returned an unusable value: {exc}", "")
        return EXIT_CONTRACT
    np.save(out_dir / "predictions.npy", array, allow_pickle=False)
    diagnostics = {k: v for k, v in ctx.diagnostics.items()}
    (out_dir / "diagnostics.json").write_text(json.dumps(diagnostics, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
