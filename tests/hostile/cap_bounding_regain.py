"""Looks for a way back to the capabilities the worker once held for the /proc remount: reads
its bounding set and, where CAP_SYS_ADMIN is still in it, an exec of a set-uid-root or
file-capability binary could regain it. Success shows as valid predictions. Contained: the
bootstrap dropped CAP_SYS_ADMIN and CAP_SETPCAP from the bounding set for good (and
no_new_privs is set), so nothing the seed execs can bring them back."""

import numpy as np

EXPECT = "error"
MATCH = "not in the bounding set"
CAP_SETPCAP, CAP_SYS_ADMIN = 8, 21


def run(ctx):
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
    bounding = int(status["CapBnd"], 16)
    if bounding & (1 << CAP_SYS_ADMIN | 1 << CAP_SETPCAP):
        return np.asarray(ctx.weak_test_probs)  # regainable: the view can be undone
    raise RuntimeError("CAP_SYS_ADMIN and CAP_SETPCAP are not in the bounding set")
