"""Pins memory no process shows as resident: fills scratch, /tmp and /dev/shm (tmpfs) and then a
memfd files holding 3x the memory limit (each under the file-size limit), keeping its own RSS
tiny, and returns valid predictions.
Contained: tmpfs and memfd pages are charged to the run's cgroup; the kernel kills the run at
its memory limit and it is scored `killed`."""

import os

import numpy as np

EXPECT = "killed"
MATCH = "memory limit"
LIMIT = 3 << 29  # the catalog's memory limit (tests/test_hostile.py)


def _fill(path, block):
    try:
        with open(path, "wb") as fh:
            while True:
                fh.write(block)
    except OSError:
        pass


def run(ctx):
    block = b"\x01" * (1 << 20)
    for top in (str(ctx.scratch), "/tmp", "/dev/shm"):
        _fill(os.path.join(top, "pin.bin"), block)
    fds = []
    for i in range(3 * (LIMIT >> 20)):
        if i % 128 == 0:  # 128 MiB per file: under the file-size limit
            fds.append(os.memfd_create("pin"))
        os.write(fds[-1], block)
    return np.asarray(ctx.weak_test_probs)
