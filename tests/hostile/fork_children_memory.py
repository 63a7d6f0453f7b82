"""Forks four children that each hold 60% of the memory limit (every one under the per-process
address-space limit; together 2.4x the limit), waits until all hold it, then returns valid
predictions. Contained: the run's cgroup counts every process together; the kernel kills one
and the run is scored `killed`."""

import os
import time

import numpy as np

EXPECT = "killed"
MATCH = "memory limit"
LIMIT = 3 << 29  # the catalog's memory limit (tests/test_hostile.py)


def run(ctx):
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            hoard = bytearray(b"\x01") * int(LIMIT * 0.6)
            time.sleep(20 + len(hoard) * 0)
            os._exit(0)
        pids.append(pid)
    time.sleep(8)
    return np.asarray(ctx.weak_test_probs)
