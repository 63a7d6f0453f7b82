"""Reserves 8 GiB without growing any file's size (fallocate with FALLOC_FL_KEEP_SIZE), which a
size watch on file lengths misses, in scratch, /tmp and /dev/shm. Contained: there is no output
directory; scratch and the temp dirs are size-capped tmpfs (charged to the run's cgroup), so
the reservation fails."""

import ctypes
import os

import numpy as np

EXPECT = "error|denied"
MATCH = "No space left on device|Permission denied|memory limit"
FALLOC_FL_KEEP_SIZE = 1


def run(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    last = None
    for top in (str(ctx.scratch), "/tmp", "/dev/shm"):
        try:
            fd = os.open(os.path.join(top, "reserve.bin"), os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError as exc:
            last = exc
            continue
        if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8 << 30) == 0:
            return np.asarray(ctx.weak_test_probs)  # reserved: the attack worked
        last = OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    raise last
