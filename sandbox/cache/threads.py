"""Thread use of the cache build's numeric work.

Small ops (a linear head's steps, sklearn's L-BFGS on a few hundred rows, one encoder batch of
short texts) split over several BLAS/OpenMP threads spend their time at barriers: on the 2-core
box a TF-IDF teacher fit took 8 s of CPU at 2 BLAS threads and 1 s at 1, a gold ceiling 15 s
and 1 s, with the same result (differences of 1e-14 and 0). Under load it is worse still, as a
spinning thread waits for one the scheduler has parked. So the build runs each small piece on
one thread and gets its parallelism from independent pieces side by side (``parallel_map``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_threads() -> int:
    """Threads this process may use: torch's setting (the cores, or what the caller set)."""
    import torch

    return max(1, torch.get_num_threads())


@contextmanager
def single_threaded() -> Iterator[None]:
    """Torch and the BLAS libraries (numpy, scipy, sklearn) on one thread inside the block."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` in order, ``workers`` at a time in threads (torch releases the GIL
    inside its ops, so single-threaded torch work in two threads uses two cores)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(fn, items)
