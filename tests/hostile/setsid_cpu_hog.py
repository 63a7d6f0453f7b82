"""Starts eight busy children in sessions of their own (out of reach of a process-group kill
and of per-process CPU limits) and measures how many cores they get together for 4 s; a run
on more cores than its thread allowance slows every concurrent run. Contained: the run's cgroup
has a CPU quota equal to its thread allowance (test_hostile checks the reported cores)."""

import os
import time

import numpy as np

EXPECT = "ok"
CHECK = "cpu_within_quota"
HOGS = 8
SECONDS = 4.0


def run(ctx):
    read_end, write_end = os.pipe()
    for _ in range(HOGS):
        if os.fork() == 0:
            os.setsid()
            os.close(read_end)
            stop = time.monotonic() + SECONDS
            while time.monotonic() < stop:
                pass
            os.write(write_end, f"{time.process_time():.3f}\n".encode())
            os._exit(0)
    os.close(write_end)
    started = time.monotonic()
    data = b""
    while chunk := os.read(read_end, 4096):
        data += chunk
    wall = time.monotonic() - started
    cpu = sum(float(x) for x in data.split())
    ctx.report("hog_cores", cpu / wall)
    return np.asarray(ctx.weak_test_probs)
