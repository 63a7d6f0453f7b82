"""Runs one idea for one seed in a separate process and brings back its predictions as data.

How the process is isolated is pluggable (``register_isolation``): ``bwrap`` (sandbox.isolation,
the default everywhere user-facing) runs it in bubblewrap namespaces; ``process`` is a plain
child process with resource limits and no isolation of files or network (unsafe, opt-in).
Either way the parent enforces the wall clock, kills the whole process tree, caps the output
directory and the captured log, and never imports or unpickles anything the idea wrote.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.cgroups import CONTROLLERS, STRICT_ENV, RunCgroup, RunLimits, strict_from_env
from sandbox.cgroups import support as cgroup_support
from sandbox.devices import Passthrough
from sandbox.errors import HarnessError
from sandbox.run_output import MAX_PREDICTION_BYTES, LogCapture, RunOutput, collect, output_overflow
from sandbox.runtime.context import JobSpec

__all__ = ["Isolation", "Limits", "RunOutput", "get_isolation", "register_isolation", "run_idea"]
WATCH_TICK_S = 0.1
SANDBOX_SETUP_FAILED = 1  # bwrap's exit code when it cannot set the sandbox up
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PYTHON_FLAGS = ("-s", "-P")  # no user site, no script/cwd on sys.path; PYTHONHASHSEED still honoured


@dataclass
class Limits:
    """Resource limits for one idea process (tree)."""

    time_s: float = 300.0
    memory_bytes: int = 8 << 30
    file_bytes: int = 256 << 20
    open_files: int = 256
    processes: int = 128  # RLIMIT_NPROC: processes *and* threads (torch's pools count)
    threads: int = 1
    scratch_bytes: int = 1 << 30
    output_bytes: int = 2 * MAX_PREDICTION_BYTES + (1 << 20)
    strict: bool = field(default_factory=strict_from_env)  # refuse where a whole-run limit is unenforceable


@dataclass
class RunDirs:
    """The host-side directory of one run: job file, scratch, output."""

    root: Path
    scratch: Path = field(init=False)
    out: Path = field(init=False)
    job: Path = field(init=False)
    weak: Path = field(init=False)  # a private copy of this run's own weak teacher only

    def __post_init__(self) -> None:
        self.scratch, self.out, self.job = self.root / "scratch", self.root / "out", self.root / "job.json"
        self.weak = self.root / "weak"
        self.scratch.mkdir()
        self.out.mkdir()


@dataclass
class RunPlan:
    """Everything an Isolation needs to start one run."""

    idea: Path
    public_dir: Path
    seed: int  # the weak-teacher seed (= the student seed unless a request says otherwise)
    limits: Limits
    dirs: RunDirs
    sandbox_uid: int | None = None  # the uid the idea runs as, where the isolation picks one
    passthrough: Passthrough | None = None  # extra ro paths, GPU nodes, env (sandbox.devices)


class Isolation:
    """How the idea process is started. ``process``: a plain child process (no sandbox)."""

    name = "process"
    sandboxed = False

    def available(self) -> tuple[bool, str]:
        return True, ""

    def job_paths(self, plan: RunPlan) -> dict[str, str]:
        """Paths as the idea process sees them (a sandbox mounts them elsewhere)."""
        d = plan.dirs
        return {"idea_path": str(plan.idea), "public_dir": str(plan.public_dir),
                "scratch_dir": str(d.scratch), "out_dir": str(d.out), "weak_dir": str(d.weak)}

    def prepare(self, plan: RunPlan) -> None:
        """Set up anything the command needs under ``plan.dirs.root``."""

    def command(self, plan: RunPlan) -> list[str]:
        return [sys.executable, *PYTHON_FLAGS, "-m", "sandbox.runtime.entry", str(plan.dirs.job)]

    def environment(self, plan: RunPlan) -> dict[str, str]:
        # This checkout's runtime, not whichever copy the environment has installed.
        return {**child_env(plan.limits, plan.dirs.scratch, plan.passthrough), "PYTHONPATH": str(PROJECT_ROOT)}

    def cwd(self, plan: RunPlan) -> Path:
        return plan.dirs.scratch


def _bwrap_factory() -> Isolation:
    from sandbox.isolation import BwrapIsolation  # registers itself too; imported lazily

    return BwrapIsolation()


_ISOLATIONS: dict[str, Callable[[], Isolation]] = {"process": Isolation, "bwrap": _bwrap_factory}
DEFAULT_ISOLATION = "bwrap"


def register_isolation(name: str, factory: Callable[[], Isolation]) -> None:
    _ISOLATIONS[name] = factory


def get_isolation(name: str) -> Isolation:
    if name not in _ISOLATIONS:
        raise ValueError(f"unknown isolation {name!r}: use one of {', '.join(sorted(_ISOLATIONS))}")
    return _ISOLATIONS[name]()


def isolation_names() -> list[str]:
    return sorted(_ISOLATIONS)


def child_env(limits: Limits, home: Path | str, passthrough: Passthrough | None = None) -> dict[str, str]:
    """A rebuilt environment: an allow-list only, so no secret reaches the idea; a GPU run
    also gets its CUDA_VISIBLE_DEVICES (from the passthrough)."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    threads = str(max(1, limits.threads))
    env.update({
        "HOME": str(home), "TMPDIR": str(home), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false",
    })
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU unless the run was given one
    if passthrough is not None:
        env.update(passthrough.env)
    return env


def cpu_seconds(limits: Limits) -> int:
    return int(limits.time_s * max(1, limits.threads) + 30)


def _set_limits(limits: Limits, cgroup: RunCgroup | None = None) -> Callable[[], None]:
    def apply() -> None:
        if cgroup is not None:  # before exec: every process the run starts is born inside
            cgroup.add(os.getpid())
        for res, value in (
            (resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_CPU, cpu_seconds(limits)),
        ):
            resource.setrlimit(res, (value, value))
        # RLIMIT_NPROC counts every process of the real uid, and root ignores it: the bwrap
        # isolation sets it inside the sandbox, where the idea runs as a uid of its own.

    return apply


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _supervise(proc: subprocess.Popen, plan: RunPlan, started: float,
               cancel: threading.Event | None = None) -> tuple[int | None, RunOutput | None]:
    """Wait for the process; stop it early on timeout, an output directory over its cap, or
    ``cancel`` (the researcher abandoned the attempt: a second Ctrl-C)."""
    deadline = started + plan.limits.time_s
    while True:
        try:
            return proc.wait(timeout=WATCH_TICK_S), None
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            return None, RunOutput("killed", error="abandoned: the run was cancelled (Ctrl-C)")
        if time.monotonic() >= deadline:
            return None, RunOutput("timeout", error=f"exceeded the {plan.limits.time_s:g}s time budget")
        problem = output_overflow(plan.dirs.out, plan.limits.output_bytes)
        if problem:
            return None, RunOutput("killed", error=f"idea process killed: {problem}")


def weak_teacher_dir(public_dir: Path, weak_seed: int) -> Path:
    """Where the public cache keeps one seed's weak-teacher files."""
    return public_dir / "weak" / f"seed_{weak_seed}"


def copy_weak_teacher(public_dir: Path, weak_seed: int, dest: Path) -> None:
    """A private copy of one seed's weak teacher: a run sees its own teacher and no other."""
    src = weak_teacher_dir(public_dir, weak_seed)
    if not src.is_dir():  # the evaluator checks seeds first; here the idea just finds none
        dest.mkdir()
        return
    shutil.copytree(src, dest)
    for path in (dest, *dest.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)


def run_cgroup(limits: Limits, name: str, cpus: float | None = None) -> tuple[RunCgroup | None, list[str]]:
    """The run's cgroup (None where unsupported) and the whole-run limits not enforced.

    Refuses (``HarnessError``) when a limit cannot be enforced and ``limits.strict`` is set."""
    sup = cgroup_support()
    if sup.missing and limits.strict:
        raise HarnessError(f"whole-run limits not enforceable here ({', '.join(sup.missing)}): {sup.why or sup.mode}; "
                           f"unset {STRICT_ENV} / drop --strict-limits to run with per-process limits only")
    cpus = cpus if cpus is not None else float(max(1, limits.threads))
    wanted = RunLimits(memory_bytes=limits.memory_bytes, pids=limits.processes, cpus=cpus)
    try:
        cgroup = RunCgroup.create(name, wanted)
    except OSError as exc:
        if limits.strict:
            raise HarnessError(f"cannot make the run's cgroup ({exc}); unset {STRICT_ENV} to run without") from exc
        return None, list(CONTROLLERS)
    return cgroup, list(sup.missing)


def memory_killed(limits: Limits) -> RunOutput:
    return RunOutput("killed", error=f"idea process killed: over the {limits.memory_bytes >> 20} MiB memory limit "
                     "(counted for the whole run: every process, tmpfs and memory files)")


def run_idea(idea: Path, public_dir: Path, seed: int, limits: Limits,
             isolation: Isolation | None = None, student_seed: int | None = None,
             passthrough: Passthrough | None = None, cancel: threading.Event | None = None) -> RunOutput:
    """Run ``idea`` with weak teacher ``seed`` (and ``student_seed``, by default the same) under
    ``isolation`` and collect its output safely. ``passthrough``: host paths (student weights)
    and GPUs the run may use (sandbox.devices)."""
    isolation = isolation or Isolation()
    ok, why = isolation.available()
    if not ok:
        raise HarnessError(why)
    with tempfile.TemporaryDirectory(prefix="aar-run-", ignore_cleanup_errors=True) as tmp:
        plan = RunPlan(idea=idea, public_dir=public_dir, seed=seed, limits=limits, dirs=RunDirs(Path(tmp)),
                       passthrough=passthrough)
        copy_weak_teacher(public_dir, seed, plan.dirs.weak)
        job = JobSpec(weak_seed=seed, student_seed=seed if student_seed is None else student_seed,
                      time_budget_s=limits.time_s, threads=limits.threads,
                      device=passthrough.device if passthrough else "cpu", **isolation.job_paths(plan))
        plan.dirs.job.write_text(job.model_dump_json())
        isolation.prepare(plan)
        cgroup, unenforced = run_cgroup(limits, f"run-{os.getpid()}-{secrets.token_hex(6)}")
        try:
            started = time.monotonic()
            proc = subprocess.Popen(
                isolation.command(plan), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=isolation.environment(plan), cwd=isolation.cwd(plan),
                start_new_session=True, preexec_fn=_set_limits(limits, cgroup),
            )
            log = LogCapture(proc.stdout)
            log.start()
            code, stopped = _supervise(proc, plan, started, cancel)
            _kill_group(proc)  # bwrap's PID namespace dies with it; a plain process loses its group
            if cgroup is not None:
                cgroup.kill_all()  # whatever left the process group (setsid) goes too
            if code is None:
                code = proc.wait()
            runtime = time.monotonic() - started
            log.finish()
            if cgroup is not None and cgroup.oom_kills() and stopped is None:
                stopped = memory_killed(limits)
        finally:
            if cgroup is not None:
                cgroup.remove()
        output = stopped or collect(plan.dirs.out, code, MAX_PREDICTION_BYTES)
        output.unenforced = unenforced
        output.log_tail = log.text()
        if isolation.sandboxed and code == SANDBOX_SETUP_FAILED and output.log_tail.startswith("bwrap: "):
            output.error = f"the sandbox failed to start: {output.log_tail.splitlines()[0][:300]}"
        output.runtime_s = runtime
        output.isolation = isolation.name
        return output
