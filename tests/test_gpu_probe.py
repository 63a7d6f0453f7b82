"""The sandboxed CUDA probe with no GPU present: it runs in the real sandbox a GPU seed gets
and its failure is one line naming the missing piece (fake /dev and /sys trees stand in for
a GPU host's: tests/gpu_fakes.py)."""

from __future__ import annotations

import ctypes

import pytest

from sandbox.errors import HarnessError
from sandbox.execution.gpu_probe import probe_problem, require_cuda
from sandbox.isolation.devices import Passthrough, gpu_passthrough
from sandbox.isolation.registry import get_isolation
from tests.gpu_fakes import fake_host_tree

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()
pytestmark = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")


def _host_loads_libcuda() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def test_probe_without_gpu_nodes_names_the_control_node(small_cache):
    problem = probe_problem(small_cache.public_dir, 0, Passthrough(device="cuda"), get_isolation("bwrap"))
    assert problem is not None and "/dev/nvidiactl" in problem and "\n" not in problem


def test_probe_with_nodes_and_sysfs_names_the_next_missing_piece(small_cache, tmp_path):
    """Nodes and sysfs are there (fakes): the probe gets past them and names the driver
    library (or, where the host has one, torch's CPU build); the error is one line."""
    p = gpu_passthrough("0", lib_dirs=[], host=fake_host_tree(tmp_path / "host"))
    iso = get_isolation("bwrap")
    problem = probe_problem(small_cache.public_dir, 0, p, iso)
    assert problem is not None and "device node" not in problem and "sysfs" not in problem
    assert ("libcuda.so.1" in problem) if not _host_loads_libcuda() else ("CPU build" in problem or "CUDA" in problem)
    with pytest.raises(HarnessError, match="CUDA probe in the bwrap sandbox of GPU 0") as exc:
        require_cuda(small_cache.public_dir, 0, p, iso, "GPU 0")
    assert "\n" not in str(exc.value) and "--device cpu" in str(exc.value)
