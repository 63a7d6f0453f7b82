"""Benchmark attack: eight busy children in sessions of their own for 20 s."""

import os
import time

import numpy as np


def run(ctx):  # noqa: ANN001, ANN201 - an idea file, as ideas are written
    for _ in range(8):
        if os.fork() == 0:
            os.setsid()
            stop = time.monotonic() + 20
            while time.monotonic() < stop:
                pass
            os._exit(0)
    time.sleep(20)
    return np.asarray(ctx.weak_test_probs)
