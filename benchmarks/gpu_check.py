"""GPU check (prints figures; not a test): one vanilla seed of the reference preset
(weak Qwen1.5-0.5B-Chat, strong Qwen3-4B-Base, vanilla LoRA r=32) on a GPU, through the sandbox:
seconds, peak GPU memory of the idea process, PGR. Without a GPU it exits 2 with one line.

    .venv/bin/python benchmarks/gpu_check.py [--task DIR] [--weak DIR|hf:ID] [--strong DIR|hf:ID]
        [--split-sizes 200,400,200,200] [--isolation bwrap]

--task: a task directory in the preference or binary schema with its own task.json (e.g.
{"preset": "qwen-reference"}); default: a small binary arithmetic task on the preset's models
(--weak/--strong override them). The models must be on the machine already (hf: ids in the
Hugging Face cache, or local directories).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.errors import HarnessError  # noqa: E402
from sandbox.isolation.devices import host_gpus  # noqa: E402


def no_gpu_reason() -> str | None:
    if not host_gpus():
        return "no GPU visible (no /dev/nvidiaN node, or CUDA_VISIBLE_DEVICES is empty)"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} cannot use the GPU (a CPU build?): install a CUDA build of torch"
    return None


def arithmetic_task(directory: Path) -> None:
    """A binary task: is this the sum? (question/choice/label rows)."""
    rows = []
    for a in range(10, 60):
        for b in range(3, 13):
            rows.append({"question": f"What is {a} plus {b}?", "choice": str(a + b), "label": True})
            rows.append({"question": f"What is {a} plus {b}?", "choice": str(a + b + (b % 3) + 1), "label": False})
    (directory / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=Path)
    ap.add_argument("--weak")
    ap.add_argument("--strong")
    ap.add_argument("--split-sizes", default="200,400,200,200")
    ap.add_argument("--isolation", default="bwrap")
    args = ap.parse_args()
    reason = no_gpu_reason()
    if reason:
        print(f"gpu_check: {reason}", file=sys.stderr)
        return 2
    from sandbox.baseline_ideas import baseline_path
    from sandbox.cache.task_cache import open_cache
    from sandbox.scoring.evaluator import Evaluator
    from sandbox.tasks import SplitSizes, get_task

    with tempfile.TemporaryDirectory(prefix="aar-gpu-check-") as tmp:
        task_dir = args.task or Path(tmp)
        if args.task is None:  # the built-in task, on the reference preset's models
            arithmetic_task(task_dir)
            config = {"name": "gpu-check", "preset": "qwen-reference"}
            config.update({k: v for k, v in (("weak_model", args.weak), ("strong_model", args.strong)) if v})
            (task_dir / "task.json").write_text(json.dumps(config))
        try:
            spec = get_task(str(task_dir), SplitSizes.parse(args.split_sizes))
            started = time.monotonic()
            cache = open_cache(spec, n_weak_seeds=1, device="cuda")
            build_s = time.monotonic() - started
            result = Evaluator(cache, isolation=args.isolation, device="cuda", time_budget_s=3600).evaluate(
                baseline_path("ft_vanilla"), [0], compare_vanilla=False)
        except HarnessError as exc:
            print(f"gpu_check: {exc}", file=sys.stderr)
            return 1
    seed = result.seeds[0]
    b = cache.baselines()
    print(json.dumps({
        "task": spec.name, "strong": spec.strong_model, "weak": spec.weak_model, "status": seed.status,
        "error": seed.error, "cache_build_s": round(build_s, 1), "vanilla_seed_s": round(seed.runtime_s, 1),
        "peak_gpu_mb": seed.diagnostics.get("peak_gpu_mb"), "weak_dev": b.weak_dev.mean,
        "ceiling_dev": b.ceiling_dev.mean, "dev_acc": seed.dev_acc, "pgr": seed.pgr,
    }, indent=1))
    return 0 if seed.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
