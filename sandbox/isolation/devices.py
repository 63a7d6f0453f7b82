"""What a run needs from the host beyond the standard sandbox: the student's read-only weights
and, on a GPU, the device nodes of the GPUs the run is given, the CUDA driver libraries and a
matching ``CUDA_VISIBLE_DEVICES``. Isolations turn a :class:`Passthrough` into mounts and env.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import HarnessError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
# Control nodes every CUDA process opens, whichever GPU it uses.
NVIDIA_CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
DRIVER_LIBS = ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so")
_GPU_NODE = re.compile(r"/dev/nvidia(\d+)$")


@dataclass(frozen=True)
class Passthrough:
    """Host resources one run may use. Empty by default: a CPU run with no extra mounts."""

    ro_paths: tuple[str, ...] = ()  # bound read-only at the same path inside the sandbox
    device_nodes: tuple[str, ...] = ()  # character devices bound read-write (GPU nodes)
    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES
    device: str = "cpu"  # what the idea's ctx.student() trains on

    def with_paths(self, *paths: str) -> Passthrough:
        new = tuple(p for p in paths if p and p not in self.ro_paths)
        return Passthrough(self.ro_paths + new, self.device_nodes, dict(self.env), self.device)


def bwrap_args(p: Passthrough | None) -> list[str]:
    """bwrap arguments for ``p``; they must come after ``--dev /dev`` in the argv."""
    if p is None:
        return []
    args: list[str] = []
    for path in p.ro_paths:
        args += ["--ro-bind", path, path]
    for node in p.device_nodes:
        args += ["--dev-bind", node, node]
    return args


def host_gpus() -> list[int]:
    """GPU indices this process may use: the host's CUDA_VISIBLE_DEVICES if it lists indices,
    else every /dev/nvidiaN node."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", visible or "x"):
        return [int(x) for x in visible.split(",")]
    if visible is not None and not visible.strip():
        return []
    nodes = [int(m.group(1)) for n in glob.glob("/dev/nvidia*") if (m := _GPU_NODE.match(n))]
    return sorted(nodes)


def driver_lib_dirs(ldconfig_output: str | None = None) -> list[str]:
    """Directories holding the NVIDIA driver's user-space libraries (libcuda etc.), from the
    dynamic linker's cache. Torch's own CUDA runtime ships inside its wheels (already mounted)."""
    if ldconfig_output is None:
        try:
            ldconfig_output = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                                             timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
    dirs = []
    for line in ldconfig_output.splitlines():
        path = line.rsplit("=>", 1)[-1].strip()
        if any(Path(path).name.startswith(lib) for lib in DRIVER_LIBS):
            dirs.append(str(Path(os.path.realpath(path)).parent))
    return sorted(set(dirs))


def gpu_passthrough(gpus: list[int], lib_dirs: list[str] | None = None) -> Passthrough:
    """Only the named GPUs' nodes (plus the control nodes), the driver libraries and a
    ``CUDA_VISIBLE_DEVICES`` naming exactly those GPUs."""
    nodes = [f"/dev/nvidia{i}" for i in gpus]
    nodes += [n for n in NVIDIA_CONTROL_NODES if os.path.exists(n)]
    libs = driver_lib_dirs() if lib_dirs is None else lib_dirs
    return Passthrough(ro_paths=tuple(libs), device_nodes=tuple(nodes),
                       env={"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}, device="cuda")


def resolve_device(requested: str) -> str:
    """'cpu' or 'cuda' for ``--device auto|cpu|cuda``; 'cuda' needs a GPU and a CUDA torch."""
    if requested not in DEVICE_CHOICES:
        raise HarnessError(f"unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)}")
    if requested == "cpu":
        return "cpu"
    has_gpu = bool(host_gpus()) and _torch_has_cuda()
    if requested == "cuda" and not has_gpu:
        raise HarnessError("--device cuda: no GPU visible (no /dev/nvidiaN, or torch is a CPU build); "
                           "install a CUDA build of torch on a GPU machine, or use --device cpu")
    return "cuda" if has_gpu else "cpu"


def _torch_has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def run_passthrough(device: str, model_paths: list[str], gpu: int | None = None) -> Passthrough:
    """The passthrough of one run: the model weights, and one GPU when ``device`` is cuda."""
    base = gpu_passthrough([gpu]) if device == "cuda" and gpu is not None else Passthrough()
    return base.with_paths(*model_paths)
