"""The page-cache channel that is left once the filter refuses the residency probes and
evictions (mincore, cachestat, RWF_NOWAIT, fadvise DONTNEED, madvise COLD/PAGEOUT): read
*timing*. Seed 0 (the sender) reads the pages of a cold shared public file where its message
has a 1 (they become resident); seed 1 (the receiver) waits, then times one read of every such
page: a fast read is a resident page, a 1. Reads are random-access (FADV_RANDOM, allowed) so
readahead does not fill neighbours. Each page carries one bit once: a read makes it resident,
and no sandboxed seed can evict a shared page again. The message is a fixed pseudo-random bit
string, so the receiver counts its own errors; it reports bits, right, seconds and the
latencies it told apart (diagnostics). The benchmark evicts the file on the host first."""

import os
import time
from pathlib import Path

import numpy as np

PAGE = 4096
STRIDE = 1  # every page: FADV_RANDOM turns readahead off for the reads
WAIT_S = 2.0  # the receiver starts reading after the sender is done
FADV_RANDOM = 1


def target(public_dir: Path) -> Path:
    """The largest file of the public cache (the benchmark evicts the same one)."""
    files = [p for p in public_dir.rglob("*") if p.is_file()]
    return max(files, key=lambda p: (p.stat().st_size, str(p)))


def message(n_bits: int) -> np.ndarray:
    return np.random.default_rng(1234).integers(0, 2, n_bits)


def _read(fd: int, offset: int) -> int:
    t = time.perf_counter_ns()
    os.pread(fd, 1, offset)
    return time.perf_counter_ns() - t


def run(ctx) -> np.ndarray:  # noqa: ANN001 - the idea API
    path = target(ctx.public_dir)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, FADV_RANDOM)
    n_bits = os.fstat(fd).st_size // (PAGE * STRIDE)
    bits = message(n_bits)
    offsets = [i * PAGE * STRIDE for i in range(n_bits)]
    started = time.perf_counter()
    if ctx.seed == 0:
        for offset, bit in zip(offsets, bits, strict=True):
            if bit:
                _read(fd, offset)
        ctx.report("role", "sender")
    else:
        time.sleep(WAIT_S)
        started = time.perf_counter()
        times = np.array([_read(fd, o) for o in offsets], dtype=float)
        # two clusters of latencies: the threshold is the geometric middle of their medians
        low, high = np.percentile(times, 10), np.percentile(times, 90)
        threshold = np.sqrt(low * high)
        got = (times < threshold).astype(int)
        ctx.report("role", "receiver")
        ctx.report("bits", int(n_bits))
        ctx.report("right", int((got == bits).sum()))
        ctx.report("fast_ns", float(np.median(times[got == 1])) if got.any() else 0.0)
        ctx.report("slow_ns", float(np.median(times[got == 0])) if (got == 0).any() else 0.0)
    ctx.report("seconds", time.perf_counter() - started)
    ctx.report("file_bytes", int(os.fstat(fd).st_size))
    os.close(fd)
    return np.asarray(ctx.weak_test_probs)
