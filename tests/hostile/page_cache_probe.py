"""Probes which pages of a shared read-only public file are in the page cache without loading
them (preadv2 with RWF_NOWAIT): with a sender evicting pages (fadvise DONTNEED), residency
carries bits between sandboxes, even across Ray nodes' sandboxes on one host. Contained: the
RWF_NOWAIT flag is refused by seccomp."""

import os

import numpy as np

EXPECT = "error"
MATCH = r"\[Errno 95\]"


def run(ctx):
    target = next(p for p in sorted(ctx.public_dir.rglob("*.npy")) if p.stat().st_size > 1 << 16)
    fd = os.open(target, os.O_RDONLY)
    buf = bytearray(4096)
    os.preadv(fd, [buf], 0, os.RWF_NOWAIT)  # raises where it is refused
    return np.asarray(ctx.weak_test_probs)  # a residency probe that works: the channel is open
