"""Whole-run limits: one cgroup per run, so a limit holds for every process the idea starts.

Per-process rlimits let an idea fork several children each under the memory limit, pin memory
in tmpfs or memfd files no process shows as resident, or start CPU hogs in sessions of their
own. A cgroup counts all of it: memory (v1 charges shmem, tmpfs and memfd pages to the cgroup
of the process that touched them), process count (pids) and CPU time (a CFS quota equal to the
run's thread allowance).

Where: cgroup v2 where this process's own cgroup was delegated with the memory, pids and cpu
controllers enabled for its children; cgroup v1 (as root) otherwise, each run nested under this
process's own cgroup of each controller. Where neither works, ``support()`` says which limits
are not enforced and the runner records it (a strict setting refuses to run instead).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import secrets
import signal
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT_ENV = "AAR_CGROUP_ROOT"  # where cgroup file systems are mounted (tests point it nowhere)
CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
# Group scheduling weighs a cgroup like one task of nice 0 against its siblings: every run
# nested under one "aar" group would share one task's worth of CPU on a busy host (runs were
# plain tasks before). Weights scale with the cores a group may use instead; the CFS quota is
# what caps each seed, so a high weight never lets a run take more than its allowance.
SHARES_PER_CORE = 1024
BASE_SHARES = 64 * SHARES_PER_CORE
KILL_ROUNDS = 200
STRICT_ENV = "AAR_STRICT_LIMITS"  # "1": refuse to run where a whole-run limit cannot be enforced


def strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class RunLimits:
    """What one cgroup enforces for every process in it together."""

    memory_bytes: int | None = None
    pids: int | None = None
    cpus: float | None = None  # CFS quota in cores; None: no quota
    weight_cores: float | None = None  # CPU weight in cores (v1 shares); None: ``cpus``, else all cores


@dataclass(frozen=True)
class Support:
    """Which cgroup flavour works here and which whole-run limits it enforces."""

    mode: str  # "v2", "v1" or "none"
    bases: dict[str, Path] = field(default_factory=dict)  # controller -> where runs are made
    why: str = ""

    @property
    def enforced(self) -> tuple[str, ...]:
        return tuple(c for c in CONTROLLERS if c in self.bases)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(c for c in CONTROLLERS if c not in self.bases)


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and '' for the v2 hierarchy."""
    out: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            out[name] = path
    return out


def machine_memory_bytes() -> int:
    """The memory this process's runs may use together: the host's RAM, or less where this
    process's own cgroup (a container's limit) caps it."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        own = _own_paths().get("", "").lstrip("/")
        cap = (cgroup_root() / own / "memory.max").read_text().strip()
    except (OSError, ValueError):
        return ram
    return min(ram, int(cap)) if cap.isdigit() else ram


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def cgroup_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/sys/fs/cgroup")


def _v2_base(own: dict[str, str]) -> Path | None:
    root = cgroup_root()
    for mount in (root, root / "unified"):
        if not (mount / "cgroup.controllers").exists() or "" not in own:
            continue
        base = mount / own[""].lstrip("/")
        try:
            enabled = set((base / "cgroup.subtree_control").read_text().split())
        except OSError:
            continue
        if enabled >= set(CONTROLLERS) and _writable_dir(base):
            return base
    return None


def _probe_v1(base: Path) -> bool:
    """Whether a run cgroup can really be made (and removed) there."""
    probe = base / f"probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.mkdir(parents=True)
        probe.rmdir()
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def support() -> Support:
    """Probe once per process where run cgroups can be made."""
    try:
        own = _own_paths()
    except OSError as exc:
        return Support("none", why=f"cannot read /proc/self/cgroup ({exc.strerror})")
    base = _v2_base(own)
    if base is not None:
        return Support("v2", {c: base / "aar" for c in CONTROLLERS})
    bases = {}
    for controller in CONTROLLERS:
        mount = cgroup_root() / controller
        if controller in own and mount.is_dir():
            candidate = mount / own[controller].lstrip("/") / "aar"
            if _probe_v1(candidate):
                bases[controller] = candidate
    if bases:
        return Support("v1", bases)
    return Support("none", why="no writable cgroup v2 delegation and no writable cgroup v1 controllers "
                   "(run as root, or in a systemd scope with Delegate=yes)")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


class RunCgroup:
    """The cgroup(s) of one run: one directory per controller (v1) or one directory (v2)."""

    def __init__(self, dirs: dict[str, Path], mode: str) -> None:
        self.dirs, self.mode = dirs, mode

    @classmethod
    def create(cls, name: str, limits: RunLimits, parent: RunCgroup | None = None) -> RunCgroup | None:
        """A fresh cgroup with ``limits``, nested in ``parent`` if given; None where unsupported."""
        sup = support()
        if sup.mode == "none":
            return None
        if parent is not None:
            dirs = {c: d / name for c, d in parent.dirs.items()}
        else:
            dirs = {c: b / name for c, b in sup.bases.items()}
        made = cls({}, sup.mode)
        try:
            for controller, path in dirs.items():
                if path in made.dirs.values():  # v2: one directory for every controller
                    made.dirs[controller] = path
                    continue
                path.mkdir(parents=True)
                made.dirs[controller] = path
            made._apply(limits, nested=parent is not None)
        except OSError:
            made.remove()
            raise
        return made

    def _apply(self, limits: RunLimits, nested: bool = False) -> None:
        d, v2 = self.dirs, self.mode == "v2"
        if limits.memory_bytes and "memory" in d:
            mem = str(limits.memory_bytes)
            if v2:
                _write(d["memory"] / "memory.max", mem)
                if (d["memory"] / "memory.swap.max").exists():
                    _write(d["memory"] / "memory.swap.max", "0")
            else:
                _write(d["memory"] / "memory.limit_in_bytes", mem)
                if (d["memory"] / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
                    _write(d["memory"] / "memory.memsw.limit_in_bytes", mem)
        if limits.pids and "pids" in d:
            _write(d["pids"] / "pids.max", str(limits.pids))
        if "cpu" in d and not v2:
            cores = limits.weight_cores or limits.cpus or float(os.cpu_count() or 1)
            _write(d["cpu"] / "cpu.shares", str(max(2, int(cores * SHARES_PER_CORE))))
            if not nested:  # the common "aar" group; a nested group's parent keeps its own weight
                with suppress(OSError):
                    _write(d["cpu"].parent / "cpu.shares", str(BASE_SHARES))
        if limits.cpus and "cpu" in d:
            quota = max(1000, int(limits.cpus * CFS_PERIOD_US))
            if v2:
                _write(d["cpu"] / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            else:
                _write(d["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(d["cpu"] / "cpu.cfs_quota_us", str(quota))

    @property
    def procs_files(self) -> list[Path]:
        """One ``cgroup.procs`` per distinct directory: writing a pid (or 0) there moves it in."""
        return [p / "cgroup.procs" for p in dict.fromkeys(self.dirs.values())]

    def add(self, pid: int) -> None:
        for path in self.procs_files:
            _write(path, str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.procs_files:
            try:
                found.update(int(x) for x in path.read_text().split())
            except OSError:
                continue
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the kernel killed for this cgroup's memory limit."""
        mem = self.dirs.get("memory")
        if mem is None:
            return 0
        name = "memory.events" if self.mode == "v2" else "memory.oom_control"
        try:
            for line in (mem / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            return 0
        return 0

    def memory_peak(self) -> int | None:
        mem = self.dirs.get("memory")
        if mem is None:
            return None
        name = "memory.peak" if self.mode == "v2" else "memory.max_usage_in_bytes"
        try:
            return int((mem / name).read_text())
        except (OSError, ValueError):
            return None

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup until none is left (they may be forking)."""
        for _ in range(KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and delete the directories (retried while the kernel reaps)."""
        self.kill_all()
        for path in sorted(set(self.dirs.values()), key=lambda p: -len(p.parts)):
            for child in sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: -len(p.parts)) \
                    if path.is_dir() else []:
                _rmdir(child)
            _rmdir(path)


STALE = re.compile(r"attempt-(\d+)-[0-9a-f]+")


@functools.lru_cache(maxsize=1)
def sweep_stale() -> int:
    """Remove run cgroups left by processes that died without cleaning up (SIGKILL); once per
    process. A run cgroup is named after its owner's pid; one whose owner is gone is removed
    (with whatever still runs in it). Returns how many were removed."""
    removed = 0
    sup = support()
    names = {p.name for base in sup.bases.values() if base.is_dir() for p in base.iterdir() if p.is_dir()}
    for name in sorted(names):
        match = STALE.fullmatch(name)
        if match is None or _alive(int(match.group(1))):
            continue
        RunCgroup({c: b / name for c, b in sup.bases.items() if (b / name).is_dir()}, sup.mode).remove()
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rmdir(path: Path) -> None:
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
            time.sleep(0.01)
