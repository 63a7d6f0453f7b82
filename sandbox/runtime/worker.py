"""The warm worker: one process per attempt imports torch and the runtime once, then forks one
child per seed when the parent says so.

``python -m sandbox.runtime.worker PLAN.json`` (or via the sandbox bootstrap). The parent talks
over stdin (``start KEY`` / ``kill KEY``) and reads events on stdout (``ready``, ``exit KEY
CODE``). Each child, before any idea code: moves itself into its seed's cgroup, takes its own
log and result pipes and closes every other descriptor, owns its own scratch, sets its rlimits,
drops to its seed's uid (root hosts: never uid 0, never the uid of another seed) and only then
runs ``sandbox.runtime.entry.run_job``; it ends with ``os._exit`` so no atexit handler or
lingering thread of the idea runs after its result was sent.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import sys
import traceback
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox.runtime.context import JobSpec

EXIT_CHILD_SETUP = 70
RESULT_FD = 3  # where a child finds its result pipe


class SeedPlan(BaseModel):
    """How the worker starts one seed's child (written by the trusted parent)."""

    job: JobSpec = Field(description="The seed's job (paths as the worker sees them).")
    result_fd: int = Field(description="Write end of this seed's result pipe (inherited).")
    log_fd: int = Field(description="Write end of this seed's log pipe (inherited).")
    uid: int | None = Field(None, description="Uid (and gid) the child drops to; None: keep the worker's.")
    cgroup_procs: list[str] = Field(default_factory=list, description="cgroup.procs files the child joins.")
    nproc: int | None = Field(None, description="RLIMIT_NPROC after the drop (binds only a non-root uid).")
    rlimits: dict[str, int] = Field(default_factory=dict, description="RLIMIT_<NAME> -> value for the child.")
    allow_root: bool = Field(False, description="Only the unsandboxed 'process' isolation: idea code may run as root.")


class WorkerPlan(BaseModel):
    """Every seed one worker may run, by key."""

    seeds: dict[str, SeedPlan] = Field(description="Seed plans by key (the parent's 'start KEY').")


def _warm() -> None:
    """Import what every idea needs, once; no torch op runs here (its thread pool must not
    exist before a fork)."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    import sandbox.runtime.entry  # noqa: F401
    import sandbox.runtime.losses  # noqa: F401
    import sandbox.runtime.probes  # noqa: F401
    import sandbox.runtime.train  # noqa: F401


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    try:
        os.setresuid(0, 0, 0)
    except PermissionError:
        return
    raise SystemExit("worker: could regain root after dropping it; refusing to run the idea")


def _child(seed: SeedPlan) -> int:
    os.setsid()  # a group of its own, so a kill reaches what it forks (a cgroup reaches the rest)
    for path in seed.cgroup_procs:  # before anything else: all it does from here is counted
        with open(path, "w") as fh:
            fh.write("0")
    scratch = seed.job.scratch_dir
    if seed.uid is not None:
        os.chown(scratch, seed.uid, seed.uid)
    os.dup2(seed.log_fd, 1)
    os.dup2(seed.log_fd, 2)
    os.dup2(seed.result_fd, RESULT_FD)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(RESULT_FD + 1, 1 << 16)  # other seeds' pipes, the control pipes, the selector
    for name, value in seed.rlimits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if seed.uid is not None:
        _drop_to(seed.uid)
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


def _tell(line: str) -> None:
    os.write(1, (line + "\n").encode())


def serve(plan: WorkerPlan) -> int:
    _warm()
    _tell("ready")
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, None)
    running: dict[str, int] = {}
    pending = b""
    while True:
        for key, _ in sel.select():
            if key.data is None:
                chunk = os.read(0, 4096)
                if not chunk:  # the parent is done: nothing may outlive it
                    for pid in running.values():
                        _kill(pid)
                    return 0
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    _command(line.decode(), plan, running, sel)
            else:
                seed_key, pid = key.data
                sel.unregister(key.fileobj)
                os.close(key.fileobj)  # type: ignore[arg-type]
                _, status = os.waitpid(pid, 0)
                running.pop(seed_key, None)
                _tell(f"exit {seed_key} {os.waitstatus_to_exitcode(status)}")


def _command(line: str, plan: WorkerPlan, running: dict[str, int], sel: selectors.BaseSelector) -> None:
    verb, _, key = line.partition(" ")
    if verb == "start" and key in plan.seeds and key not in running:
        seed = plan.seeds[key]
        pid = _start(seed)
        for fd in (seed.result_fd, seed.log_fd):  # the child holds them now; EOF follows it
            os.close(fd)
        running[key] = pid
        sel.register(os.pidfd_open(pid), selectors.EVENT_READ, (key, pid))
    elif verb == "kill" and key in running:
        _kill(running[key])


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def main(argv: list[str]) -> int:
    return serve(WorkerPlan.model_validate_json(Path(argv[1]).read_text()))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
