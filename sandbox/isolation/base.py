"""How idea processes are started: limits, the run plan and the pluggable isolations.

An attempt's seeds run in a warm worker (sandbox.runtime.worker, supervised by
sandbox.execution.pool, sandbox.execution.supervisor): one process imports torch and the runtime
once and forks a child per seed.
How that worker is isolated is pluggable (``register_isolation``): ``bwrap`` (sandbox.isolation.bwrap,
the default everywhere user-facing) runs it in bubblewrap namespaces; ``process`` is a plain
child process with resource limits and no isolation of files or network (unsafe, opt-in).
Either way the parent enforces the wall clock, kills whole process trees (cgroups), caps the
result and the captured log, and never imports or unpickles anything the idea wrote.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.isolation.cgroups import strict_from_env
from sandbox.isolation.devices import Passthrough
from sandbox.runtime.context import weak_teacher_dir

SANDBOX_SETUP_FAILED = 1  # bwrap's exit code when it cannot set the sandbox up
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON_FLAGS = ("-s", "-P")
DEFAULT_ISOLATION = "bwrap"  # everywhere user-facing; "process" is opt-in and unsafe
SEED_TIME_S = 300.0  # the default wall-clock limit of one idea run (one seed), everywhere
# no user site, no script/cwd on sys.path; PYTHONHASHSEED still honoured
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}\.py")


@dataclass
class Limits:
    """Resource limits for one idea process (tree)."""

    time_s: float = SEED_TIME_S
    memory_bytes: int = 8 << 30  # the whole run's memory (its cgroup), and RLIMIT_AS unless address_bytes
    # RLIMIT_AS where it must differ: CUDA reserves address space far beyond what it uses, so a
    # GPU run raises it while memory_bytes (its cgroup) still bounds what it holds in host RAM.
    address_bytes: int | None = None
    file_bytes: int = 256 << 20
    open_files: int = 256
    processes: int = 128  # RLIMIT_NPROC: processes *and* threads (torch's pools count)
    threads: int = 1
    scratch_bytes: int = 1 << 30
    strict: bool = field(default_factory=strict_from_env)  # refuse where a whole-run limit is unenforceable


@dataclass(frozen=True)
class SeedJob:
    """One seed of an attempt: which weak teacher it gets and which seed its student uses."""

    weak_seed: int
    student_seed: int

    @property
    def key(self) -> str:
        return f"s{self.weak_seed}-{self.student_seed}"


@dataclass
class RunDirs:
    """The host-side directory of one worker: idea copies, weak-teacher copies and result/log
    FIFOs per seed, a scratch per slot (where the isolation does not mount its own)."""

    root: Path

    @property
    def ideas(self) -> Path:
        return self.root / "idea"

    @property
    def weak(self) -> Path:
        return self.root / "weak"

    @property
    def pipes(self) -> Path:
        return self.root / "pipes"

    def scratch(self, slot: str) -> Path:
        return self.root / "scratch" / slot


@dataclass
class RunPlan:
    """Everything an Isolation needs to start one worker: the layout of its slots (a slot runs
    one seed at a time; each has its own uid, cgroup and scratch)."""

    public_dir: Path
    slots: list[str]
    limits: Limits
    dirs: RunDirs
    uids: dict[str, int] = field(default_factory=dict)  # slot -> uid its seeds' children drop to
    cgroup_procs: dict[str, list[str]] = field(default_factory=dict)  # host paths, per slot
    # Fine-tune tasks: extra read-only paths (student weights), GPU nodes and env (sandbox.isolation.devices);
    # an isolation that cannot honour them refuses the run.
    passthrough: Passthrough | None = None
    fds: list[int] = field(default_factory=list)  # descriptors the command needs (seccomp filter)


class Isolation:
    """How the idea process is started. ``process``: a plain child process (no sandbox)."""

    name = "process"
    sandboxed = False
    allow_root = True  # unsafe by design: the idea runs as whoever runs the harness
    # A seed's child can write its own cgroup.procs and has a uid of its own: one worker then holds
    # several seeds and may serve attempt after attempt (else: one seed per worker, per attempt).
    self_join = True

    def available(self) -> tuple[bool, str]:
        return True, ""

    def seeds_per_worker(self) -> int | None:
        """How many seeds one worker may hold (None: all of an attempt). A worker whose seeds
        cannot be told apart by uid holds one, so a seed never sees another's files."""
        return None

    def view(self, plan: RunPlan, host: Path) -> str:
        """Where a seed's child sees ``host``, a path under ``plan.dirs.root`` or the public dir
        (a sandbox mounts them elsewhere)."""
        return str(host)

    def scratch_path(self, plan: RunPlan, slot: str) -> str:
        """The slot's private scratch as its children see it."""
        return str(plan.dirs.scratch(slot))

    def cgroup_paths(self, plan: RunPlan, slot: str) -> list[str]:
        """The slot's cgroup.procs files as its children see them (each joins them itself)."""
        return plan.cgroup_procs.get(slot, [])

    def prepare(self, plan: RunPlan) -> None:
        """Set up anything the command needs under ``plan.dirs.root``. (No isolation of files
        here: a passthrough's paths and devices are simply the host's.)"""
        make_run_dirs(plan.dirs)
        for slot in plan.slots:
            plan.dirs.scratch(slot).mkdir(parents=True)

    def command(self, plan: RunPlan) -> list[str]:
        return [sys.executable, *PYTHON_FLAGS, "-m", "sandbox.runtime.worker"]

    def environment(self, plan: RunPlan) -> dict[str, str]:
        # This checkout's runtime, not whichever copy the environment has installed.
        return {**child_env(plan.limits, plan.dirs.root, plan.passthrough), "PYTHONPATH": str(PROJECT_ROOT)}

    def cwd(self, plan: RunPlan) -> Path:
        return plan.dirs.root

    def extra_fds(self, plan: RunPlan) -> list[int]:
        """Descriptors the command needs besides the seeds' pipes (closed by the caller after)."""
        return []

    def unenforced(self) -> list[str]:
        """Protections this isolation could not apply here (recorded with each seed)."""
        return []

    def open_channels(self) -> list[str]:
        """Isolation properties between concurrent seeds this isolation cannot enforce on any
        platform it runs on (recorded in every result), each named with where it is measured."""
        return []


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


def idea_file_name(idea: Path) -> str:
    """The name an idea's copy gets (its own when harmless: tracebacks then name it)."""
    return idea.name if _SAFE_NAME.fullmatch(idea.name) else "idea.py"


def make_run_dirs(dirs: RunDirs) -> None:
    """The per-seed directories: traversable but not listable by the seeds (each finds its own
    entries by their random names only). 0311, not 0711: where the sandbox is a user namespace
    the seeds map to the directories' owner, and the owner's bits are the ones that apply."""
    for path in (dirs.ideas, dirs.weak, dirs.pipes):
        path.mkdir()
        path.chmod(0o311)


def cpu_seconds(limits: Limits) -> int:
    return int(limits.time_s * max(1, limits.threads) + 30)


def set_rlimits(limits: Limits, runtime_bytes: int = 0) -> None:
    """Per-process limits (the cgroup holds the whole run); inherited by every child.
    ``runtime_bytes``: address space allowed on top of the limit (the warm worker's runtime,
    which each seed's child inherits and then gets the limit beyond)."""
    for res, value in (
        (resource.RLIMIT_AS, address_space(limits) + runtime_bytes), (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu_seconds(limits)),
    ):
        resource.setrlimit(res, (value, value))
    # RLIMIT_NPROC counts every process of the real uid, and root ignores it: the worker sets
    # it in each seed's child after the drop to the seed's own uid.


def address_space(limits: Limits) -> int:
    """RLIMIT_AS of a run: ``address_bytes`` where set, else its memory limit."""
    return limits.memory_bytes if limits.address_bytes is None else limits.address_bytes


def child_rlimits(limits: Limits) -> dict[str, int]:
    return {"RLIMIT_AS": address_space(limits), "RLIMIT_FSIZE": limits.file_bytes,
            "RLIMIT_NOFILE": limits.open_files, "RLIMIT_CORE": 0, "RLIMIT_CPU": cpu_seconds(limits)}


def copy_weak_teacher(public_dir: Path, weak_seed: int, dest: Path, uid: int | None = None) -> None:
    """A private copy of one seed's weak teacher: a run sees its own teacher and no other.
    Private from the first byte: the directory is made 0700 by this (trusted) process before
    anything is written, each file is created 0400 empty and filled after, and only then does
    ownership pass to the seed's uid (where seeds have uids of their own); no moment exists
    in which another seed could open it."""
    src = weak_teacher_dir(public_dir, weak_seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.mkdir(mode=0o700)
    files = sorted(p for p in src.iterdir() if p.is_file()) if src.is_dir() else []
    for path in files:  # the evaluator checks seeds first; without a teacher the idea finds none
        fd = os.open(dest / path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        with os.fdopen(fd, "wb") as out, path.open("rb") as inp:
            shutil.copyfileobj(inp, out)
    for path in (*(dest / p.name for p in files), dest):
        if uid is not None:
            os.chown(path, uid, uid)
        # Where all seeds share one uid (a user namespace), the random name is what keeps a
        # copy private: its directory cannot be listed.
        path.chmod(0o500 if path.is_dir() else 0o400)


