"""The warm pool: one sandboxed worker serves attempt after attempt, and nothing an attempt
leaves (scratch files, locked directories, daemons) reaches the next one."""

from __future__ import annotations

import pytest

from sandbox.execution import supervisor as warm_worker
from sandbox.execution.pool import WorkerPool, run_attempt
from sandbox.isolation.base import Limits, SeedJob
from sandbox.isolation.registry import get_isolation

BWRAP = get_isolation("bwrap")
BWRAP_OK, BWRAP_WHY = BWRAP.available()
pytestmark = pytest.mark.skipif(not (BWRAP_OK and BWRAP.self_join),
                                reason=f"needs bwrap as root (slots with uids of their own): {BWRAP_WHY or 'not root'}")

LITTERING_IDEA = '''
import os
import time

import numpy as np


def same_uid_processes():
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(pid) != os.getpid() and os.stat(f"/proc/{pid}").st_uid == os.getuid():
                found += 1
        except OSError:
            continue
    return found


def run(ctx):
    ctx.report("scratch_at_start", ",".join(sorted(os.listdir(ctx.scratch))))
    ctx.report("same_uid_at_start", same_uid_processes())
    ctx.report("uid", os.getuid())
    ctx.report("worker", os.getppid())
    locked = ctx.scratch / "locked"
    locked.mkdir()
    (locked / "inside").write_text("x")
    locked.chmod(0)  # the wipe must get in anyway
    (ctx.scratch / "bulk").write_bytes(b"x" * (4 << 20))
    if os.fork() == 0:  # a daemon that would outlive its seed
        os.setsid()
        time.sleep(600)
        os._exit(0)
    return np.asarray(ctx.weak_test_probs)
'''


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "no-cgroups"])
def test_a_warm_worker_serves_attempts_and_nothing_carries_over(small_cache, idea_file, monkeypatch, cgroups):
    """Without cgroups (a host that has none) the slot's uid is what finds the leftovers."""
    if not cgroups:
        monkeypatch.setattr(warm_worker, "_cgroups", lambda limits, slots, self_join: (None, dict.fromkeys(slots)))
    pool = WorkerPool(1)
    idea = idea_file(LITTERING_IDEA)
    limits = Limits(time_s=120, memory_bytes=2 << 30, scratch_bytes=64 << 20)
    try:
        first = run_attempt(idea, small_cache.public_dir, [SeedJob(0, 0)], limits, BWRAP, pool=pool)[0]
        (worker,) = pool._workers.values()
        slot_cgroup = worker.slot_cgs["k0"]
        left = slot_cgroup.pids() if slot_cgroup is not None else []
        second = run_attempt(idea, small_cache.public_dir, [SeedJob(1, 1)], limits, BWRAP, pool=pool)[0]
        assert list(pool._workers.values()) == [worker] and worker.usable(), "the same worker, still usable"
    finally:
        pool.close()
    assert first.status == second.status == "ok", (first.error, second.error, second.log_tail[-500:])
    assert first.diagnostics["worker"] == second.diagnostics["worker"], "one worker process for both attempts"
    assert first.diagnostics["scratch_at_start"] == second.diagnostics["scratch_at_start"] == ""
    assert left == [], "the first attempt's daemon was killed with its seed"
    assert second.diagnostics["uid"] == first.diagnostics["uid"], "one slot: the same uid again"
    assert second.diagnostics["same_uid_at_start"] == 0, "nothing of the first attempt runs under that uid"
    assert worker.proc.poll() is not None and not worker.plan.dirs.root.exists(), "close() leaves nothing"


def test_concurrent_attempts_share_a_worker_in_separate_slots(small_cache, idea_file):
    import threading

    pool = WorkerPool(2)
    idea = idea_file(LITTERING_IDEA)
    limits = Limits(time_s=120, memory_bytes=2 << 30, scratch_bytes=64 << 20)
    outs: list = []
    try:
        threads = [threading.Thread(target=lambda s=s: outs.extend(
            run_attempt(idea, small_cache.public_dir, [SeedJob(s, s)], limits, BWRAP, pool=pool)))
            for s in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        pool.close()
    assert [o.status for o in outs] == ["ok", "ok"], [o.error for o in outs]
    assert len({o.diagnostics["worker"] for o in outs}) == 1
    assert len({o.diagnostics["uid"] for o in outs}) == 2, "each slot has a uid of its own"


def test_run_cgroups_of_dead_owners_are_swept():
    """A process killed with SIGKILL cannot remove its run cgroups; the next run removes them."""
    import subprocess

    from sandbox.isolation.cgroups import RunCgroup, RunLimits, support, sweep_stale

    if support().mode == "none":
        pytest.skip("no cgroups here")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = RunCgroup.create(f"attempt-{dead.pid}-abcdef", RunLimits(pids=8))
    mine = RunCgroup.create(f"attempt-{__import__('os').getpid()}-abcdef", RunLimits(pids=8))
    try:
        assert sweep_stale.__wrapped__() >= 1
        assert not any(p.exists() for p in stale.dirs.values()), "the dead owner's cgroup is gone"
        assert all(p.exists() for p in mine.dirs.values()), "a live owner's cgroup stays"
    finally:
        stale.remove()
        mine.remove()


def test_a_slot_that_cannot_be_wiped_is_lost_and_the_next_attempt_gets_a_new_worker(
        small_cache, idea_file, monkeypatch):
    """A scratch the slot's uid could not empty must never reach another seed: the slot is
    dropped, a seed left without one fails with a clear error (no hang), the worker is retired."""
    real = warm_worker.WarmWorker._cleaned
    monkeypatch.setattr(warm_worker.WarmWorker, "_cleaned", lambda self, key, code: real(self, key, "1"))
    pool = WorkerPool(1)
    idea = idea_file(LITTERING_IDEA)
    limits = Limits(time_s=120, memory_bytes=2 << 30, scratch_bytes=64 << 20)
    try:
        outs = run_attempt(idea, small_cache.public_dir, [SeedJob(0, 0), SeedJob(1, 1)], limits, BWRAP,
                           parallel=1, pool=pool)
        (first_worker,) = pool._workers.values()
        monkeypatch.setattr(warm_worker.WarmWorker, "_cleaned", real)
        again = run_attempt(idea, small_cache.public_dir, [SeedJob(2, 2)], limits, BWRAP, pool=pool)[0]
        (second_worker,) = pool._workers.values()
    finally:
        pool.close()
    assert outs[0].status == "ok" and outs[1].status == "error" and "could not wipe" in outs[1].error
    assert first_worker.retired and second_worker is not first_worker
    assert again.status == "ok" and again.diagnostics["scratch_at_start"] == ""
