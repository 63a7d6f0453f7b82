"""One GPU seed per GPU at a time: seeds given the same GPU queue behind each other, whichever
executor asks (fake GPU host trees from tests/gpu_fakes.py; the process isolation runs the
seeds, so only the scheduling is under test here); GPU seeds' host-RAM and address-space limits."""

from __future__ import annotations

from sandbox.execution.base import SeedRequest
from sandbox.execution.local import LocalExecutor
from sandbox.isolation.base import Limits, child_rlimits
from sandbox.isolation.devices import gpu_passthrough
from sandbox.isolation.registry import get_isolation
from sandbox.scoring.evaluator import GPU_RUN_ADDRESS_BYTES, MIN_GPU_SEED_MEMORY, gpu_seed_memory
from tests.gpu_fakes import fake_host_tree

TIMED_IDEA = '''
import time
import numpy as np

def run(ctx):
    ctx.report("start", time.time())
    time.sleep(1.5)
    ctx.report("end", time.time())
    return np.zeros(ctx.card.n_test, dtype=np.int64)
'''


def test_seeds_on_one_gpu_take_turns_and_the_gpu_is_its_own_key(small_cache, tmp_path):
    host = fake_host_tree(tmp_path / "host")
    idea = tmp_path / "idea.py"
    idea.write_text(TIMED_IDEA)
    iso = get_isolation("process")
    one = gpu_passthrough("1", lib_dirs=[], host=host)
    assert one.gpu_key == gpu_passthrough("1", lib_dirs=[], host=host).gpu_key
    assert one.gpu_key != gpu_passthrough("0", lib_dirs=[], host=host).gpu_key
    seeds = small_cache.card().weak_seeds[:3]
    reqs = [SeedRequest(idea=idea, seed=s, public_dir=small_cache.public_dir, limits=Limits(time_s=120),
                        isolation=iso, passthrough=one) for s in seeds]
    executor = LocalExecutor(parallel=len(seeds))  # room for all three at once: the GPU's gate decides
    try:
        outs = executor.run(reqs)
    finally:
        executor.close()
    assert all(o.status == "ok" for o in outs), [(o.status, o.error) for o in outs]
    spans = sorted((o.diagnostics["start"], o.diagnostics["end"]) for o in outs)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), spans


def test_gpu_seeds_get_a_host_ram_share_and_room_for_cudas_address_space():
    ram = 128 << 30
    assert gpu_seed_memory(1, ram) == 96 << 30 and gpu_seed_memory(4, ram) == 24 << 30
    assert gpu_seed_memory(8, 16 << 30) == MIN_GPU_SEED_MEMORY
    limits = Limits(memory_bytes=gpu_seed_memory(2, ram), address_bytes=GPU_RUN_ADDRESS_BYTES)
    assert child_rlimits(limits)["RLIMIT_AS"] == GPU_RUN_ADDRESS_BYTES and limits.memory_bytes == 48 << 30
    assert child_rlimits(Limits())["RLIMIT_AS"] == Limits().memory_bytes, "CPU runs: as before"


def test_a_remote_executor_leaves_the_gpu_to_the_node_and_asks_for_the_tasks_cpus(small_cache, tmp_path):
    """With Ray, the head (no GPU here) asks for one GPU and the task's threads per seed, not a
    share of its own cores; the node resolves Ray's id to its own device node."""
    import pytest

    pytest.importorskip("ray")
    from sandbox.baseline_ideas import VANILLA_NAME, baseline_path
    from sandbox.execution.ray_executor import RayExecutor, shipped_seed
    from sandbox.execution.ray_node import node_passthrough
    from sandbox.scoring.evaluator import REMOTE_SEED_THREADS, Evaluator

    never_connected = object.__new__(RayExecutor)  # only the requests it would get are under test
    ev = Evaluator(small_cache, executor=never_connected, device="cuda", isolation="bwrap")
    assert ev.device == "cuda" and ev.gpus == [], "no GPU of the head's is named"
    req = ev.request(baseline_path(VANILLA_NAME), small_cache.card().weak_seeds[0])
    assert req.passthrough.device == "cuda" and not req.passthrough.has_gpu
    threads = REMOTE_SEED_THREADS[("features", "cuda")]
    assert req.resources.gpus == 1.0 and req.resources.cpus == threads == req.limits.threads
    assert req.limits.address_bytes == GPU_RUN_ADDRESS_BYTES
    job = shipped_seed(req, threads, "digest")
    assert job.device == "cuda" and job.passthrough
    host = fake_host_tree(tmp_path / "node")
    p = node_passthrough(job, ["1"], host)
    assert (str(host.dev_root / "nvidia1"), "/dev/nvidia1") in p.node_binds and p.env["CUDA_VISIBLE_DEVICES"] == "0"
