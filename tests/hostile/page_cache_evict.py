"""The sending half of the page-cache channel: evicts pages of a shared public file
(posix_fadvise DONTNEED), then the same through a mapping (madvise MADV_PAGEOUT). Contained:
both advices are refused by seccomp."""

import mmap
import os

import numpy as np

EXPECT = "denied"
MATCH = r"Errno 1\]"
MADV_PAGEOUT = 21


def run(ctx):
    target = next(p for p in sorted(ctx.public_dir.rglob("*.npy")) if p.stat().st_size > 1 << 16)
    fd = os.open(target, os.O_RDONLY)
    refused = []
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        refused.append(exc)
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as mapped:
        try:
            mapped.madvise(MADV_PAGEOUT)
        except OSError as exc:
            refused.append(exc)
    if len(refused) == 2:
        raise refused[0]
    return np.asarray(ctx.weak_test_probs)  # one of them evicted: the channel can send
