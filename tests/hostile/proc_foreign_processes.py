"""Counts the processes of other uids it can see in /proc (the worker, bwrap's init, other
seeds): every one is a source of thread names, command lines and status to read. Success shows
as ``foreign_pids`` > 0. Contained: /proc is hidepid=invisible in a shared sandbox, so a seed
sees only its own uid's processes."""

import os

import numpy as np

EXPECT = "ok"
CHECK = "no_foreign_processes"


def run(ctx):
    me, foreign = os.getuid(), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                foreign += os.stat(f"/proc/{pid}").st_uid != me
            except OSError:
                continue
    ctx.report("foreign_pids", foreign)
    return np.asarray(ctx.weak_test_probs)
