"""The memory limits of this process's live warm workers, so that each worker alone fits the
machine (its seeds' limits scaled down, with a note, where it would not)."""

from __future__ import annotations

import threading
from dataclasses import replace

from sandbox.errors import HarnessError
from sandbox.isolation.base import Limits
from sandbox.isolation.cgroups import machine_memory_bytes

WORKER_MEMORY = 2 << 30  # the worker's own share (interpreter, torch) on top of its seeds'
MIN_SEED_MEMORY = 512 << 20  # below this a seed cannot even load torch: refuse, do not shrink


class MemoryLedger:
    """The memory limits of this process's live workers. Each worker's seeds are scaled down
    (with a note) so that the worker alone fits the machine; where live workers together would
    exceed it (warm workers of other evaluators, parallel researchers), the new one still
    starts, never waits (an idle warm worker holds its share indefinitely, so waiting could
    stall a session), and its note says the sum is not enforced: each limit holds, the kernel
    guards their total."""

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.held: dict[int, int] = {}
        self._lock = threading.Lock()

    def reserve(self, key: int, limits: Limits, n_slots: int) -> tuple[Limits, str | None]:
        """Limits for a worker of ``n_slots`` (scaled where needed) and the note when scaled
        or when live workers' limits together exceed the machine."""
        total = self.total if self.total is not None else machine_memory_bytes()
        want = n_slots * limits.memory_bytes + WORKER_MEMORY
        per_seed = min(limits.memory_bytes, (total - WORKER_MEMORY) // max(1, n_slots))
        if per_seed < MIN_SEED_MEMORY:
            raise HarnessError(f"not enough memory for {n_slots} seed(s) at once: the machine has "
                               f"{total >> 20} MiB; run fewer seeds at once")
        notes = []
        if per_seed < limits.memory_bytes:
            notes.append(f"memory scaled to {per_seed >> 20} MiB per seed (asked {limits.memory_bytes >> 20} MiB) "
                         f"so {n_slots} seed(s) and the worker ({want >> 20} MiB asked) fit the machine's "
                         f"{total >> 20} MiB")
        with self._lock:
            others = sum(self.held.values())
            self.held[key] = n_slots * per_seed + WORKER_MEMORY
        if others + self.held[key] > total:
            notes.append(f"live workers' memory limits together ({(others + self.held[key]) >> 20} MiB) exceed "
                         f"the machine's {total >> 20} MiB: each limit holds, their sum is not enforced")
        note = "; ".join(notes) or None
        return (limits if per_seed == limits.memory_bytes else replace(limits, memory_bytes=per_seed)), note

    def release(self, key: int) -> None:
        with self._lock:
            self.held.pop(key, None)


LEDGER = MemoryLedger()
