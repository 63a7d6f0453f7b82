"""The ray executor on a real local Ray cluster: a head and a second worker node (one CPU each,
private ports and temp dir), the same bwrap sandbox on the nodes, the trust boundary, failures.
The worker node has no cgroups (a host that cannot enforce whole-run limits), the head has them
where this machine does: --strict-limits is decided by the driver and travels with each seed.

Every test that needs the cluster is ``slow``: starting two Ray nodes alone costs about a minute
of CPU on 2 cores (run them with ``./dev test -m slow tests/test_ray.py``). The checks that need
no cluster (option errors, a missing Ray, failure mapping) run in the default suite."""

import os
import pickle
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from experiments.store import LabStore  # noqa: E402
from sandbox.baseline_ideas import baseline_files  # noqa: E402
from sandbox.execution.base import ExecutorConfig, ExecutorOptions, SeedRequest  # noqa: E402
from sandbox.execution.ray_node import WORKER_STORE, ShippedSeed, pack_public, run_shipped  # noqa: E402
from sandbox.execution.registry import get_executor  # noqa: E402
from sandbox.isolation.cgroups import ROOT_ENV, STRICT_ENV  # noqa: E402
from sandbox.isolation.cgroups import support as cgroup_support  # noqa: E402
from sandbox.scoring.evaluator import Evaluator  # noqa: E402
from tests.conftest import SMALL  # noqa: E402
from tests.ray_cluster import ROOT, RayCluster  # noqa: E402

SEEDS = 2
FAST_IDEA = """
import numpy as np

def run(ctx):
    ctx.report("node_ok", True)
    return np.array(ctx.weak_test_probs)
"""
SLEEPY_IDEA = """
import time
import numpy as np

def run(ctx):
    time.sleep(SECONDS)
    return np.array(ctx.weak_test_probs)
"""


@pytest.mark.parametrize(("args", "says"), [
    (("bogus", None, None), "use one of local, ray"),
    (("local", "auto", None), "need --executor ray"),
    (("ray", "127.0.0.1:1", None), "no Ray cluster at 127.0.0.1:1"),
    (("ray", "auto", "gpus=x"), "numbers expected"),
    (("ray", "auto", "disk=1"), "cpus=N,gpus=N,memory_gb=N"),
])
def test_executor_options_fail_with_one_line(args, says):
    # First in the module: before this process joins the test cluster.
    from agent.cli.common import CliError, resolve_executor
    from sandbox.errors import HarnessError

    with pytest.raises((CliError, HarnessError)) as info:
        resolve_executor(*args)
    assert says in str(info.value) and "\n" not in str(info.value)


START_FAILED: list[str] = []


@pytest.fixture(scope="module")
def cluster(small_cache):
    if START_FAILED:  # pytest retries a failed module fixture per test: start once only
        pytest.fail(START_FAILED[0])
    c = RayCluster(without_cgroups=("worker",))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in c.client_env().items():  # this process drives the cluster too
            mp.setenv(key, value)
        try:
            try:
                c.start()
            except RuntimeError as exc:
                START_FAILED.append(str(exc)[:2000])
                raise
            yield c
        finally:
            if ray.is_initialized():
                ray.shutdown()
            c.stop()


def limit_names(unenforced: list[str]) -> set[str]:
    """What a seed could not enforce, as a set (the memory ledger's notes are in ``limit_notes``)."""
    return set(unenforced)


def executor(cluster, **config):
    return get_executor(ExecutorOptions(ExecutorConfig(name="ray", ray_address=cluster.address, **config)))


def aar(small_cache, *args, timeout=600):
    env = {**os.environ, "AAR_CACHE_DIR": str(small_cache.root), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def running_ideas(commands: str) -> set[str]:
    """Names of the ideas a seed's sandbox holds: its bwrap command binds the worker's idea
    folder (``<run dir>/idea``), where each attempt's copy sits under a random name."""
    roots = re.findall(r"(/\S*aar-run-[^/\s]+)/idea /aar/idea", commands)
    return {p.stem for root in roots for p in Path(root, "idea").glob("*/*.py")}


class Killer(threading.Thread):
    """Kills the worker-node process running a seed of an idea not in ``skip`` (once), and keeps
    any exception for the test to raise: a thread's exception is otherwise only a warning, and
    the test would then fail as if no seed had reached the worker node."""

    def __init__(self, cluster, skip: set[str]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.skip = cluster, skip
        self.stop, self.killed = threading.Event(), []
        self.failure: Exception | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set() and not self.killed:
                self._kill_one()
                time.sleep(0.05)
        except Exception as exc:  # handed to the test's thread by finish()
            self.failure = exc

    def _kill_one(self) -> None:
        for proc in self.cluster.seed_workers():
            ideas = running_ideas(self.cluster.descendant_commands(proc))
            if ideas and not ideas & self.skip:
                if self.cluster.kill(proc):  # else its task ended meanwhile: look again
                    self.killed.append(proc.pid)
                    return

    def finish(self) -> list[int]:
        self.stop.set()
        self.join()
        if self.failure is not None:
            raise self.failure
        return self.killed


@pytest.mark.slow  # minutes on 2 cores: two offline sessions, 8 seeds, each in its own sandbox
def test_two_researchers_share_the_cluster_every_attempt_committed(cluster, small_cache, tmp_path):
    lab = tmp_path / "lab"
    out = aar(small_cache, "research", "--researchers", "2", "--executor", "ray", "--ray-address",
              cluster.address, "--split-sizes", SMALL, "--seeds", str(SEEDS), "--max-attempts", "2",
              "--time-budget", "120", "--lab", str(lab), "--plain")
    assert out.returncode == 0, out.stderr[-2000:]
    store = LabStore.open(lab)
    sessions = [s for s in store.sessions() if s.session_id.endswith(("-r0", "-r1"))]
    assert len(sessions) == 2
    for s in sessions:
        attempts = store.attempts(s.session_id)
        assert len(attempts) == 2 and all(a.status == "ok" for a in attempts), [a.status for a in attempts]
        assert all(len(a.result.seeds) == SEEDS for a in attempts)
        assert store.manifest(s.session_id).run.executor == "ray"
    check = aar(small_cache, "check", "--lab", str(lab))
    assert check.returncode == 0 and "healthy" in check.stdout
    # Seeds ran on the second node too: it holds its own verified copy of the public cache.
    assert list((cluster.node_cache["worker"] / WORKER_STORE).glob(f"*{small_cache.key}*"))


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_session_ends_normally(cluster, small_cache, tmp_path):
    lab = tmp_path / "lab"
    killer = Killer(cluster, {p.stem for p in baseline_files()})
    killer.start()
    try:
        out = aar(small_cache, "research", "--executor", "ray", "--ray-address", cluster.address,
                  "--split-sizes", SMALL, "--seeds", str(SEEDS), "--max-attempts", "3",
                  "--time-budget", "120", "--lab", str(lab), "--plain", "--json")
    finally:
        killed = killer.finish()
    assert out.returncode == 0, out.stderr[-2000:]
    assert killed, "no seed ran on the worker node"
    store = LabStore.open(lab)
    (session,) = store.sessions()
    attempts = store.attempts(session.session_id)
    assert len(attempts) == 3 and store.manifest(session.session_id).status == "finished"
    # Retried (ok) within the bound, or recorded lost: never an unfinished attempt.
    assert all(a.status in ("ok", "lost") for a in attempts), [a.status for a in attempts]


@pytest.mark.slow
def test_lost_after_the_retries_and_cancel_stops_a_seed(cluster, small_cache, idea_file):
    idea = idea_file(SLEEPY_IDEA.replace("SECONDS", "25"), "sleepy.py")
    ev = Evaluator(small_cache, time_budget_s=60, executor=executor(cluster, max_retries=0))
    killer = Killer(cluster, set())
    killer.start()
    try:
        # Two seeds so one lands on the worker node (each node has one CPU).
        result = ev.evaluate(idea, [0, 1], compare_vanilla=False, charge=False)
    finally:
        killed = killer.finish()
    statuses = {r.status for r in result.seeds}
    assert killed and "lost" in statuses and result.status in ("lost", "ok")
    lost = next(r for r in result.seeds if r.status == "lost")
    assert "was lost" in lost.error and "0 retries" in lost.error

    started = time.monotonic()
    timer = threading.Timer(8.0, ev.executor.cancel)
    timer.start()
    result = ev.evaluate(idea, [0], compare_vanilla=False, charge=False)
    assert result.seeds[0].status == "killed" and time.monotonic() - started < 45
    assert not cluster.seed_workers_after(15.0)


@pytest.mark.slow
def test_trust_boundary_nodes_hold_only_the_public_cache(cluster, small_cache, idea_file):
    idea = idea_file(FAST_IDEA, "fast.py")
    ev = Evaluator(small_cache, time_budget_s=120, executor=executor(cluster))
    request = ev.request(idea, 0)
    result = ev.evaluate(idea, [0, 1], compare_vanilla=False, charge=False)
    assert result.status == "ok" and result.seeds[0].diagnostics == {"node_ok": True}
    # What travels names nothing of the head's cache: no private path, no cache root.
    shipped = ShippedSeed(idea_name="fast", idea_code=FAST_IDEA, seed=0, limits=request.limits,
                          isolation="bwrap", cache_key=small_cache.key, digest="0" * 64)
    assert str(small_cache.root).encode() not in pickle.dumps(shipped)
    public = {p.relative_to(small_cache.public_dir): p.read_bytes()
              for p in small_cache.public_dir.rglob("*") if p.is_file()}
    private_bytes = [p.read_bytes() for p in small_cache.private_dir.rglob("*") if p.is_file()]
    seen = 0
    for node_cache in cluster.node_cache.values():
        for path in node_cache.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(node_cache)
            assert rel.parts[0] == WORKER_STORE, rel
            inner = path.relative_to(node_cache / WORKER_STORE / rel.parts[1])
            assert public.get(inner) == path.read_bytes(), f"{rel} is not a public file"
            assert path.read_bytes() not in private_bytes
            seen += 1
    assert seen >= len(public)


@pytest.mark.slow
def test_a_node_lacking_a_model_says_which(cluster, small_cache, idea_file):
    idea = idea_file(FAST_IDEA, "fast.py")
    ev = Evaluator(small_cache, time_budget_s=60)
    missing = "/models/not-on-this-node/student.gguf"
    request = SeedRequest(**{**ev.request(idea, 0).__dict__, "models": (missing,)})
    (out,) = executor(cluster).run([request])
    assert out.status == "error" and missing in out.error and "lacks the model" in out.error
    assert "\n" not in out.error


@pytest.mark.slow
def test_strict_limits_reach_a_node_that_cannot_enforce_them(cluster, small_cache, idea_file, monkeypatch):
    idea = idea_file(SLEEPY_IDEA.replace("SECONDS", "3"), "sleepy.py")  # both seeds run at once
    ev = Evaluator(small_cache, time_budget_s=60, executor=executor(cluster))
    monkeypatch.setenv(STRICT_ENV, "1")  # what --strict-limits does in the driver (agent.cli.harness)
    strict = ev.evaluate(idea, [0, 1], compare_vanilla=False, charge=False)
    monkeypatch.delenv(STRICT_ENV)
    lax = ev.evaluate(idea, [0, 1], compare_vanilla=False, charge=False)
    head_missing = set(cgroup_support().missing)  # the head node is this host, as it is
    refused = [s for s in strict.seeds if s.status == "error"]
    assert refused, [s.status for s in strict.seeds]  # the worker node's seed, at least
    for seed in refused:
        assert "cannot enforce whole-run limits" in seed.error and "--strict-limits" in seed.error
        assert "\n" not in seed.error and seed.limits_not_enforced == []  # refused: nothing ran
    assert all(s.status == "ok" and limit_names(s.limits_not_enforced) == head_missing
               for s in strict.seeds if s not in refused)
    # Not strict: both run; the worker node's seed says which limits it could not enforce.
    assert all(s.status == "ok" for s in lax.seeds), [s.error for s in lax.seeds]
    assert {"memory", "pids", "cpu"} in [limit_names(s.limits_not_enforced) for s in lax.seeds]
    assert limit_names(lax.limits_not_enforced) == {"memory", "pids", "cpu"}


def test_the_drivers_strict_choice_travels_with_the_job(small_cache, idea_file, tmp_path, monkeypatch):
    """No cluster: a job made on a strict driver and read on a node that cannot enforce
    whole-run limits, whose own environment says the opposite, follows the driver."""
    from sandbox.execution.ray_executor import shipped_seed

    ev, idea = Evaluator(small_cache, time_budget_s=60), idea_file(FAST_IDEA, "fast.py")
    digest, archive = pack_public(small_cache.public_dir)
    jobs = {}
    for strict in (True, False):  # on the driver: the request's limits are made here
        with monkeypatch.context() as driver:
            driver.setenv(STRICT_ENV, "1" if strict else "0")
            jobs[strict] = pickle.dumps(shipped_seed(ev.request(idea, 0), 1, digest))
    fetched: list[int] = []

    def fetch() -> bytes:
        fetched.append(1)
        return archive

    with monkeypatch.context() as node:
        node.setenv(ROOT_ENV, str(tmp_path / "no-cgroups"))
        node.setenv("AAR_CACHE_DIR", str(tmp_path / "node-cache"))
        cgroup_support.cache_clear()
        try:
            node.setenv(STRICT_ENV, "0")
            out = run_shipped(pickle.loads(jobs[True]), fetch)
            assert out.status == "error" and "cannot enforce whole-run limits" in out.error
            assert "--strict-limits" in out.error and not fetched  # refused before fetching the cache
            node.setenv(STRICT_ENV, "1")
            out = run_shipped(pickle.loads(jobs[False]), fetch)
            assert out.status == "ok", out.error
            assert limit_names(out.unenforced) == {"memory", "pids", "cpu"} and fetched
        finally:
            cgroup_support.cache_clear()
    cgroup_support.cache_clear()  # the next caller probes this host again, with its own environment


def test_out_of_memory_is_killed_with_the_reason():
    from sandbox.execution.ray_executor import _failure

    out = _failure(ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on memory.\nmore"), 2)
    assert out.status == "killed" and "memory monitor" in out.error and "low on memory" in out.error
    out = _failure(ray.exceptions.WorkerCrashedError(), 1)
    assert out.status == "lost" and "1 retry" in out.error
    bug = ray.exceptions.RayTaskError("_seed_task", "Traceback ...\nKeyError: 'x'", KeyError("x"), pid=1, ip="1.2.3.4")
    out = _failure(bug.as_instanceof_cause(), 2)  # what ray.get raises
    assert out.status == "error" and out.error == "the seed's Ray task failed: KeyError: 'x'"


def test_missing_ray_is_one_line(small_cache, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from agent.cli import main; "
            f"sys.argv = ['aar', 'eval', {str(baseline_files()[0])!r}, '--executor', 'ray', "
            f"'--split-sizes', {SMALL!r}]; sys.exit(main())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "AAR_CACHE_DIR": str(small_cache.root)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "pip install -e '.[ray]'" in out.stderr

