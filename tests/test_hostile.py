"""The hostile catalog (tests/hostile/*.py) under the bwrap sandbox: each idea ends with the
outcome it declares, nothing outside scratch changes, no process outlives the run, no canary
is reached, and normal runs keep working. A control runs some attacks without the sandbox to
show they are real. See tests/hostile/README.md."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sandbox.execution.run_output import LOG_HEAD, LOG_TAIL
from sandbox.isolation.base import Limits
from sandbox.isolation.registry import get_isolation
from sandbox.scoring.evaluator import Evaluator
from sandbox.untrusted import dumps_strict

HOSTILE = Path(__file__).parent / "hostile"
CATALOG = sorted(HOSTILE.glob("*.py"))
ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-ant-canary-0123456789"
PICKLE_MARKER = Path("/tmp/aar-hostile-pickle-bomb-detonated")
# After these, a normal run must still work straight away (they spawn, starve or outlive).
DISRUPTIVE = {"fork_children_memory", "memfd_tmpfs_pin", "setsid_cpu_hog", "fork_bomb", "memory_bomb", "daemon_escape",
              "import_side_effects", "fallocate_keep_size",
              "signal_parent", "time_budget_tamper", "log_flood"}
NORMAL_IDEA = "import numpy as np\n\ndef run(ctx):\n    return np.asarray(ctx.weak_test_probs)\n"

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()
if not BWRAP_OK and os.environ.get("AAR_REQUIRE_SANDBOX"):  # CI: never skip the catalog silently
    raise RuntimeError(f"AAR_REQUIRE_SANDBOX is set but {BWRAP_WHY}")
pytestmark = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")


def heldout_guess_is_chance(seed, cache) -> None:
    """The idea answered badly on the rows it guessed were held-out: a right guess shows as a
    large gap between dev and held-out accuracy (about 0.4 here); chance shows as none."""
    assert seed.dev_acc is not None and seed.heldout_acc is not None, seed.error
    assert abs(seed.dev_acc - seed.heldout_acc) < 0.15, (seed.dev_acc, seed.heldout_acc)


def cpu_within_quota(seed, cache) -> None:
    """Busy children in their own sessions got no more cores than the run's thread allowance (1)."""
    assert seed.status == "ok", seed.error
    assert seed.diagnostics["hog_cores"] <= 1.25, seed.diagnostics


def diagnostics_are_strict(seed, cache) -> None:
    """Forged NaN/Infinity diagnostics reach no JSON as such; escape codes and floods are gone."""
    assert seed.status == "ok", seed.error
    dumps_strict(seed.model_dump(mode="json"))  # raises on NaN/Infinity
    assert all(not isinstance(v, float) or math.isfinite(v) for v in seed.diagnostics.values())
    assert not any("\x1b" in k for k in seed.diagnostics)
    assert all(len(str(v)) <= 200 for v in seed.diagnostics.values())


def no_rows_crossed(seed, cache) -> None:
    """A channel between seeds carried no row of another seed's teacher."""
    assert seed.status == "ok", seed.error
    assert seed.diagnostics["rows_crossed"] == 0, seed.diagnostics


def no_foreign_processes(seed, cache) -> None:
    """The seed saw no process of another uid in /proc."""
    assert seed.status == "ok", seed.error
    assert seed.diagnostics["foreign_pids"] == 0, seed.diagnostics


def scratch_usable_after(seed, cache) -> None:
    """The broken scratch was the seed's own business: it scored (tests below check the worker)."""
    assert seed.status == "ok", seed.error


SCORE_CHECKS = {"heldout_guess_is_chance": heldout_guess_is_chance, "cpu_within_quota": cpu_within_quota,
                "diagnostics_are_strict": diagnostics_are_strict, "no_rows_crossed": no_rows_crossed,
                "scratch_usable_after": scratch_usable_after, "no_foreign_processes": no_foreign_processes}


def declared(path: Path) -> dict:
    """The module-level constants of a hostile file, read without importing it."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


class HostileEvaluator(Evaluator):
    """Small caps so the catalog stays fast and the host is never starved."""

    def _limits(self) -> Limits:
        return Limits(time_s=self.time_budget_s, threads=1, memory_bytes=3 << 29, scratch_bytes=256 << 20)


def _tree_digest(*roots: Path) -> str:
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if "__pycache__" not in p.parts):
            st = path.lstat()
            digest.update(f"{path}|{st.st_mode}|{st.st_size}|{st.st_mtime_ns}".encode())
            if path.is_file() and not path.is_symlink() and st.st_size < 1 << 20:
                digest.update(path.read_bytes())
    return digest.hexdigest()


class Guard:
    """Digests of everything an idea might try to change, and a sentinel tree outside scratch."""

    def __init__(self, cache_dir: Path, sentinel: Path) -> None:
        self.sentinel = sentinel
        (sentinel / "sub").mkdir(parents=True)
        (sentinel / "history.json").write_text('{"attempts": 1}')
        (sentinel / "sub" / "gold.npy").write_bytes(b"not really gold")
        site = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
        self.roots = [cache_dir, sentinel, HOSTILE]
        # The project's source may be edited by other people while the suite runs: for the idea
        # runtime (the one part mounted into the sandbox) only the file names are compared; a
        # write into it is caught by modify_harness, whose every attempt must fail.
        self.listed = [ROOT / "sandbox" / "runtime"]
        self.files = [site / "numpy" / "__init__.py", Path(sys.executable).resolve()]

    def snapshot(self) -> tuple:
        stats = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in self.files)
        names = tuple(sorted(str(p) for d in self.listed for p in d.rglob("*") if "__pycache__" not in p.parts))
        return _tree_digest(*self.roots), stats, names


@pytest.fixture(scope="module")
def guard(cache_dir, tmp_path_factory) -> Guard:
    return Guard(cache_dir, tmp_path_factory.mktemp("sentinel"))


class Canaries:
    """A TCP port and an abstract unix socket on the host that no idea may reach."""

    def __init__(self, port: int, abstract: bytes) -> None:
        self.addresses = ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_UNIX, abstract))
        self.hits: list[str] = []
        self.sockets = []
        for family, address in self.addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.bind(address)
            except OSError:  # port taken by someone else: the idea still must not reach the host
                sock.close()
                continue
            sock.listen(8)
            self.sockets.append(sock)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.hits.append(str(sock.getsockname()))
            conn.sendall(b"canary\n")
            conn.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def reachable(self) -> bool:
        """Something listens where the canaries would (ours, or another suite's that took them first)."""
        for family, address in self.addresses:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.settimeout(2)
                if probe.connect_ex(address) == 0:
                    return True
        return False


@pytest.fixture(scope="module")
def canaries():
    spec = declared(HOSTILE / "socket_loopback.py")
    c = Canaries(spec["CANARY_PORT"], spec["CANARY_ABSTRACT"])
    yield c
    c.close()


def _host_processes_with(marker: str) -> list[str]:
    """Host processes whose command line carries ``marker``, left out: pytest itself, and the
    live ideas of another checkout's suite running beside this one (their interpreter is that
    checkout's venv; a suite beside this one failed on another suite's daemon attack in flight)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode("utf-8", "replace")
        program = argv[0].decode("utf-8", "replace")
        elsewhere = program.endswith("/.venv/bin/python") and program != sys.executable
        if marker in text and "pytest" not in text and not elsewhere:
            found.append(f"{cmdline.parent.name}: {text[:120]}")
    return found


def _normal_run_ok(small_cache, tmp_path: Path) -> None:
    idea = tmp_path / "normal_idea.py"
    idea.write_text(NORMAL_IDEA)
    result = HostileEvaluator(small_cache, isolation="bwrap", time_budget_s=60, parallel=1).evaluate(
        idea, [0], compare_vanilla=False, charge=False)
    assert result.status == "ok", result.seeds[0].error


def test_catalog_is_complete():
    assert len(CATALOG) >= 25
    for path in CATALOG:
        spec = declared(path)
        assert set(spec["EXPECT"].split("|")) <= {"denied", "error", "timeout", "killed", "invalid", "ok"}, path
        assert spec["EXPECT"] != "ok" or spec.get("CHECK") in SCORE_CHECKS, f"{path.name}: an ok run names its check"
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} explains its attack"


@pytest.mark.parametrize("path", CATALOG, ids=lambda p: p.stem)
def test_hostile_idea_is_contained(path, small_cache, guard, canaries, monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    spec = declared(path)
    budget = spec.get("TIME_BUDGET", 60)
    evaluator = HostileEvaluator(small_cache, isolation="bwrap", time_budget_s=budget, parallel=1)
    before = guard.snapshot()
    result = evaluator.evaluate(path, [0], compare_vanilla=False, charge=False)
    seed = result.seeds[0]
    assert result.isolation == "bwrap"
    assert seed.status in spec["EXPECT"].split("|"), (seed.status, seed.error, seed.log_tail[-800:])
    assert re.search(spec.get("MATCH", ""), seed.error or ""), seed.error
    if spec["EXPECT"] == "ok":  # scored on purpose: the check says the attack gained nothing
        SCORE_CHECKS[spec["CHECK"]](seed, small_cache)
    else:
        assert seed.dev_acc is None and result.pgr is None
    assert SECRET not in (seed.error or "") + seed.log_tail + str(seed.diagnostics)
    assert "root:x:0:0" not in (seed.error or "") + seed.log_tail
    assert len(seed.log_tail) <= LOG_HEAD + LOG_TAIL + 100
    assert seed.runtime_s < budget + 10
    assert guard.snapshot() == before, "something outside scratch changed"
    assert not canaries.hits, canaries.hits
    assert not PICKLE_MARKER.exists()
    if "MARKER" in spec and not spec["MARKER"].startswith("/"):
        assert not _host_processes_with(spec["MARKER"]), "a process outlived the run"
    if path.stem == "fork_bomb":
        assert int(re.search(spec["MATCH"], seed.error).group(1)) < evaluator._limits().processes
    if path.stem in DISRUPTIVE:
        _normal_run_ok(small_cache, tmp_path)


@pytest.mark.parametrize("name", ["gold_relative_public", "proc_secrets_scan", "socket_loopback", "io_uring_socket",
                                  "page_cache_probe", "page_cache_evict", "page_cache_mincore", "pidfd_getfd_steal"])
def test_control_attacks_succeed_without_the_sandbox(name, small_cache, canaries, monkeypatch):
    """The same attacks under the unsafe plain process do reach gold, secrets and the host."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    if name == "socket_loopback" and not canaries.reachable():
        pytest.skip("canary port unavailable")  # taken by a process that does not answer
    result = HostileEvaluator(small_cache, isolation="process", time_budget_s=60, parallel=1).evaluate(
        HOSTILE / f"{name}.py", [0], compare_vanilla=False, charge=False)
    assert result.isolation == "process" and result.status == "ok", result.seeds[0].error
    if name == "gold_relative_public":
        assert result.seeds[0].dev_acc == 1.0


@pytest.mark.parametrize("name, status, budget", [
    ("gold_evaluator_import", "denied", 60), ("nan_inf", "invalid", 60),
    ("sleep_forever", "timeout", 4), ("disk_fill_out", "invalid", 60), ("rich_markup_error", "error", 60),
])
def test_cli_eval_prints_one_status_line_and_fails(name, status, budget, small_cache, cache_dir):
    env = {**os.environ, "AAR_CACHE_DIR": str(cache_dir)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("aar")), "eval", str(HOSTILE / f"{name}.py"), "--task", "wordnet-10",
         "--split-sizes", "200,600,200,200", "--seeds", "1", "--time-budget", str(budget)],
        env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}.py: {status} on seed 0"), done.stderr
    assert "\x1b" not in done.stderr + done.stdout and "\x07" not in done.stderr
    if name == "rich_markup_error":  # shown literally: markup is data
        assert "[/red][bold red]PWNED[/]" in lines[0]


def rows_crossed_between_two_seeds(cache, isolation: str) -> list[int]:
    """Runs seeds 0 and 1 of the thread-name channel at the same time; the rows each received."""
    result = HostileEvaluator(cache, isolation=isolation, time_budget_s=60, parallel=2).evaluate(
        HOSTILE / "proc_comm_channel.py", [0, 1], compare_vanilla=False, charge=False)
    assert result.isolation == isolation and all(s.status == "ok" for s in result.seeds), result.seeds
    # the one channel bwrap cannot close is in the run record, with where it is measured
    assert result.isolation_not_enforced == get_isolation(isolation).open_channels()
    return [s.diagnostics["rows_crossed"] for s in result.seeds]


def test_thread_names_carry_nothing_between_overlapping_seeds(small_cache):
    assert rows_crossed_between_two_seeds(small_cache, "bwrap") == [0, 0]
    assert any("page-cache" in c for c in get_isolation("bwrap").open_channels())


def test_thread_names_carry_the_teacher_without_the_sandbox(small_cache):
    """The control: unsandboxed, each of two overlapping seeds receives the other's whole teacher."""
    n_rows = small_cache.card().n_test
    assert rows_crossed_between_two_seeds(small_cache, "process") == [n_rows, n_rows]


def test_a_scratch_broken_with_chmod_000_keeps_the_warm_worker(small_cache, tmp_path):
    """After an idea takes every permission off its scratch, the same warm worker serves the next
    attempts (nothing retired or restarted), and their seeds find a usable, empty scratch."""
    idea = tmp_path / "uses_scratch.py"
    idea.write_text("import os\nimport numpy as np\n\ndef run(ctx):\n    assert os.listdir(ctx.scratch) == []\n"
                    "    open(ctx.scratch / 'w', 'w').write('x')\n    return np.asarray(ctx.weak_test_probs)\n")
    ev = HostileEvaluator(small_cache, isolation="bwrap", time_budget_s=60, parallel=1)
    try:
        first = ev.evaluate(HOSTILE / "scratch_chmod_000.py", [0], compare_vanilla=False, charge=False)
        assert first.status == "ok", first.seeds[0].error
        (worker,) = ev.executor.pool._workers.values()
        for _ in range(2):
            again = ev.evaluate(idea, [0], compare_vanilla=False, charge=False)
            assert again.status == "ok", (again.seeds[0].error, again.seeds[0].log_tail[-300:])
            ev.evaluate(HOSTILE / "scratch_chmod_000.py", [0], compare_vanilla=False, charge=False)
        assert list(ev.executor.pool._workers.values()) == [worker] and worker.usable() and not worker.retired
    finally:
        ev.executor.close()


def test_next_normal_run_succeeds(small_cache, tmp_path):
    _normal_run_ok(small_cache, tmp_path)


def test_unenforced_limits_are_reported_and_strict_refuses(small_cache, cache_dir, tmp_path):
    """Without usable cgroups, `aar eval` says which whole-run limits did not hold; with
    --strict-limits it refuses to run at all."""
    idea = tmp_path / "plain.py"
    idea.write_text(NORMAL_IDEA)
    env = {**os.environ, "AAR_CACHE_DIR": str(cache_dir), "AAR_CGROUP_ROOT": str(tmp_path / "no-cgroups")}
    base = [str(Path(sys.executable).with_name("aar")), "eval", str(idea), "--task", "wordnet-10",
            "--split-sizes", "200,600,200,200", "--seeds", "1", "--time-budget", "60"]
    done = subprocess.run([*base, "--json"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["limits_not_enforced"] == ["cpu", "memory", "pids"]
    strict = subprocess.run([*base, "--strict-limits"], env=env, capture_output=True, text=True, timeout=180)
    lines = [ln for ln in strict.stderr.splitlines() if ln.strip()]
    assert strict.returncode != 0 and len(lines) == 1 and "not enforceable" in lines[0], strict.stderr
