"""Maps a shared public file and asks mincore() which of its pages are resident: the
receiving half of the page-cache channel, without touching the pages. Contained: mincore is
refused by seccomp (and cachestat with it)."""

import ctypes
import mmap
import os

import numpy as np

EXPECT = "denied"
MATCH = r"mincore: \[Errno 1\]"


def run(ctx):
    target = next(p for p in sorted(ctx.public_dir.rglob("*.npy")) if p.stat().st_size > 1 << 16)
    size = target.stat().st_size
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    fd = os.open(target, os.O_RDONLY)
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    vec = ctypes.create_string_buffer((size + 4095) // 4096)
    if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mincore: [Errno {err}] {os.strerror(err)}")
    return np.asarray(ctx.weak_test_probs)  # residency read: the channel can receive
