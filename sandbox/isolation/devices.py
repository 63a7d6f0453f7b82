"""What a run needs from the host beyond the standard sandbox: the student's read-only weights
and, on a GPU, what the NVIDIA user-space driver opens while ``cuInit`` runs: the GPU's own
device node, the control nodes, MIG capability nodes, the sysfs entries it reads, the driver
libraries, and a ``CUDA_VISIBLE_DEVICES`` that names the one GPU the sandbox can open (``0``:
CUDA numbers the GPUs it can open from 0; a MIG instance by its UUID). Isolations turn a
:class:`Passthrough` into mounts and env.

The host's choice of GPU (an index of ``CUDA_VISIBLE_DEVICES`` read in PCI bus order, as under
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; a ``GPU-``/``MIG-`` UUID; an id Ray hands a task) is resolved
to a device node through NVML (``nvidia-ml-py``, optional) or the driver's
``/proc/driver/nvidia/gpus/*/information``. :class:`GpuHost` holds the roots it reads (``/proc``,
``/sys``, ``/dev``) and the NVML module, so all of it can be pointed at a fake tree.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox.errors import HarnessError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
# Control nodes every CUDA process opens, whichever GPU it uses.
NVIDIA_CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
DRIVER_LIBS = ("libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so")
# sysfs the user-space driver reads during cuInit (relative to /sys); the GPU's own PCI device
# directory is added per GPU (the entries under bus/pci/devices are symlinks into it).
DRIVER_SYSFS = ("module/nvidia", "bus/pci/devices", "devices/system/node")
_BUS_ID = re.compile(r"^([0-9a-fA-F]+):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


class MigInstance(BaseModel):
    """One MIG instance of a GPU in MIG mode."""

    model_config = ConfigDict(frozen=True)
    uuid: str = Field(description="the instance's MIG-... UUID, as CUDA_VISIBLE_DEVICES names it")
    gpu_instance: int = Field(description="its GPU instance id (gi), which names its capability node")
    compute_instance: int = Field(description="its compute instance id (ci) inside that GPU instance")


class GpuDevice(BaseModel):
    """One physical GPU of the host, as the driver knows it."""

    model_config = ConfigDict(frozen=True)
    index: int = Field(description="position in PCI bus order: NVML's index, CUDA's under CUDA_DEVICE_ORDER=PCI_BUS_ID")
    minor: int = Field(description="the minor number of its device node /dev/nvidia<minor>")
    uuid: str = Field(description="its GPU-... UUID")
    pci_bus_id: str = Field(description="domain:bus:device.function, lower case, 4-digit domain (as sysfs names it)")
    migs: tuple[MigInstance, ...] = Field(default=(), description="its MIG instances (empty: not in MIG mode)")


class GpuChoice(BaseModel):
    """The GPU (or MIG instance) one sandbox is given."""

    model_config = ConfigDict(frozen=True)
    gpu: GpuDevice = Field(description="the physical GPU whose device node the sandbox gets")
    mig: MigInstance | None = Field(default=None, description="the MIG instance, where one was chosen")
    asked: str = Field(description="what the host named it by (an index, a UUID or a Ray id)")

    def visible_inside(self) -> str:
        """``CUDA_VISIBLE_DEVICES`` inside the sandbox: the only GPU it can open is CUDA's 0;
        a MIG instance is named by its UUID (index 0 would be the parent GPU's first)."""
        return self.mig.uuid if self.mig else "0"

    def label(self) -> str:
        mig = f" {self.mig.uuid}" if self.mig else ""
        return f"GPU {self.gpu.index} ({self.gpu.uuid}, {self.gpu.pci_bus_id}, /dev/nvidia{self.gpu.minor}){mig}"


@dataclass(frozen=True)
class Passthrough:
    """Host resources one run may use. Empty by default: a CPU run with no extra mounts."""

    ro_paths: tuple[str, ...] = ()  # bound read-only at the same path inside the sandbox
    device_nodes: tuple[str, ...] = ()  # character devices bound read-write, at their path inside
    env: dict[str, str] = field(default_factory=dict)  # e.g. CUDA_VISIBLE_DEVICES
    device: str = "cpu"  # what the idea's ctx.student() trains on
    # (host path, path inside): read-only binds whose host path differs (sysfs of a GPU host)
    ro_binds: tuple[tuple[str, str], ...] = ()
    # (host node, node inside): device nodes whose host path differs (a host's /dev elsewhere)
    node_binds: tuple[tuple[str, str], ...] = ()

    def with_paths(self, *paths: str) -> Passthrough:
        new = tuple(p for p in paths if p and p not in self.ro_paths)
        return Passthrough(self.ro_paths + new, self.device_nodes, dict(self.env), self.device,
                           self.ro_binds, self.node_binds)

    @property
    def has_gpu(self) -> bool:
        return bool(self.device_nodes or self.node_binds)

    @property
    def gpu_key(self) -> str | None:
        """What names this run's GPU on the host (its node, and the MIG instance if any): runs
        with the same key share one GPU, so they take turns (sandbox.execution.local)."""
        if not self.has_gpu:
            return None
        node = (self.node_binds[0][0] if self.node_binds else self.device_nodes[0])
        return f"{node}#{self.env.get('CUDA_VISIBLE_DEVICES', '')}"


def bwrap_args(p: Passthrough | None) -> list[str]:
    """bwrap arguments for ``p``; they must come after ``--dev /dev`` in the argv."""
    if p is None:
        return []
    args: list[str] = []
    for path in p.ro_paths:
        args += ["--ro-bind", path, path]
    for src, dest in p.ro_binds:
        args += ["--ro-bind", src, dest]
    made: set[str] = set()
    for src, dest in [*((n, n) for n in p.device_nodes), *p.node_binds]:
        parent = os.path.dirname(dest)
        if parent != "/dev" and parent not in made:  # /dev/nvidia-caps: inside the sandbox's own
            # /dev, made 0755 (bwrap would make it 0700 as root: the seed's uid could not enter it)
            args += ["--perms", "0755", "--dir", parent]
            made.add(parent)
        args += ["--dev-bind", src, dest]
    return args


def normal_bus_id(bus_id: str | bytes) -> str:
    """``00000000:19:00.0`` (NVML) or ``0000:19:00.0`` (/proc, sysfs) as sysfs writes it."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else bus_id
    m = _BUS_ID.match(text.strip())
    if not m:
        raise HarnessError(f"unreadable PCI bus id {text!r} from the NVIDIA driver; check the driver installation")
    domain, bus, dev, fn = m.groups()
    return f"{int(domain, 16):04x}:{bus.lower()}:{dev.lower()}.{fn}"


def default_nvml() -> ModuleType | None:
    """NVML's Python bindings (``nvidia-ml-py``: ``pip install 'aar[gpu]'``) where installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class GpuHost:
    """Where this host's GPUs are read from; every root can be a fake tree (tests, dry runs)."""

    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    dev_root: Path = Path("/dev")
    nvml: ModuleType | Any | None = field(default_factory=default_nvml)

    def inventory(self) -> list[GpuDevice]:
        """Every GPU the driver knows, in PCI bus order: from NVML, else from /proc."""
        if self.nvml is not None:
            found = self._nvml_inventory()
            if found is not None:
                return found
        return self._proc_inventory()

    def _nvml_inventory(self) -> list[GpuDevice] | None:
        nv: Any = self.nvml  # pynvml has no stubs; inventory() checked it is not None
        try:
            nv.nvmlInit()
        except Exception:  # NVMLError: no driver loaded, or a library mismatch; /proc may still know
            return None
        try:
            gpus = []
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                gpus.append(GpuDevice(index=i, minor=int(nv.nvmlDeviceGetMinorNumber(h)),
                                      uuid=_text(nv.nvmlDeviceGetUUID(h)),
                                      pci_bus_id=normal_bus_id(nv.nvmlDeviceGetPciInfo(h).busId),
                                      migs=self._nvml_migs(h)))
            return gpus
        finally:
            with contextlib.suppress(Exception):
                nv.nvmlShutdown()

    def _nvml_migs(self, handle: Any) -> tuple[MigInstance, ...]:
        nv: Any = self.nvml
        try:
            current, _pending = nv.nvmlDeviceGetMigMode(handle)
        except Exception:  # not supported on this GPU: no MIG
            return ()
        if not current:
            return ()
        migs = []
        for j in range(nv.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                m = nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
            except Exception:  # an empty MIG slot
                continue
            migs.append(MigInstance(uuid=_text(nv.nvmlDeviceGetUUID(m)),
                                    gpu_instance=int(nv.nvmlDeviceGetGpuInstanceId(m)),
                                    compute_instance=int(nv.nvmlDeviceGetComputeInstanceId(m))))
        return tuple(migs)

    def _proc_inventory(self) -> list[GpuDevice]:
        found = []
        for info in glob.glob(str(self.proc_root / "driver" / "nvidia" / "gpus" / "*" / "information")):
            fields = {}
            for line in Path(info).read_text(errors="replace").splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip()] = value.strip()
            if "Device Minor" not in fields:
                continue
            bus = fields.get("Bus Location") or Path(info).parent.name
            found.append((normal_bus_id(bus), int(fields["Device Minor"]), fields.get("GPU UUID", "")))
        return [GpuDevice(index=i, minor=minor, uuid=uuid, pci_bus_id=bus)
                for i, (bus, minor, uuid) in enumerate(sorted(found))]

    def visible(self, env: dict[str, str] | None = None) -> list[str]:
        """The host's choice of GPUs, as entries to resolve: ``CUDA_VISIBLE_DEVICES`` where set
        (empty: none), else every GPU the driver knows, by index."""
        source: Mapping[str, str] = os.environ if env is None else env
        value = source.get("CUDA_VISIBLE_DEVICES")
        if value is None:
            return [str(g.index) for g in self.inventory()]
        return [x.strip() for x in value.split(",") if x.strip()]

    def resolve(self, entry: str, inventory: list[GpuDevice] | None = None) -> GpuChoice:
        """The GPU (or MIG instance) ``entry`` names, or a one-line error listing what exists."""
        gpus = self.inventory() if inventory is None else inventory
        entry = entry.strip()
        if entry.isdigit():
            hit = next((g for g in gpus if g.index == int(entry)), None)
            if hit is not None:
                return GpuChoice(gpu=hit, asked=entry)
        elif entry.startswith("MIG-"):
            for g in gpus:
                mig = next((m for m in g.migs if m.uuid == entry), None)
                if mig is not None:
                    return GpuChoice(gpu=g, mig=mig, asked=entry)
        elif entry.startswith("GPU-"):  # CUDA takes any unique prefix of a UUID
            hits = [g for g in gpus if g.uuid.startswith(entry)]
            if len(hits) == 1:
                return GpuChoice(gpu=hits[0], asked=entry)
        known = "; ".join(f"{g.index}: {g.uuid} {g.pci_bus_id}" for g in gpus) or "none"
        how = "" if self.nvml is not None or not entry.startswith("MIG-") else \
            " (MIG ids need NVML: pip install nvidia-ml-py)"
        raise HarnessError(f"GPU {entry!r} names no GPU the NVIDIA driver knows here (GPUs in PCI bus order: "
                           f"{known}){how}; fix CUDA_VISIBLE_DEVICES or --device")

    def mig_cap_nodes(self, choice: GpuChoice) -> list[str]:
        """The capability nodes (relative to /dev) a MIG instance needs: its GPU instance's and
        compute instance's access nodes from /proc/driver/nvidia-caps/mig-minors, or every
        node under /dev/nvidia-caps where that table is missing."""
        if choice.mig is None:
            return []
        table = self.proc_root / "driver" / "nvidia-caps" / "mig-minors"
        caps = self.dev_root / "nvidia-caps"
        if not table.is_file():
            return sorted(f"nvidia-caps/{p.name}" for p in caps.glob("nvidia-cap*"))
        minors = dict(line.split()[:2] for line in table.read_text().splitlines() if len(line.split()) >= 2)
        gi, ci, gpu = choice.mig.gpu_instance, choice.mig.compute_instance, choice.gpu.minor
        wanted = [f"gpu{gpu}/gi{gi}/access", f"gpu{gpu}/gi{gi}/ci{ci}/access"]
        missing = [w for w in wanted if w not in minors]
        if missing:
            raise HarnessError(f"{choice.label()}: the driver lists no MIG capability {missing[0]} in {table}; "
                               "recreate the MIG instance (nvidia-smi mig) or pick another")
        return [f"nvidia-caps/nvidia-cap{minors[w]}" for w in wanted]

    def sysfs_binds(self, choice: GpuChoice) -> list[tuple[str, str]]:
        """(host, inside) read-only binds of the sysfs the driver reads for this GPU."""
        binds = []
        sys_real = os.path.realpath(self.sys_root)
        for rel in DRIVER_SYSFS:
            if (self.sys_root / rel).exists():
                binds.append((str(self.sys_root / rel), f"/sys/{rel}"))
        pci = self.sys_root / "bus" / "pci" / "devices" / choice.gpu.pci_bus_id
        if pci.exists():  # the symlink's target: the device's own directory under /sys/devices
            real = os.path.realpath(pci)
            binds.append((real, "/sys/" + os.path.relpath(real, sys_real)))
        return binds

    def passthrough(self, choice: GpuChoice, lib_dirs: list[str] | None = None) -> Passthrough:
        """Only this GPU's node (plus the control nodes and its MIG capabilities), the sysfs the
        driver reads, the driver libraries and ``CUDA_VISIBLE_DEVICES`` naming it inside."""
        own = self.dev_root / f"nvidia{choice.gpu.minor}"
        if not own.exists():
            raise HarnessError(f"{choice.label()}: its device node {own} does not exist; load the driver "
                               "(nvidia-modprobe / nvidia-smi once as root) or pick another GPU")
        rel = [f"nvidia{choice.gpu.minor}", *(n for n in NVIDIA_CONTROL_NODES if (self.dev_root / n).exists()),
               *self.mig_cap_nodes(choice)]
        nodes = tuple((str(self.dev_root / r), f"/dev/{r}") for r in rel)
        libs = driver_lib_dirs() if lib_dirs is None else lib_dirs
        env = {"CUDA_VISIBLE_DEVICES": choice.visible_inside(), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        return Passthrough(ro_paths=tuple(libs), env=env, device="cuda",
                           ro_binds=tuple(self.sysfs_binds(choice)), node_binds=nodes)


def host_gpus(host: GpuHost | None = None) -> list[str]:
    """The GPUs this process may use, as entries :meth:`GpuHost.resolve` takes."""
    return (host or GpuHost()).visible()


def driver_lib_dirs(ldconfig_output: str | None = None) -> list[str]:
    """Directories holding the NVIDIA driver's user-space libraries (libcuda etc.), from the
    dynamic linker's cache. Torch's own CUDA runtime ships inside its wheels (already mounted)."""
    if ldconfig_output is None:
        try:
            ldconfig_output = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                                             timeout=10, start_new_session=True).stdout  # not killed by Ctrl-C
        except (OSError, subprocess.TimeoutExpired):
            return []
    dirs = []
    for line in ldconfig_output.splitlines():
        path = line.rsplit("=>", 1)[-1].strip()
        if any(Path(path).name.startswith(lib) for lib in DRIVER_LIBS):
            dirs.append(str(Path(os.path.realpath(path)).parent))
    return sorted(set(dirs))


def gpu_passthrough(entry: str, lib_dirs: list[str] | None = None, host: GpuHost | None = None) -> Passthrough:
    """The passthrough of the GPU the host names ``entry`` (index, UUID or Ray id)."""
    host = host or GpuHost()
    return host.passthrough(host.resolve(entry), lib_dirs)


def resolve_device(requested: str, host: GpuHost | None = None, remote: bool = False) -> str:
    """'cpu' or 'cuda' for ``--device auto|cpu|cuda``; 'cuda' needs a GPU and a CUDA torch here,
    unless seeds run on other machines (``remote``: each node resolves its own GPU)."""
    if requested not in DEVICE_CHOICES:
        raise HarnessError(f"unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)}")
    if requested == "cpu":
        return "cpu"
    if remote and requested == "cuda":
        return "cuda"
    has_gpu = bool(host_gpus(host)) and _torch_has_cuda()
    if requested == "cuda" and not has_gpu:
        raise HarnessError("--device cuda: no GPU visible (the NVIDIA driver lists none, CUDA_VISIBLE_DEVICES "
                           "is empty, or torch is a CPU build); install a CUDA build of torch on a GPU machine, "
                           "or use --device cpu")
    return "cuda" if has_gpu else "cpu"


def build_device(device: str, host: GpuHost | None = None) -> str:
    """Where this machine builds a task's cache (teachers, ceilings) for seeds on ``device``:
    its own GPU if it has one, else its CPU (a Ray head needs no GPU of its own)."""
    return resolve_device("auto", host) if device == "cuda" else device


def _torch_has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def run_passthrough(device: str, model_paths: list[str], gpu: str | None = None,
                    host: GpuHost | None = None) -> Passthrough:
    """The passthrough of one run: the model weights, and one GPU when ``device`` is cuda."""
    base = gpu_passthrough(gpu, host=host) if device == "cuda" and gpu is not None else Passthrough()
    return base.with_paths(*model_paths)
