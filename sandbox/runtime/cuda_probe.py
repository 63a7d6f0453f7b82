"""The sandboxed CUDA probe: run as an idea (its ``run``) in the same sandbox a GPU seed gets,
before any seed, so a broken GPU set-up is one line naming the missing piece instead of N failed
seeds. Self-contained (stdlib and torch): it checks, in the order the driver needs them, the
device nodes, the sysfs the driver reads, the driver library, a CUDA build of torch, and then
one tiny CUDA op."""

from __future__ import annotations

import ctypes
import glob
import os
import re
from typing import Any

import numpy as np

CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm")
SYSFS = ("/sys/module/nvidia", "/sys/bus/pci/devices", "/sys/devices/system/node")
DRIVER_LIB = "libcuda.so.1"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def missing_nodes() -> str | None:
    for node in CONTROL_NODES:
        if not os.path.exists(node):
            return (f"device node {node} is missing in the sandbox (the host has no NVIDIA driver loaded, "
                    "or it was not passed through)")
    if not [n for n in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia\d+", n)]:
        return "no GPU device node /dev/nvidiaN in the sandbox (the chosen GPU's node was not passed through)"
    return None


def missing_sysfs() -> str | None:
    for path in SYSFS:
        if not os.path.exists(path):
            return f"sysfs {path} is missing in the sandbox (the driver reads it during cuInit)"
    if not os.listdir("/sys/bus/pci/devices"):
        return "sysfs /sys/bus/pci/devices is empty in the sandbox"
    return None


def missing_library() -> str | None:
    try:
        ctypes.CDLL(DRIVER_LIB)
    except OSError as exc:
        return (f"the driver library {DRIVER_LIB} does not load in the sandbox ({_first_line(exc)}): "
                "its directory was not found by `ldconfig -p` on the host")
    return None


def failing_op() -> str | None:
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build: install a CUDA build of torch"
    try:
        x = torch.ones(8, device="cuda")
        value = float((x * 2).sum().item())
        torch.cuda.synchronize()
    except Exception as exc:  # CUDA's own error: name it, one line
        return f"a CUDA op fails in the sandbox: {_first_line(exc)}"
    return None if value == 16.0 else f"a CUDA op returned {value}, not 16.0"


def missing_piece() -> str | None:
    """The first piece a CUDA process lacks here, as one line; None when a CUDA op works."""
    for check in (missing_nodes, missing_sysfs, missing_library, failing_op):
        problem = check()
        if problem:
            return problem
    return None


def run(ctx: Any) -> np.ndarray:
    """The idea entry point: the probe runs as a seed would, and reports its verdict."""
    problem = missing_piece()
    ctx.report("cuda_probe", problem or "ok")
    if problem is None:
        import torch

        ctx.report("cuda_device", torch.cuda.get_device_name(0))
    return np.zeros(ctx.card.n_test, dtype=np.int64)
