"""Fakes at the hardware edge only: a host's /proc/driver/nvidia, /sys and /dev trees in a tmp
dir, and an NVML module with the bindings' API, for sandbox.isolation.devices.GpuHost."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.isolation.devices import GpuHost

# (PCI bus id as /proc writes it, device minor, UUID), deliberately not in minor order: the
# second GPU in PCI bus order has minor 0.
GPUS = [("0000:3b:00.0", 1, "GPU-aaaa1111-0000-0000-0000-000000000001"),
        ("0000:19:00.0", 2, "GPU-bbbb2222-0000-0000-0000-000000000002"),
        ("0000:86:00.0", 0, "GPU-cccc3333-0000-0000-0000-000000000003")]
MIG_UUID = "MIG-dddd4444-0000-0000-0000-000000000004"


def info_text(bus: str, minor: int, uuid: str) -> str:
    """A driver's /proc/driver/nvidia/gpus/<bus>/information file."""
    return (f"Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t {uuid}\n"
            f"Video BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
            f"Bus Location: \t {bus}\nDevice Minor: \t {minor}\nGPU Excluded:\t No\n")


def fake_host_tree(root: Path, gpus=GPUS, mig_caps: bool = False) -> GpuHost:
    """/proc, /sys and /dev of a host with ``gpus``; returns a GpuHost reading them (no NVML)."""
    proc, sysfs, dev = root / "proc", root / "sys", root / "dev"
    dev.mkdir(parents=True)
    for bus, minor, uuid in gpus:
        d = proc / "driver" / "nvidia" / "gpus" / bus
        d.mkdir(parents=True)
        (d / "information").write_text(info_text(bus, minor, uuid))
        real = sysfs / "devices" / "pci0000:00" / f"0000:00:{minor:02x}.0" / bus
        real.mkdir(parents=True)
        (real / "vendor").write_text("0x10de\n")
        links = sysfs / "bus" / "pci" / "devices"
        links.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(real, links), links / bus)
        (dev / f"nvidia{minor}").write_text("")
    (sysfs / "module" / "nvidia").mkdir(parents=True)
    (sysfs / "module" / "nvidia" / "initstate").write_text("live\n")
    (sysfs / "devices" / "system" / "node" / "node0").mkdir(parents=True)
    for node in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"):
        (dev / node).write_text("")
    if mig_caps:
        (dev / "nvidia-caps").mkdir()
        for n in (1, 2, 39, 40, 48):
            (dev / "nvidia-caps" / f"nvidia-cap{n}").write_text("")
        caps = proc / "driver" / "nvidia-caps"
        caps.mkdir(parents=True)
        (caps / "mig-minors").write_text("config 1\nmonitor 2\ngpu1/gi3/access 39\ngpu1/gi3/ci0/access 40\n"
                                         "gpu1/gi4/access 48\n")
    return GpuHost(proc_root=proc, sys_root=sysfs, dev_root=dev, nvml=None)


class NVMLError(Exception):
    """What the bindings raise (NVMLError_NotFound for an empty MIG slot, etc.)."""


@dataclass
class FakeNvml:
    """The part of nvidia-ml-py's ``pynvml`` API that GpuHost calls, over ``gpus``; NVML lists
    GPUs in PCI bus order and writes bus ids with an 8-digit domain."""

    gpus: list = field(default_factory=lambda: list(GPUS))
    mig_on: dict = field(default_factory=dict)  # minor -> [(uuid, gi, ci) or None for an empty slot]
    fail_init: bool = False
    calls: list = field(default_factory=list)

    def _ordered(self):
        return sorted(self.gpus)

    def nvmlInit(self):
        self.calls.append("init")
        if self.fail_init:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("gpu", self._ordered()[i])

    def nvmlDeviceGetMinorNumber(self, h):
        return h[1][1]

    def nvmlDeviceGetUUID(self, h):
        return (h[1][2] if h[0] == "gpu" else h[1][0]).encode()

    def nvmlDeviceGetPciInfo(self, h):
        class Info:
            busId = ("0000" + h[1][0]).upper().encode()
        return Info()

    def nvmlDeviceGetMigMode(self, h):
        return (1, 1) if h[1][1] in self.mig_on else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return len(self.mig_on.get(h[1][1], []))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, j):
        slot = self.mig_on[h[1][1]][j]
        if slot is None:
            raise NVMLError("Not Found")
        return ("mig", slot)

    def nvmlDeviceGetGpuInstanceId(self, h):
        return h[1][1]

    def nvmlDeviceGetComputeInstanceId(self, h):
        return h[1][2]
