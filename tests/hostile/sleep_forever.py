"""Sleeps forever without using CPU (so a CPU-time limit alone would never fire). Contained:
the wall-clock limit."""

import time

EXPECT = "timeout"
TIME_BUDGET = 5


def run(ctx):
    while True:
        time.sleep(3600)
