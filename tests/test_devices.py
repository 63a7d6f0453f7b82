"""GPU pass-through without a GPU: fakes only at the hardware edge (a host's /proc, /sys and /dev
as trees in tmp dirs, an NVML module with the bindings' API; tests/gpu_fakes.py). The bwrap argv,
id resolution (indices in PCI bus order, GPU-/MIG- UUIDs, Ray ids), the environment, and real
sandboxed runs that see exactly the extra read-only paths, sysfs and nodes given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sandbox.errors import HarnessError
from sandbox.execution.pool import run_idea
from sandbox.isolation import devices
from sandbox.isolation.base import Limits, RunDirs, RunPlan, child_env
from sandbox.isolation.devices import (
    GpuHost,
    Passthrough,
    bwrap_args,
    gpu_passthrough,
    run_passthrough,
)
from sandbox.isolation.registry import get_isolation
from tests.gpu_fakes import GPUS, MIG_UUID, FakeNvml, fake_host_tree

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")

LDCONFIG = """\
1234 libs found in cache `/etc/ld.so.cache'
\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
\tlibnvidia-ml.so.1 (libc6,x86-64) => /opt/nvidia/lib64/libnvidia-ml.so.1
\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6
"""


def test_gpu_passthrough_names_only_the_given_gpu(tmp_path):
    """Host index 2 in PCI bus order is the GPU at 0000:86:00.0, whose node is /dev/nvidia0:
    the sandbox gets that node, the control nodes, the driver's sysfs, and CUDA's 0 inside."""
    host = fake_host_tree(tmp_path)
    p = gpu_passthrough("2", lib_dirs=["/opt/nvidia/lib64"], host=host)
    dev = host.dev_root
    assert (str(dev / "nvidia0"), "/dev/nvidia0") in p.node_binds
    assert not any(inside in ("/dev/nvidia1", "/dev/nvidia2") for _, inside in p.node_binds)
    assert {inside for _, inside in p.node_binds} >= {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                                                      "/dev/nvidia-modeset"}
    assert p.env["CUDA_VISIBLE_DEVICES"] == "0" and p.device == "cuda"
    inside = {dest: src for src, dest in p.ro_binds}
    assert {"/sys/module/nvidia", "/sys/bus/pci/devices", "/sys/devices/system/node"} <= set(inside)
    pci = [d for d in inside if d.endswith("/0000:86:00.0") and d.startswith("/sys/devices/")]
    assert len(pci) == 1 and Path(inside[pci[0]], "vendor").exists(), "the GPU's own PCI directory, resolved"
    assert not any("0000:19:00.0" in d or "0000:3b:00.0" in d for d in inside if d.startswith("/sys/devices/pci"))
    args = bwrap_args(p)
    assert args[:3] == ["--ro-bind", "/opt/nvidia/lib64", "/opt/nvidia/lib64"]
    assert ["--dev-bind", str(dev / "nvidia0"), "/dev/nvidia0"] == args[args.index("/dev/nvidia0") - 2:
                                                                        args.index("/dev/nvidia0") + 1]


def test_indices_follow_pci_bus_order_from_proc_and_from_nvml(tmp_path):
    proc = fake_host_tree(tmp_path)
    nvml = GpuHost(proc_root=tmp_path / "none", sys_root=proc.sys_root, dev_root=proc.dev_root, nvml=FakeNvml())
    for host in (proc, nvml):
        inv = host.inventory()
        assert [g.pci_bus_id for g in inv] == ["0000:19:00.0", "0000:3b:00.0", "0000:86:00.0"]
        assert [g.minor for g in inv] == [2, 1, 0]
        assert host.resolve("0", inv).gpu.minor == 2
        assert host.resolve(GPUS[2][2], inv).gpu.minor == 0, "a GPU- UUID"
        assert host.resolve(GPUS[2][2][:12], inv).gpu.minor == 0, "a unique UUID prefix, as CUDA takes it"
    assert nvml.nvml.calls == ["init", "shutdown"], "NVML is shut down after each inventory"


def test_nvml_that_cannot_start_falls_back_to_proc(tmp_path):
    host = fake_host_tree(tmp_path)
    host.nvml = FakeNvml(gpus=[], fail_init=True)
    assert [g.minor for g in host.inventory()] == [2, 1, 0]


def test_host_choice_is_resolved_and_an_unknown_gpu_is_one_line(tmp_path, monkeypatch):
    host = fake_host_tree(tmp_path)
    assert host.visible({"CUDA_VISIBLE_DEVICES": "1,GPU-cccc"}) == ["1", "GPU-cccc"]
    assert host.visible({}) == ["0", "1", "2"], "unset: every GPU the driver knows"
    assert host.visible({"CUDA_VISIBLE_DEVICES": ""}) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert devices.host_gpus(host) == ["1"]
    for bad in ("3", "GPU-ffff", "MIG-eeee", "GPU-"):
        with pytest.raises(HarnessError, match="names no GPU") as exc:
            gpu_passthrough(bad, lib_dirs=[], host=host)
        assert "\n" not in str(exc.value) and "0000:19:00.0" in str(exc.value)
    (host.dev_root / "nvidia1").unlink()
    with pytest.raises(HarnessError, match="/dev/nvidia1|nvidia1. does not exist") as exc:
        gpu_passthrough("1", lib_dirs=[], host=host)
    assert "\n" not in str(exc.value)


def test_mig_instance_gets_its_capability_nodes_and_its_uuid_inside(tmp_path):
    host = fake_host_tree(tmp_path, mig_caps=True)
    host.nvml = FakeNvml(mig_on={1: [None, (MIG_UUID, 3, 0)]})
    p = gpu_passthrough(MIG_UUID, lib_dirs=[], host=host)
    inside = {dest for _, dest in p.node_binds}
    assert {"/dev/nvidia1", "/dev/nvidia-caps/nvidia-cap39", "/dev/nvidia-caps/nvidia-cap40"} <= inside
    assert not inside & {"/dev/nvidia-caps/nvidia-cap48", "/dev/nvidia0", "/dev/nvidia2"}, "not another instance's"
    assert p.env["CUDA_VISIBLE_DEVICES"] == MIG_UUID
    (host.proc_root / "driver" / "nvidia-caps" / "mig-minors").unlink()  # an older driver: every cap node
    inside = {dest for _, dest in gpu_passthrough(MIG_UUID, lib_dirs=[], host=host).node_binds}
    assert {f"/dev/nvidia-caps/nvidia-cap{n}" for n in (1, 2, 39, 40, 48)} <= inside
    host.nvml = None
    with pytest.raises(HarnessError, match="nvidia-ml-py"):
        gpu_passthrough(MIG_UUID, lib_dirs=[], host=host)


def test_ray_ids_are_resolved_on_the_node(tmp_path):
    """Ray hands a task the node's own ids (indices, or UUIDs where the node listed them):
    resolved on the node like a CUDA_VISIBLE_DEVICES entry, never read as a /dev minor."""
    from sandbox.execution.ray_node import ShippedSeed, node_passthrough

    host = fake_host_tree(tmp_path)
    job = ShippedSeed(idea_name="i", idea_code="", seed=0, limits=Limits(), isolation="bwrap", cache_key="k",
                      digest="d", models=("/m",), passthrough=True, device="cuda")
    p = node_passthrough(job, ["0"], host)
    assert (str(host.dev_root / "nvidia2"), "/dev/nvidia2") in p.node_binds and p.env["CUDA_VISIBLE_DEVICES"] == "0"
    p = node_passthrough(job, [GPUS[0][2]], host)
    assert (str(host.dev_root / "nvidia1"), "/dev/nvidia1") in p.node_binds and "/m" in p.ro_paths
    with pytest.raises(HarnessError, match="no GPU"):
        node_passthrough(job, [], host)


def test_driver_libraries_found_from_ldconfig():
    dirs = devices.driver_lib_dirs(LDCONFIG)
    assert "/opt/nvidia/lib64" in dirs and not any("libc" in d for d in dirs)
    assert all("x86_64-linux-gnu" in d or "nvidia" in d for d in dirs)


def test_device_choice_errors_are_one_line(tmp_path):
    host = fake_host_tree(tmp_path / "empty", gpus=[])
    assert devices.resolve_device("auto", host) == "cpu" and devices.resolve_device("cpu", host) == "cpu"
    with pytest.raises(HarnessError, match="no GPU visible") as exc:
        devices.resolve_device("cuda", host)
    assert "\n" not in str(exc.value)
    with pytest.raises(HarnessError, match="auto, cpu, cuda"):
        devices.resolve_device("tpu")


def test_cpu_runs_see_no_gpu_and_gpu_runs_see_theirs(tmp_path):
    assert child_env(Limits(), tmp_path)["CUDA_VISIBLE_DEVICES"] == ""
    env = child_env(Limits(), tmp_path, gpu_passthrough("1", lib_dirs=[], host=fake_host_tree(tmp_path)))
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    cpu = run_passthrough("cpu", ["/models/m"])
    assert cpu.ro_paths == ("/models/m",) and not cpu.has_gpu and cpu.device == "cpu"


@needs_bwrap
def test_bwrap_argv_binds_gpu_nodes_and_sysfs_after_the_private_dev(tmp_path):
    iso = get_isolation("bwrap")
    host = fake_host_tree(tmp_path / "host", mig_caps=True)
    host.nvml = FakeNvml(mig_on={1: [(MIG_UUID, 3, 0)]})
    root = tmp_path / "run"
    root.mkdir()
    plan = RunPlan(public_dir=tmp_path, slots=["k0"], limits=Limits(), dirs=RunDirs(root),
                   passthrough=gpu_passthrough(MIG_UUID, lib_dirs=["/opt/nvidia/lib64"], host=host))
    iso.prepare(plan)
    argv = iso.command(plan)
    dev = argv.index("--dev")
    for inside in ("/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-caps/nvidia-cap40"):
        i = argv.index(inside)
        assert argv[i - 2] == "--dev-bind" and i > dev, inside
    for inside in ("/sys/module/nvidia", "/sys/bus/pci/devices", "/sys/devices/system/node"):
        assert argv[argv.index(inside) - 2] == "--ro-bind", inside
    assert "/dev/nvidia0" not in argv and "/dev/nvidia2" not in argv
    assert iso.environment(plan)["CUDA_VISIBLE_DEVICES"] == MIG_UUID


SYSFS_IDEA = '''
import os
import numpy as np

def run(ctx):
    ctx.report("cuda_visible", os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    ctx.report("initstate", open("/sys/module/nvidia/initstate").read().strip())
    ctx.report("pci_vendor", open("/sys/bus/pci/devices/0000:3b:00.0/vendor").read().strip())
    ctx.report("other_pci", os.path.exists("/sys/bus/pci/devices/0000:19:00.0/vendor"))
    ctx.report("numa", ",".join(sorted(os.listdir("/sys/devices/system/node"))))
    ctx.report("gpu_nodes", ",".join(sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))))
    caps = "/dev/nvidia-caps"
    ctx.report("caps", ",".join(sorted(os.listdir(caps))) if os.path.isdir(caps) else "none")
    try:
        open("/sys/module/nvidia/initstate", "w").write("x")
        ctx.report("sys_writable", True)
    except OSError:
        ctx.report("sys_writable", False)
    return np.zeros(ctx.card.n_test, dtype=np.int64)
'''


@needs_bwrap
def test_sandboxed_gpu_seed_sees_its_sysfs_and_nodes_only(small_cache, tmp_path):
    """A real sandbox given host GPU 1 (a fake tree): the driver's sysfs read-only, that GPU's
    PCI directory through the bus symlink (the others' dangle), its node, CUDA's 0 inside."""
    host = fake_host_tree(tmp_path / "host")
    idea = tmp_path / "idea.py"
    idea.write_text(SYSFS_IDEA)
    p = gpu_passthrough("1", lib_dirs=[], host=host)
    out = run_idea(idea, small_cache.public_dir, 0, Limits(time_s=120), get_isolation("bwrap"), passthrough=p)
    assert out.status == "ok", (out.error, out.log_tail[-3000:])
    d = out.diagnostics
    assert d["cuda_visible"] == "0" and d["initstate"] == "live" and d["pci_vendor"] == "0x10de"
    assert d["other_pci"] is False and d["numa"] == "node0" and d["sys_writable"] is False
    assert d["gpu_nodes"] == ",".join(sorted(["nvidia1", "nvidia-modeset", "nvidia-uvm", "nvidia-uvm-tools",
                                              "nvidiactl"]))
    assert d["caps"] == "none"
    mig_host = fake_host_tree(tmp_path / "mig-host", mig_caps=True)
    mig_host.nvml = FakeNvml(mig_on={1: [(MIG_UUID, 3, 0)]})
    out = run_idea(idea, small_cache.public_dir, 0, Limits(time_s=120), get_isolation("bwrap"),
                   passthrough=gpu_passthrough(MIG_UUID, lib_dirs=[], host=mig_host))
    assert out.status == "ok", (out.error, out.log_tail[-3000:])
    assert out.diagnostics["cuda_visible"] == MIG_UUID
    assert out.diagnostics["caps"] == "nvidia-cap39,nvidia-cap40", "its own MIG caps, readable by the seed's uid"


EXTRA_IDEA = '''
import os
import numpy as np

def run(ctx):
    extra = "{extra}"
    ctx.report("cuda_visible", os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    ctx.report("extra_read", open(os.path.join(extra, "weights.txt")).read())
    try:
        open(os.path.join(extra, "new.txt"), "w").write("x")
        ctx.report("extra_writable", True)
    except OSError:
        ctx.report("extra_writable", False)
    ctx.report("gpu_nodes", ",".join(n for n in os.listdir("/dev") if n.startswith("nvidia")))
    return np.zeros(ctx.card.n_test, dtype=np.int64)
'''


@needs_bwrap
def test_sandboxed_run_sees_the_extra_weights_read_only(small_cache, tmp_path):
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "weights.txt").write_text("w")
    idea = tmp_path / "idea.py"
    idea.write_text(EXTRA_IDEA.replace("{extra}", str(weights)))
    p = Passthrough(ro_paths=(str(weights),), env={"CUDA_VISIBLE_DEVICES": "7"})
    out = run_idea(idea, small_cache.public_dir, 0, Limits(time_s=120), get_isolation("bwrap"), passthrough=p)
    assert out.status == "ok", (out.error, out.log_tail[-3000:])
    assert out.diagnostics["extra_read"] == "w"
    assert out.diagnostics["extra_writable"] is False
    assert out.diagnostics["cuda_visible"] == "7"
    assert out.diagnostics["gpu_nodes"] == ""  # no node was passed, none is there
    bare = run_idea(idea, small_cache.public_dir, 0, Limits(time_s=120), get_isolation("bwrap"))
    assert bare.status == "error" and "FileNotFoundError" in (bare.error or "")  # not mounted: unseen
    assert np.asarray(out.predictions).shape == (small_cache.card().n_test,)
