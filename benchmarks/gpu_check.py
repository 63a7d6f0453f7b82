"""GPU check (prints figures; not a test): the one script to run on a lent GPU. The sandboxed
CUDA probe, then one vanilla seed of the reference preset (weak Qwen1.5-0.5B-Chat, strong
Qwen3-4B-Base, vanilla LoRA r=32) through the sandbox: seconds, peak GPU memory of the idea
process, training tokens/s, PGR. Without a GPU it exits 2 with one line.

    .venv/bin/python benchmarks/gpu_check.py [--task DIR] [--weak DIR|hf:ID] [--strong DIR|hf:ID]
        [--split-sizes 200,400,200,200] [--isolation bwrap] [--dry-run]

--task: a task directory in the preference or binary schema with its own task.json (e.g.
{"preset": "qwen-reference"}); default: a small binary arithmetic task on the preset's models
(--weak/--strong override them). The models must be on the machine already (hf: ids in the
Hugging Face cache, or local directories).

--dry-run: everything that can be checked without a GPU, as JSON: the models present (and the
mounts a seed gets for them), torch and the library floors, the GPUs the driver lists and how
the host's choice resolves, each GPU seed's bubblewrap mounts, its limits, and whether bubblewrap
starts here. Exit 0 when nothing a real run needs is missing, else 2 (the JSON says what).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.errors import HarnessError  # noqa: E402
from sandbox.isolation.devices import GpuHost, bwrap_args, driver_lib_dirs, host_gpus  # noqa: E402

FLOORS = {"transformers": "4.56", "peft": "0.15"}


def no_gpu_reason() -> str | None:
    try:
        gpus = host_gpus()
    except HarnessError as exc:
        return str(exc)
    if not gpus:
        return "no GPU visible (the NVIDIA driver lists none, or CUDA_VISIBLE_DEVICES is empty)"
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


def task_dir(args: argparse.Namespace, tmp: Path) -> Path:
    if args.task is not None:
        return args.task
    arithmetic_task(tmp)  # the built-in task, on the reference preset's models
    config = {"name": "gpu-check", "preset": "qwen-reference"}
    config.update({k: v for k, v in (("weak_model", args.weak), ("strong_model", args.strong)) if v})
    (tmp / "task.json").write_text(json.dumps(config))
    return tmp


def _version_ok(name: str) -> dict[str, Any]:
    from packaging.version import Version

    try:
        have = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return {"installed": None, "floor": FLOORS[name], "ok": False}
    return {"installed": have, "floor": FLOORS[name], "ok": Version(have) >= Version(FLOORS[name])}


def check_models(spec: Any) -> tuple[dict[str, Any], list[str]]:
    from sandbox.tasks.models import model_dir, model_family, model_mounts

    out, missing = {}, []
    for role, ref in (("weak", spec.weak_model), ("strong", spec.strong_model)):
        try:
            path, gguf = model_dir(ref)
            out[role] = {"ref": ref, "path": str(path), "family": model_family(path, gguf),
                         "mounts": model_mounts(path)}
        except HarnessError as exc:
            out[role] = {"ref": ref, "missing": str(exc)}
            missing.append(f"{role} model: {exc}")
    return out, missing


def seed_argv(passthrough: Any) -> list[str]:
    """The full bubblewrap argv of a worker holding one seed with ``passthrough``."""
    from sandbox.isolation.base import Limits, RunDirs, RunPlan
    from sandbox.isolation.registry import get_isolation

    iso = get_isolation("bwrap")
    with tempfile.TemporaryDirectory(prefix="aar-gpu-argv-") as tmp:
        root = Path(tmp) / "run"
        root.mkdir()
        plan = RunPlan(public_dir=Path(tmp), slots=["k0"], limits=Limits(), dirs=RunDirs(root),
                       passthrough=passthrough)
        iso.prepare(plan)
        argv = iso.command(plan)
        for fd in iso.extra_fds(plan):
            os.close(fd)
    return argv


def check_gpus(model_mounts: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The GPUs the driver lists, the host's choice resolved, and each seed's mounts and argv."""
    from sandbox.isolation.bwrap import probe
    from sandbox.scoring.evaluator import GPU_RUN_ADDRESS_BYTES, gpu_seed_memory

    host, missing = GpuHost(), []
    out: dict[str, Any] = {"nvml": host.nvml is not None, "driver_libs": driver_lib_dirs(),
                           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                           "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER")}
    inventory = host.inventory()
    out["gpus"] = [g.model_dump() for g in inventory]
    choices = host.visible()
    if not choices:
        missing.append("no GPU: the NVIDIA driver lists none here (or CUDA_VISIBLE_DEVICES is empty)")
    seeds = []
    for entry in choices:
        try:
            choice = host.resolve(entry, inventory)
            p = host.passthrough(choice).with_paths(*model_mounts)
            seeds.append({"asked": entry, "gpu": choice.label(), "env": p.env, "bwrap_args": bwrap_args(p)})
        except HarnessError as exc:
            seeds.append({"asked": entry, "error": str(exc)})
            missing.append(str(exc))
    out["seeds"] = seeds
    ok, why = probe(os.geteuid() == 0)
    if ok:  # the first GPU seed's whole argv; without a GPU, a seed's with the model mounts only
        from sandbox.isolation.devices import Passthrough

        first = next((s for s in seeds if "error" not in s), None)
        pt = (host.passthrough(host.resolve(first["asked"], inventory)).with_paths(*model_mounts) if first
              else Passthrough().with_paths(*model_mounts))
        out["seed_argv"] = seed_argv(pt)
    if choices and not out["driver_libs"]:
        missing.append("no NVIDIA driver library (libcuda.so) in `ldconfig -p`")
    n = max(1, len(choices))
    out["seed_limits"] = {"threads": max(1, (os.cpu_count() or 1) // n), "memory_gib": gpu_seed_memory(n) / 2**30,
                          "address_space_gib": GPU_RUN_ADDRESS_BYTES / 2**30}
    out["bwrap"] = "starts here" if ok else why
    if not ok:
        missing.append(why)
    return out, missing


def dry_run(args: argparse.Namespace) -> int:
    import torch

    from sandbox.tasks import SplitSizes, get_task

    report: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                              "cuda_available": torch.cuda.is_available(),
                              "versions": {n: _version_ok(n) for n in FLOORS}}
    missing = [f"{n} {v['installed']} is below the floor {v['floor']}" for n, v in report["versions"].items()
               if not v["ok"]]
    if torch.version.cuda is None:
        missing.append(f"torch {torch.__version__} is a CPU build: install a CUDA build of torch")
    with tempfile.TemporaryDirectory(prefix="aar-gpu-check-") as tmp:
        try:
            spec = get_task(str(task_dir(args, Path(tmp))), SplitSizes.parse(args.split_sizes))
        except HarnessError as exc:
            print(f"gpu_check: {exc}", file=sys.stderr)
            return 1
        report["task"] = {"name": spec.name, "kind": spec.kind, "lora": spec.lora, "max_len": spec.max_len}
        report["models"], lacking = check_models(spec)
        missing += lacking
    strong = report["models"].get("strong", {})
    report["gpu"], lacking = check_gpus(strong.get("mounts", []))
    missing += lacking
    report["missing"] = missing
    print(json.dumps(report, indent=1))
    return 0 if not missing else 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=Path)
    ap.add_argument("--weak")
    ap.add_argument("--strong")
    ap.add_argument("--split-sizes", default="200,400,200,200")
    ap.add_argument("--isolation", default="bwrap")
    ap.add_argument("--dry-run", action="store_true", help="check what can be checked without a GPU")
    args = ap.parse_args()
    if args.dry_run:
        return dry_run(args)
    reason = no_gpu_reason()
    if reason:
        print(f"gpu_check: {reason}", file=sys.stderr)
        return 2
    from sandbox.baseline_ideas import baseline_path
    from sandbox.cache.task_cache import open_cache
    from sandbox.scoring.evaluator import Evaluator
    from sandbox.tasks import SplitSizes, get_task

    with tempfile.TemporaryDirectory(prefix="aar-gpu-check-") as tmp:
        try:
            spec = get_task(str(task_dir(args, Path(tmp))), SplitSizes.parse(args.split_sizes))
            started = time.monotonic()
            cache = open_cache(spec, n_weak_seeds=1, device="cuda")
            build_s = time.monotonic() - started
            evaluator = Evaluator(cache, isolation=args.isolation, device="cuda", time_budget_s=3600)
            started = time.monotonic()
            evaluator.check_gpus()
            probe_s = time.monotonic() - started
            print(f"gpu_check: CUDA probe passed in the {args.isolation} sandbox ({probe_s:.1f} s)", flush=True)
            result = evaluator.evaluate(baseline_path("ft_vanilla"), [0], compare_vanilla=False)
        except HarnessError as exc:
            print(f"gpu_check: {exc}", file=sys.stderr)
            return 1
    seed = result.seeds[0]
    d, b = seed.diagnostics, cache.baselines()
    train_s, tokens = d.get("train_s"), d.get("train_tokens")
    print(json.dumps({
        "task": spec.name, "strong": spec.strong_model, "weak": spec.weak_model, "status": seed.status,
        "error": seed.error, "cache_build_s": round(build_s, 1), "probe_s": round(probe_s, 1),
        "vanilla_seed_s": round(seed.runtime_s, 1), "peak_gpu_mb": d.get("peak_gpu_mb"),
        "train_tokens": tokens, "tokens_per_s": round(tokens / train_s, 1) if tokens and train_s else None,
        "weak_dev": b.weak_dev.mean, "ceiling_dev": b.ceiling_dev.mean, "dev_acc": seed.dev_acc, "pgr": seed.pgr,
    }, indent=1))
    return 0 if seed.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
