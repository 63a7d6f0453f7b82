"""One seed of an idea, run by the warm worker (sandbox.runtime.worker) in a forked child.

Imports the idea file, calls ``run(ctx)`` and sends ``predictions.npy`` (no pickle) and
``diagnostics.json`` (or ``error.json``) to the parent over the run's result pipe: no output
directory exists, so nothing can reserve disk, and nothing written after this process ends is
read, and the last frame is ``end``, sent only when this process returns from the idea: the
parent scores nothing that arrives without it (an idea that left run(ctx) by ``os._exit``, a
leftover child writing after this process ended). The parent re-validates everything. Exit codes:
0 ok, 2 the idea raised, 3 the idea broke the contract.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import traceback

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


def send(fd: int, name: str, data: bytes) -> None:
    """One frame on the result pipe: ``NAME LENGTH\n`` then the bytes."""
    view = memoryview(f"{name} {len(data)}\n".encode() + data)
    while view:
        view = view[os.write(fd, view):]


def _write_error(out: int, kind: str, message: str, tb: str) -> None:
    payload = {"kind": kind, "message": message[:2000], "traceback": tb[-8000:]}
    send(out, "error.json", json.dumps(payload).encode())


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


END_FRAME = "end"


def run_job(job: JobSpec, result_fd: int) -> int:
    """Run the idea for ``job``; send what it returned to the file descriptor ``result_fd``,
    then the end frame."""
    code = _run_job(job, result_fd)
    send(result_fd, END_FRAME, b"")
    return code


def _run_job(job: JobSpec, result_fd: int) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    _set_threads(job.threads)
    ctx = IdeaContext.from_job(job)
    try:
        idea = _load_idea(job.idea_path)
        run = getattr(idea, "run", None)
        if not callable(run):
            _write_error(result_fd, "contract", "the idea file defines no run(ctx) function", "")
            return EXIT_CONTRACT
        predictions = run(ctx)
    except Exception as exc:  # the idea's own failure: report it, do not crash the harness
        _write_error(result_fd, "error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return EXIT_IDEA_ERROR
    try:
        array = np.asarray(predictions)
        if array.dtype == object:
            raise TypeError("predictions are not numeric")
    except Exception as exc:
        _write_error(result_fd, "contract", f"run(ctx) returned an unusable value: {exc}", "")
        return EXIT_CONTRACT
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    send(result_fd, "predictions.npy", buf.getvalue())
    diagnostics = {k: v for k, v in ctx.diagnostics.items()}
    send(result_fd, "diagnostics.json", json.dumps(diagnostics, default=str).encode())
    if ctx.figures:  # an analysis run's PNGs: names first, then one frame each
        send(result_fd, "figures.json", json.dumps([name for name, _ in ctx.figures]).encode())
        for k, (_, data) in enumerate(ctx.figures):
            send(result_fd, f"figure-{k}.png", data)
    return 0
