"""GPU pass-through without a GPU: the bwrap argv, the visible devices, the environment, and a
real sandboxed run that sees exactly the extra read-only paths and CUDA_VISIBLE_DEVICES given."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox.errors import HarnessError
from sandbox.execution.pool import run_idea
from sandbox.isolation import devices
from sandbox.isolation.base import Limits, RunDirs, RunPlan, child_env
from sandbox.isolation.devices import Passthrough, bwrap_args, gpu_passthrough, run_passthrough
from sandbox.isolation.registry import get_isolation

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")

LDCONFIG = """\
1234 libs found in cache `/etc/ld.so.cache'
\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
\tlibnvidia-ml.so.1 (libc6,x86-64) => /opt/nvidia/lib64/libnvidia-ml.so.1
\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6
"""


def test_gpu_passthrough_names_only_the_given_gpu():
    p = gpu_passthrough([2], lib_dirs=["/opt/nvidia/lib64"])
    assert "/dev/nvidia2" in p.device_nodes
    assert not any(n in p.device_nodes for n in ("/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia3"))
    assert p.env == {"CUDA_VISIBLE_DEVICES": "2"} and p.device == "cuda"
    args = bwrap_args(p)
    assert args[:3] == ["--ro-bind", "/opt/nvidia/lib64", "/opt/nvidia/lib64"]
    assert ["--dev-bind", "/dev/nvidia2", "/dev/nvidia2"] == args[3:6]


def test_driver_libraries_found_from_ldconfig():
    dirs = devices.driver_lib_dirs(LDCONFIG)
    assert "/opt/nvidia/lib64" in dirs and not any("libc" in d for d in dirs)
    assert all("x86_64-linux-gnu" in d or "nvidia" in d for d in dirs)


def test_host_gpus_honour_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert devices.host_gpus() == [1, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.host_gpus() == []


def test_device_choice_errors_are_one_line(monkeypatch):
    monkeypatch.setattr(devices, "host_gpus", lambda: [])
    assert devices.resolve_device("auto") == "cpu" and devices.resolve_device("cpu") == "cpu"
    with pytest.raises(HarnessError, match="no GPU visible") as exc:
        devices.resolve_device("cuda")
    assert "\n" not in str(exc.value)
    with pytest.raises(HarnessError, match="auto, cpu, cuda"):
        devices.resolve_device("tpu")


def test_cpu_runs_see_no_gpu_and_gpu_runs_see_theirs(tmp_path):
    assert child_env(Limits(), tmp_path)["CUDA_VISIBLE_DEVICES"] == ""
    env = child_env(Limits(), tmp_path, gpu_passthrough([1], lib_dirs=[]))
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    cpu = run_passthrough("cpu", ["/models/m"])
    assert cpu.ro_paths == ("/models/m",) and not cpu.device_nodes and cpu.device == "cpu"


@needs_bwrap
def test_bwrap_argv_binds_gpu_nodes_after_the_private_dev(tmp_path):
    iso = get_isolation("bwrap")
    idea = tmp_path / "idea.py"
    idea.write_text("def run(ctx):\n    return None\n")
    root = tmp_path / "run"
    root.mkdir()
    plan = RunPlan(public_dir=tmp_path, slots=["k0"], limits=Limits(), dirs=RunDirs(root),
                   passthrough=gpu_passthrough([1], lib_dirs=["/opt/nvidia/lib64"]))
    iso.prepare(plan)
    argv = iso.command(plan)
    dev = argv.index("--dev")
    node = argv.index("/dev/nvidia1")
    assert argv[node - 1] == "--dev-bind" and node > dev
    assert "/dev/nvidia0" not in argv
    assert iso.environment(plan)["CUDA_VISIBLE_DEVICES"] == "1"


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
