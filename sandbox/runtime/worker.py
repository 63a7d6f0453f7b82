"""The warm worker: one sandboxed process imports torch and the runtime once (and, CPU-only,
runs the runtime's ops once on a toy problem), then forks one child per seed when the parent
says so, for as many attempts as the parent sends it.

``python -m sandbox.runtime.worker`` (or via the sandbox bootstrap). The parent talks over
stdin, one line each: ``start KEY SEEDPLAN-JSON``, ``kill KEY``, ``clean KEY`` (wipe the
scratch the finished seed KEY used, as its own uid); it reads events on stdout: ``ready``,
``exit KEY CODE``, ``cleaned KEY CODE`` (0: the scratch is empty). Each child, before any idea
code: moves itself into its slot's cgroup, opens its own result and log FIFOs and closes every
other descriptor, owns its slot's scratch, sets its rlimits, drops to its slot's uid (root
hosts: never uid 0, never the uid of a concurrent seed) and only then runs
``sandbox.runtime.entry.run_job``; it ends with ``os._exit`` so no atexit handler or lingering
thread of the idea runs after its result was sent. The worker itself never runs idea code.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import selectors
import signal
import sys
import traceback

from pydantic import BaseModel, Field

from sandbox.runtime.context import JobSpec

EXIT_CHILD_SETUP = 70
RESULT_FD = 3  # where a child finds its result pipe


class SeedPlan(BaseModel):
    """How the worker starts one seed's child (written by the trusted parent)."""

    job: JobSpec = Field(description="The seed's job (paths as the worker sees them).")
    result_path: str = Field(description="This seed's result FIFO (the parent holds the read end).")
    log_path: str = Field(description="This seed's log FIFO (stdout and stderr of the child).")
    uid: int | None = Field(None, description="Uid (and gid) the child drops to; None: keep the worker's.")
    cgroup_procs: list[str] = Field(default_factory=list, description="cgroup.procs files the child joins.")
    nproc: int | None = Field(None, description="RLIMIT_NPROC after the drop (binds only a non-root uid).")
    rlimits: dict[str, int] = Field(default_factory=dict, description="RLIMIT_<NAME> -> value for the child.")
    allow_root: bool = Field(False, description="Only the unsandboxed 'process' isolation: idea code may run as root.")


KEY = re.compile(r"[a-z0-9-]{1,64}")


def _warm() -> None:
    """Import what every idea needs, once, and run the runtime's ops once on a toy problem
    where no GPU was given (see ``_warm_ops``)."""
    import shutil
    import tempfile

    import numpy  # noqa: F401
    import torch  # noqa: F401

    # torch.optim imports torch._dynamo on first use (~3 s a seed). Its import makes an inductor
    # cache dir and names it in the environment: both go, so a seed gets its own under its TMPDIR.
    made = os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="aar-warm-")
    import torch._dynamo  # noqa: F401
    import torch.optim  # noqa: F401

    shutil.rmtree(made, ignore_errors=True)
    del os.environ["TORCHINDUCTOR_CACHE_DIR"]

    import sandbox.runtime.entry  # noqa: F401
    import sandbox.runtime.losses  # noqa: F401
    import sandbox.runtime.probes  # noqa: F401
    import sandbox.runtime.train  # noqa: F401

    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":  # a GPU worker's CUDA must start in its child
        _warm_ops()


def _warm_ops() -> None:
    """Run each runtime op once, so its one-time set-up (kernel selection, lazy imports, the
    autograd engine, allocator pools) is inherited by every forked seed instead of redone in
    each: a linear-head seed took 1.09 s of CPU from a cold worker and 0.82 s from a warm one.

    On one thread: torch's thread pool must not exist before a fork (a child that asks for more
    threads makes its own). Every random state is put back, so a seed starts exactly as it
    would from a cold worker."""
    import random

    import numpy as np
    import torch

    from sandbox.runtime import losses, probes, train

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    # Torch only, not sandbox.cache.threads.single_threaded: that module is outside the sandbox, and
    # its threadpoolctl writes KMP_DUPLICATE_LIB_OK into the environment every seed inherits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = np.random.default_rng(0).normal(size=(96, 8)).astype(np.float32)
        soft = np.full((96, 3), 1 / 3, np.float32)
        for hidden, loss in ((0, losses.soft_ce), (4, losses.aux_confidence_loss())):
            head = train.train_head(rows, soft, hidden=hidden, dropout=0.1, epochs=2, loss_fn=loss,
                                    val=(rows[:16], soft[:16]), sample_weight=np.ones(96))
            head.predict_proba(rows)
        probes.knn_probe(rows, soft, rows, k=5, exclude_self=True)
        probes.label_propagation(rows, soft, k=5, iters=2)
    finally:
        torch.set_num_threads(threads)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    try:
        os.setresuid(0, 0, 0)
    except PermissionError:
        return
    raise SystemExit("worker: could regain root after dropping it; refusing to run the idea")


def _mapped_bytes() -> int:
    """This process's address space (VmSize): the warm runtime a child inherits."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(seed: SeedPlan) -> int:
    os.setsid()  # a group of its own, so a kill reaches what it forks (a cgroup reaches the rest)
    for path in seed.cgroup_procs:  # before anything else: all it does from here is counted
        with open(path, "w") as fh:
            fh.write("0")
    result_fd = os.open(seed.result_path, os.O_WRONLY)  # root-owned 0600: before the uid drop
    log_fd = os.open(seed.log_path, os.O_WRONLY)
    scratch = seed.job.scratch_dir
    if seed.uid is not None:
        os.chown(scratch, seed.uid, seed.uid)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.dup2(result_fd, RESULT_FD)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(RESULT_FD + 1, 1 << 16)  # the control pipes, the selector, other children's pidfds
    for name, value in seed.rlimits.items():
        if name == "RLIMIT_AS":  # the idea's own allowance on top of the runtime it inherits
            value = min(value + _mapped_bytes(), resource.getrlimit(resource.RLIMIT_AS)[1])
        resource.setrlimit(getattr(resource, name), (value, value))
    if seed.uid is not None:
        _drop_to(seed.uid)
        os.chmod(scratch, 0o700)  # as its owner: whatever mode the slot's last seed left it in
    if 0 in os.getresuid() or 0 in os.getresgid():
        if not seed.allow_root:
            raise SystemExit("worker: refusing to run idea code as root")
    if seed.nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (seed.nproc, seed.nproc))
    os.environ.update({"HOME": scratch, "TMPDIR": scratch})
    import tempfile

    tempfile.tempdir = None  # the worker's choice of temp dir is not this seed's
    os.chdir(scratch)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    from sandbox.runtime.entry import run_job

    return run_job(seed.job, RESULT_FD)


def _start(seed: SeedPlan) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = EXIT_CHILD_SETUP
    try:
        code = _child(seed)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_CHILD_SETUP
        if not isinstance(exc.code, int) and exc.code is not None:
            print(str(exc.code), file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the child must always end in os._exit below
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return pid  # unreachable


def _wipe(root: str) -> None:
    """Delete everything under ``root`` (not ``root``), fixing permissions the idea removed
    (its own: the cleaner runs as the seed's uid, which owns all of it)."""
    os.chmod(root, 0o700)
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            _wipe(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def _start_cleaner(seed: SeedPlan) -> int:
    """A child that wipes the seed's scratch as the seed's own uid (the worker may not read it)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.closerange(3, 1 << 16)
        if seed.uid is not None:
            _drop_to(seed.uid)
            # Everything else this uid runs in the sandbox is the seed's leftovers (a slot runs
            # one seed at a time): gone before the wipe, even where no cgroup caught them.
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        _wipe(seed.job.scratch_dir)
        code = 0 if not os.listdir(seed.job.scratch_dir) else 1
    except BaseException:  # noqa: BLE001 - anything left: the parent retires this worker
        code = 1
    finally:
        os._exit(code)
    return pid  # unreachable


def _tell(line: str) -> None:
    os.write(1, (line + "\n").encode())


class Serving:
    """The worker's state: seeds it started (by key) and the processes it waits for."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.seeds: dict[str, SeedPlan] = {}  # started and not yet cleaned
        self.running: dict[str, int] = {}  # key -> pid of the seed's child
        self.cleaning: set[str] = set()  # a second ``clean`` of one seed starts no second cleaner

    def watch(self, pid: int, event: str, key: str) -> None:
        self.sel.register(os.pidfd_open(pid), selectors.EVENT_READ, (event, key, pid))

    def command(self, line: str) -> None:
        verb, _, rest = line.partition(" ")
        key, _, body = rest.partition(" ")
        if not KEY.fullmatch(key):
            return
        if verb == "start" and key not in self.seeds:
            seed = self.seeds[key] = SeedPlan.model_validate_json(body)
            self.running[key] = pid = _start(seed)
            self.watch(pid, "exit", key)
        elif verb == "kill" and key in self.running:
            _kill(self.running[key])
        elif verb == "clean" and key in self.seeds and key not in self.running and key not in self.cleaning:
            self.cleaning.add(key)
            self.watch(_start_cleaner(self.seeds[key]), "cleaned", key)

    def reaped(self, fileobj: int, event: str, key: str, pid: int) -> None:
        self.sel.unregister(fileobj)
        os.close(fileobj)
        _, status = os.waitpid(pid, 0)
        if event == "exit":
            self.running.pop(key, None)
        else:
            self.seeds.pop(key, None)
            self.cleaning.discard(key)
        _tell(f"{event} {key} {os.waitstatus_to_exitcode(status)}")


def serve() -> int:
    _warm()
    _tell("ready")
    state = Serving()
    state.sel.register(0, selectors.EVENT_READ, None)
    pending = b""
    while True:
        for key, _ in state.sel.select():
            if key.data is None:
                chunk = os.read(0, 1 << 16)
                if not chunk:  # the parent is done: nothing may outlive it
                    for pid in state.running.values():
                        _kill(pid)
                    return 0
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    state.command(line.decode("utf-8", "replace"))
            else:
                state.reaped(key.fileobj, *key.data)  # type: ignore[arg-type]


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def main() -> int:
    return serve()


if __name__ == "__main__":
    sys.exit(main())
