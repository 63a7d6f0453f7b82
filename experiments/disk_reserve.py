"""Space for the last writes of a full disk: the lab keeps RESERVE_BYTES in a file of its own;
a write that meets ENOSPC (or a quota) frees it and is tried once more, so the attempt in
flight and the session's end status still go in, and the error says so in one line."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from experiments.layout import RESERVE_BYTES, RESERVE_FILE, LabDiskFull
from sandbox.files import atomic_write

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_Method = Callable[..., Any]


class DiskReserve:
    """The reserve file of one lab (in its git directory)."""

    def __init__(self, git_dir: Path, lab: Path) -> None:
        self.path = git_dir / RESERVE_FILE
        self.objects = git_dir / "objects"
        self.lab = lab
        self.spent = False

    def keep(self) -> None:
        """Set aside RESERVE_BYTES (silently skipped where there is no room; not again in a
        process that has spent it: the disk is still full)."""
        if self.spent or self.path.exists():
            return
        try:  # whole or not at all (a writer killed mid-way leaves no short reserve); written, not
            atomic_write(self.path, b"\0" * RESERVE_BYTES)  # sparse: tmpfs and quotas count it
        except OSError:
            pass

    def release(self) -> bool:
        """Free the reserve (and what a failed write left half-written); True when space was freed."""
        for leftover in self.objects.glob("obj*"):  # gitdb's temporary object files
            leftover.unlink(missing_ok=True)
        self.spent = True
        if not self.path.exists():
            return False
        self.path.unlink()
        return True

    def message(self, what: str, exc: OSError, recorded: bool) -> str:
        """One line: what filled, what was kept, how to go on."""
        kept = (f"{what} was still recorded, from the lab's reserve space, and nothing recorded before is lost"
                if recorded else f"{what} could not be recorded; nothing recorded before is lost")
        return (f"the lab's disk is full ({self.lab}: {os.strerror(exc.errno or errno.ENOSPC)}): {kept}; "
                "free space there, then resume")


class _HasReserve(Protocol):
    disk: DiskReserve


def survives_full_disk(what: str) -> Callable[[_Method], _Method]:
    """A lab write that meets a full disk frees the lab's reserve and is tried once more, then
    raises LabDiskFull (one line: what filled, that nothing is lost, what to do)."""

    def wrap(method: _Method) -> _Method:
        @functools.wraps(method)
        def write(self: _HasReserve, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                if not self.disk.release():  # nothing left to write from
                    raise LabDiskFull(self.disk.message(what, exc, recorded=False), recorded=False) from exc
                try:
                    method(self, *args, **kwargs)
                except OSError as again:
                    if again.errno not in DISK_FULL:
                        raise
                    raise LabDiskFull(self.disk.message(what, again, recorded=False), recorded=False) from again
                raise LabDiskFull(self.disk.message(what, exc, recorded=True), recorded=True) from exc

        return write

    return wrap
