"""Its children fill the run's memory cgroup (each under the per-process address-space limit,
together over the run's limit) while the main process waits on and on, so the kernel's OOM
kill of a child is never followed by the seed's end. Contained: the supervisor reads the slot
cgroup's oom_kill count while the seed runs and ends it at once as `killed` with the memory
reason (it was `timeout` after the whole time budget before)."""

import os
import time

import numpy as np

EXPECT = "killed"
MATCH = "memory limit"
TIME_BUDGET = 30
LIMIT = 3 << 29  # the catalog's memory limit (tests/test_hostile.py)


def run(ctx):
    for _ in range(4):
        if os.fork() == 0:
            hoard = bytearray(b"\x01") * int(LIMIT * 0.45)
            time.sleep(600 + len(hoard) * 0)
            os._exit(0)
    time.sleep(600)  # never returns within the budget: only the OOM can end it early
    return np.asarray(ctx.weak_test_probs)
