"""Which sessions a live process is running: ``<lab>/.git/aar-running/<session>.lock``, held
(fcntl) by the process that runs the session. The kernel drops the lock when that process dies,
so a session marked running whose lock nobody holds was left by a process that is gone."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.layout import RUNNING_DIR, StoreError
from experiments.records import check_session_id


def lock_path(git_dir: Path, session_id: str) -> Path:
    return git_dir / RUNNING_DIR / f"{check_session_id(session_id)}.lock"


@contextmanager
def running(git_dir: Path, session_id: str) -> Iterator[None]:
    """Hold the session's liveness lock while this process runs it (a clean end removes the
    file). A session another process is running is refused."""
    path = lock_path(git_dir, session_id)
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreError(f"session {session_id} is being run by another aar process (pid {holder}); "
                         "wait for it to end, or stop it first") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # still ours (held): the session's end status is written by now
        os.close(fd)


def unheld_sessions(git_dir: Path) -> list[str]:
    """Sessions with a liveness lock file that no process holds (their runner is gone)."""
    free = []
    for path in sorted((git_dir / RUNNING_DIR).glob("*.lock")):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live process holds it
        finally:
            os.close(fd)
        free.append(path.name[: -len(".lock")])
    return free
