"""The bwrap isolation: what an idea sees inside, limits, equal scores inside and out, the
refusal to run unsandboxed by accident, and the parent's safe reading of idea output."""

from __future__ import annotations

import json
import os
import sys
import threading

import numpy as np
import pytest

import agent.cli.harness  # noqa: F401 - registers the harness commands on the app
from agent.cli import app
from agent.cli.common import run_app
from sandbox.baseline_ideas import VANILLA_NAME, baseline_path
from sandbox.errors import HarnessError
from sandbox.execution.base import SeedRequest
from sandbox.execution.local import worker_groups
from sandbox.execution.pool import run_attempt, run_idea
from sandbox.execution.run_output import (
    DENIAL,
    LOG_HEAD,
    LOG_TAIL,
    LogCapture,
    ResultCapture,
    load_npy,
)
from sandbox.isolation import bwrap as bwrap_module
from sandbox.isolation.base import DEFAULT_ISOLATION, Limits, SeedJob, child_env
from sandbox.isolation.devices import gpu_passthrough, run_passthrough
from sandbox.isolation.registry import get_isolation
from sandbox.scoring.evaluator import Evaluator
from tests.gpu_fakes import fake_host_tree

BWRAP_OK, BWRAP_WHY = get_isolation("bwrap").available()
needs_bwrap = pytest.mark.skipif(not BWRAP_OK, reason=f"bwrap unavailable: {BWRAP_WHY}")

VIEW_IDEA = '''
import os, resource, socket, sys
import numpy as np
import torch


def listing(path):
    try:
        return ",".join(sorted(os.listdir(path)))
    except OSError as exc:
        return type(exc).__name__


def tmp_listing():
    # The Python runtime is bound at its host path; under /tmp (a checkout in /tmp) its top
    # folder legitimately shows there. Anything else is not allowed.
    runtime = {p.split("/")[2] for p in (sys.prefix, sys.base_prefix, sys.executable, *sys.path)
               if p.startswith("/tmp/")}
    return ",".join(sorted(n for n in os.listdir("/tmp") if n not in runtime))


def run(ctx):
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
    ifaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
    fs = os.statvfs(ctx.scratch)
    r = ctx.report
    r("uid", os.getuid()); r("gid", os.getgid()); r("pid", os.getpid())
    r("pids", len([p for p in os.listdir("/proc") if p.isdigit()]))
    r("hostname", socket.gethostname()); r("ifaces", ",".join(ifaces))
    r("cap_eff", status["CapEff"].strip()); r("no_new_privs", status["NoNewPrivs"].strip())
    r("cap_bnd", status["CapBnd"].strip())
    r("proc_opts", [ln.split(" - ", 1)[1] for ln in open("/proc/self/mountinfo") if ln.split()[4] == "/proc"][-1])
    r("env", ",".join(sorted(os.environ)))
    r("root", listing("/")); r("aar", listing("/aar")); r("aar_lib", listing("/aar/lib/sandbox"))
    r("etc", listing("/etc")); r("usr", listing("/usr")); r("tmp_at_start", tmp_listing())
    r("scratch_at_start", listing(ctx.scratch)); r("home", os.path.expanduser("~")); r("scratch", str(ctx.scratch))
    r("weak_dirs", listing("/aar/weak")); r("idea_dirs", listing("/aar/idea")); r("pipe_dirs", listing("/aar/pipes"))
    r("own_weak", listing(str(ctx.weak_dir)))
    r("scratch_bytes", fs.f_blocks * fs.f_frsize)
    r("nproc", resource.getrlimit(resource.RLIMIT_NPROC)[0]); r("as", resource.getrlimit(resource.RLIMIT_AS)[0])
    r("nofile", resource.getrlimit(resource.RLIMIT_NOFILE)[0]); r("fsize", resource.getrlimit(resource.RLIMIT_FSIZE)[0])
    r("torch_threads", torch.get_num_threads()); r("omp", os.environ.get("OMP_NUM_THREADS", ""))
    r("modules", ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("sandbox", "agent", "experiments"))))
    site = [p for p in sys.path if p.endswith("site-packages")][0]
    r("scattertext", listing(os.path.join(site, "scattertext")))
    try:
        open("/tmp/left-behind", "w").write("x")
        r("tmp_writable", True)
    except PermissionError:  # seeds sharing one sandbox (root hosts) have no shared writable dir
        r("tmp_writable", False)
    open(ctx.scratch / "left-behind", "w").write("x")
    return np.asarray(ctx.weak_test_probs)
'''


@pytest.fixture(scope="module")
def view(small_cache, tmp_path_factory):
    """Diagnostics of two sandboxed runs of VIEW_IDEA (the second checks nothing carried over)."""
    path = tmp_path_factory.mktemp("view") / "view_idea.py"
    path.write_text(VIEW_IDEA)
    limits = Limits(time_s=120, threads=1, memory_bytes=3 << 30, scratch_bytes=128 << 20, processes=48)
    iso = get_isolation("bwrap")
    outs = run_attempt(path, small_cache.public_dir, [SeedJob(0, 0), SeedJob(1, 1)], limits, iso)
    for out in outs:
        assert out.status == "ok", (out.error, out.log_tail[-500:])
    return limits, outs[0].diagnostics, outs[1].diagnostics


def test_bwrap_is_the_default_and_registered():
    assert DEFAULT_ISOLATION == "bwrap"
    iso = get_isolation("bwrap")
    assert iso.name == "bwrap" and iso.sandboxed
    assert not get_isolation("process").sandboxed


@needs_bwrap
def test_idea_sees_only_what_it_needs(view):
    _, d, _ = view
    assert d["uid"] != 0 and d["gid"] != 0
    assert d["pid"] <= 5 and d["pids"] <= 4, "a PID namespace of its own"
    assert d["hostname"] == "aar-sandbox" and d["ifaces"] == "lo"
    assert int(d["cap_eff"], 16) == 0 and d["no_new_privs"] == "1"
    assert not int(d["cap_bnd"], 16) & (1 << 21 | 1 << 8), "CAP_SYS_ADMIN/SETPCAP gone for good"
    if os.geteuid() == 0:  # seeds share the sandbox: each sees only its own uid's processes
        assert "hidepid=invisible" in d["proc_opts"], d["proc_opts"]
    assert set(d["env"].split(",")) <= set(child_env(Limits(), "/x")) | {"PATH", "LANG", "LC_ALL", "TZ", "PWD"}
    assert {"boot.py", "idea", "lib", "pipes", "public", "scratch", "weak"} <= set(d["aar"].split(",")) \
        <= {"boot.py", "cg", "idea", "lib", "pipes", "public", "scratch", "weak"}
    assert d["aar_lib"] == "__init__.py,runtime", "only the idea runtime of the project"
    assert set(d["etc"].split(",")) <= {"group", "hosts", "ld.so.cache", "passwd"}
    assert "share" not in d["usr"].split(","), "/usr/share holds task data (WordNet)"
    assert "home" not in d["root"].split(",") and "sys" not in d["root"].split(",")
    assert d["home"] == d["scratch"] and d["scratch"].startswith("/aar/scratch/")
    assert d["scratch_at_start"] == "" and d["tmp_at_start"] == ""
    # Seeds' entries have random names in directories nobody can list: a seed finds its own only.
    assert d["weak_dirs"] == d["idea_dirs"] == d["pipe_dirs"] == "PermissionError"
    assert "unlabeled_soft.npy" in d["own_weak"].split(",")
    assert d["modules"].split(",")[0].startswith("sandbox") and "sandbox.cache.task_cache" not in d["modules"]
    assert d["scattertext"] in ("", "FileNotFoundError"), "the rt-mpnet corpus is masked"


@needs_bwrap
def test_limits_apply_inside(view):
    limits, d, _ = view
    # the address-space cap is the limit on top of the warm runtime the child inherits (< 1 GiB)
    assert d["nproc"] == limits.processes and limits.memory_bytes < d["as"] < limits.memory_bytes + (1 << 30)
    assert d["nofile"] == limits.open_files and d["fsize"] == limits.file_bytes
    assert d["torch_threads"] == limits.threads and d["omp"] == str(limits.threads)
    assert abs(d["scratch_bytes"] - limits.scratch_bytes) <= 1 << 20


@needs_bwrap
def test_nothing_carries_over_between_runs(view):
    _, _, second = view
    assert second["tmp_at_start"] == "" and second["scratch_at_start"] == ""


@needs_bwrap
def test_same_score_inside_and_outside_the_sandbox(small_cache):
    vanilla = baseline_path(VANILLA_NAME)
    scores = {}
    for name in ("process", "bwrap"):
        result = Evaluator(small_cache, isolation=name, time_budget_s=120, parallel=1).evaluate(
            vanilla, [0], compare_vanilla=False, charge=False)
        assert result.status == "ok" and result.isolation == name
        s = result.seeds[0]
        scores[name] = (s.dev_acc, s.heldout_acc, s.pgr, s.heldout_pgr)
    assert scores["process"] == scores["bwrap"]


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root the user-namespace layout is the default one")
def test_user_namespace_layout_runs_ideas(small_cache, idea_file):
    path = idea_file("import numpy as np\n\ndef run(ctx):\n    return np.asarray(ctx.weak_test_probs)\n")
    out = run_idea(path, small_cache.public_dir, 0, Limits(time_s=60), bwrap_module.BwrapIsolation(root_mode=False))
    assert out.status == "ok" and out.predictions.shape[0] == small_cache.card().n_test


@needs_bwrap
def test_sandbox_setup_failure_is_reported_as_such(idea_file, tmp_path):
    path = idea_file("def run(ctx):\n    return ctx.weak_test_probs\n")
    out = run_idea(path, tmp_path / "no-such-cache", 0, Limits(time_s=30), get_isolation("bwrap"))
    assert out.status == "error" and out.error.startswith("the sandbox failed to start: bwrap: ")


def _refuse(_root_mode: bool) -> tuple[bool, str]:
    return False, "bubblewrap cannot start a sandbox here (test): enable user namespaces or pass --unsafe-no-sandbox"


def _aar(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aar", *args])
    code = run_app(app)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_without_bwrap_untrusted_code_does_not_run(small_cache, cache_dir, idea_file, tmp_path, capsys,
                                                   monkeypatch):
    monkeypatch.setattr(bwrap_module, "probe", _refuse)
    marker = tmp_path / "ran"
    path = idea_file(f"open({str(marker)!r}, 'w').close()\ndef run(ctx):\n    return ctx.weak_test_probs\n")
    with pytest.raises(HarnessError, match="--unsafe-no-sandbox"):
        run_idea(path, small_cache.public_dir, 0, Limits(time_s=30), get_isolation("bwrap"))
    args = ["eval", str(path), "--split-sizes", "200,600,200,200", "--seeds", "1", "--json"]
    code, out, err = _aar(capsys, monkeypatch, *args)
    assert code == 2 and not marker.exists() and out == ""
    assert len(err.strip().splitlines()) == 1 and "--unsafe-no-sandbox" in err
    code, out, _ = _aar(capsys, monkeypatch, *args, "--unsafe-no-sandbox")
    assert code == 0 and marker.exists() and json.loads(out)["isolation"] == "process"


def test_plain_process_needs_the_unsafe_flag(idea_file, capsys, monkeypatch):
    path = idea_file("def run(ctx):\n    return ctx.weak_test_probs\n")
    code, out, err = _aar(capsys, monkeypatch, "eval", str(path), "--isolation", "process")
    assert code == 2 and "--unsafe-no-sandbox" in err


# --- the parent's reading of idea output ------------------------------------------------------

def test_log_capture_keeps_head_and_tail():
    read, write = os.pipe()
    capture = LogCapture(read)
    capture.start()
    writer = threading.Thread(target=lambda: (os.write(write, b"H" * LOG_HEAD + b"m" * 100_000 + b"T" * LOG_TAIL),
                                              os.close(write)))
    writer.start()
    writer.join()
    capture.join(5)
    capture.stop()
    text = capture.text()
    assert text.startswith("H" * LOG_HEAD) and text.endswith("T" * LOG_TAIL)
    assert "[100000 bytes cut]" in text


def test_results_are_framed_capped_and_not_read_after_stop():
    read, write = os.pipe()
    capture = ResultCapture(read, cap=1000)
    capture.start()
    os.write(write, b"diagnostics.json 2\n{}" + b"predictions.npy 3\nabc")
    capture.stop()  # the main process ended: the pipe is closed, a late writer gets EPIPE
    with pytest.raises(BrokenPipeError):
        os.write(write, b"error.json 2\n{}")
    files, problem = capture.frames()
    assert problem is None and files == {"diagnostics.json": b"{}", "predictions.npy": b"abc"}
    os.close(write)
    read, write = os.pipe()
    capture = ResultCapture(read, cap=10)
    capture.start()
    os.write(write, b"predictions.npy 100\n" + b"x" * 100)
    capture.stop()
    assert capture.overflow and capture.frames()[0] is None


def test_npy_loading_refuses_pickles_and_lying_headers(tmp_path):
    ok = tmp_path / "ok.npy"
    np.save(ok, np.eye(3))
    array, problem = load_npy(ok.read_bytes())
    assert problem is None and (array == np.eye(3)).all()
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert load_npy((tmp_path / "obj.npy").read_bytes())[1] == "object arrays are refused (they would need pickle)"
    truncated = ok.read_bytes()[:-8]
    assert "does not match" in load_npy(truncated)[1]
    assert "malformed" in load_npy(b"\x93NUMPY\x01\x00garbage")[1]


@pytest.mark.parametrize("message, denied", [
    ("PermissionError: [Errno 13] Permission denied: '/x'", True),
    ("OSError: [Errno 30] Read-only file system: '/x'", True),
    ("OSError: [Errno 101] Network is unreachable", True),
    ("gaierror: [Errno -3] Temporary failure in name resolution", True),
    ("ModuleNotFoundError: No module named 'sandbox.scoring.evaluator'", True),
    ("ModuleNotFoundError: No module named 'sklearnx'", False),
    ("FileNotFoundError: [Errno 2] No such file or directory: 'x'", False),
    ("ValueError: shapes do not match", False),
])
def test_denials_are_told_apart_from_bugs(message, denied):
    assert bool(DENIAL.match(message)) is denied


def test_binds_under_host_tmp_land_on_the_private_tmp():
    """A venv (or interpreter) under /tmp on the host must stay visible inside the sandbox:
    the private /tmp is mounted before any bind, and its made-up parents keep /tmp's mode."""
    from sandbox.isolation.bwrap import parent_dirs

    dirs = parent_dirs(["--ro-bind", "/tmp/x/.venv", "/tmp/x/.venv"])
    assert "/tmp" not in dirs and "/tmp/x" in dirs


WARM_IDEA = '''
import os
import sys
import time

import numpy as np

TORCH_BEFORE_IDEA = "torch" in sys.modules  # the worker imported it before forking this seed
IMPORTED_AT = time.monotonic()


def run(ctx):
    ctx.report("ppid", os.getppid())
    ctx.report("torch_before_idea", TORCH_BEFORE_IDEA)
    ctx.report("seed", ctx.seed)
    return np.asarray(ctx.weak_test_probs)
'''


@needs_bwrap
def test_one_warm_worker_forks_every_seed_of_an_attempt(small_cache, idea_file):
    """An attempt's seeds are children of one worker that imported torch before any idea ran
    (root hosts: seeds told apart by uid share a sandbox; a user namespace holds one seed)."""
    iso = get_isolation("bwrap")
    jobs = [SeedJob(0, 0), SeedJob(1, 1), SeedJob(2, 2)]
    outs = run_attempt(idea_file(WARM_IDEA), small_cache.public_dir, jobs, Limits(time_s=120), iso, parallel=2)
    assert [o.status for o in outs] == ["ok"] * 3, [(o.error, o.log_tail[-300:]) for o in outs]
    assert [o.diagnostics["seed"] for o in outs] == [0, 1, 2]
    assert all(o.diagnostics["torch_before_idea"] is True for o in outs)
    if iso.seeds_per_worker() is None:
        assert len({o.diagnostics["ppid"] for o in outs}) == 1, "one worker for the attempt"


ISO_FOR_GROUPS = get_isolation("process")


def _request(tmp_path, seed, passthrough=None, student_seed=None):
    return SeedRequest(idea=tmp_path / "idea.py", seed=seed, public_dir=tmp_path, limits=Limits(),
                       isolation=ISO_FOR_GROUPS, passthrough=passthrough, student_seed=student_seed)


def test_worker_groups_share_a_worker_per_attempt_and_keep_gpus_apart(tmp_path):
    models = run_passthrough("cpu", [str(tmp_path)])
    cpu = [_request(tmp_path, s, models) for s in range(3)]
    assert worker_groups(cpu) == [[0, 1, 2]], "all seeds of a CPU attempt share one worker"
    host = fake_host_tree(tmp_path / "host")
    gpu = [_request(tmp_path, s, gpu_passthrough(str(s % 2), lib_dirs=[], host=host)) for s in range(3)]
    assert worker_groups(gpu) == [[0], [1], [2]], "a GPU seed keeps a sandbox (and GPU) of its own"
    again = [_request(tmp_path, 0), _request(tmp_path, 0), _request(tmp_path, 0, student_seed=5)]
    assert worker_groups(again) == [[0, 2], [1]], "a repeated seed goes to another worker"


def test_an_attempts_cpu_weight_is_what_its_seeds_may_use():
    """v1 shares: a worker's group weighs its seeds' cores together, and making a seed's group
    inside it leaves that weight alone (a nested group once reset its parent to the common one's)."""
    from sandbox.isolation.cgroups import SHARES_PER_CORE, RunCgroup, RunLimits, support

    if support().mode != "v1" or "cpu" not in support().bases:
        pytest.skip("cgroup v1 cpu controller not writable here")
    top = RunCgroup.create(f"test-weight-{os.getpid()}", RunLimits(weight_cores=3.0))
    try:
        seed = RunCgroup.create("seed", RunLimits(cpus=1.0), parent=top)
        shares = lambda cg: int((cg.dirs["cpu"] / "cpu.shares").read_text())  # noqa: E731
        assert shares(top) == 3 * SHARES_PER_CORE and shares(seed) == SHARES_PER_CORE
        seed.remove()
    finally:
        top.remove()


def test_concurrent_memory_limits_scale_to_the_machine_and_never_wait():
    """The issue's case: 3 seeds x 8 GiB + the worker's 2 GiB on a 23 GiB machine scale down to
    fit (with a note). A second live worker starts at once (waiting on an idle warm worker
    stalled sessions) and its note says the sum is not enforced; a closed worker's share comes
    back; a machine too small for the seeds at all is refused with one line."""
    from sandbox.execution.memory_ledger import MIN_SEED_MEMORY, WORKER_MEMORY, MemoryLedger

    total = 23 << 30
    ledger = MemoryLedger(total=total)
    limits, note = ledger.reserve(1, Limits(memory_bytes=8 << 30), 3)
    assert limits.memory_bytes == (total - WORKER_MEMORY) // 3 and "scaled" in note and "23552 MiB" in note
    assert sum(ledger.held.values()) <= total
    second, over = ledger.reserve(2, Limits(memory_bytes=8 << 30), 1)
    assert second.memory_bytes == 8 << 30 and "not enforced" in over and "scaled" not in over
    ledger.release(1)
    ledger.release(2)
    small, none = ledger.reserve(3, Limits(memory_bytes=1 << 30), 2)
    assert small.memory_bytes == 1 << 30 and none is None  # fits: unchanged, no note
    assert MIN_SEED_MEMORY < 1 << 30
    with pytest.raises(HarnessError, match="not enough memory for 64 seed"):
        MemoryLedger(total=8 << 30).reserve(4, Limits(memory_bytes=1 << 30), 64)


def test_a_ledger_note_travels_beside_the_limit_names_not_among_them(small_cache, monkeypatch):
    """Live workers over the machine put a sentence in ``limit_notes`` (printed by ``aar eval``);
    ``limits_not_enforced`` keeps the limit names a host could not enforce, whatever else the
    process runs (a test that compared those names failed when the suite's workers filled it)."""
    from sandbox.execution.memory_ledger import LEDGER

    monkeypatch.setitem(LEDGER.held, -1, 80 << 30)  # another evaluator's workers, far over the machine
    result = Evaluator(small_cache, isolation="process", time_budget_s=120, parallel=1).evaluate(
        baseline_path(VANILLA_NAME), [0], compare_vanilla=False, charge=False)
    assert result.status == "ok", result.seeds[0].error
    assert all(" " not in name for name in result.limits_not_enforced)
    assert any("their sum is not enforced" in n for n in result.limit_notes)
    assert result.seeds[0].limit_notes == result.limit_notes


def test_machine_memory_is_the_smaller_of_ram_and_the_own_cgroup(tmp_path, monkeypatch):
    from sandbox.isolation import cgroups

    own = cgroups._own_paths().get("", "").lstrip("/")
    (tmp_path / own).mkdir(parents=True, exist_ok=True)
    (tmp_path / own / "memory.max").write_text(f"{3 << 30}\n")
    monkeypatch.setenv(cgroups.ROOT_ENV, str(tmp_path))
    assert cgroups.machine_memory_bytes() == min(3 << 30, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    (tmp_path / own / "memory.max").write_text("max\n")
    assert cgroups.machine_memory_bytes() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
