"""Benchmark attack (not a catalog entry): pins memory in memfd files (under the file-size
limit each) and in forked children, printing how much is pinned; stops at 3 GiB."""

import os
import sys
import time

import numpy as np

STEP = 64 << 20
CAP = 3 << 30


def run(ctx):  # noqa: ANN001, ANN201 - an idea file, as ideas are written
    block = b"\x01" * STEP
    fds, pinned = [], 0
    while pinned < CAP:
        if pinned % (128 << 20) == 0:
            fds.append(os.memfd_create("pin"))
        os.write(fds[-1], block)
        pinned += STEP
        print(f"pinned {pinned >> 20}", file=sys.stderr, flush=True)
    time.sleep(2)
    return np.asarray(ctx.weak_test_probs)
