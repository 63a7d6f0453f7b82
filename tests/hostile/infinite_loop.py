"""Spins forever. Contained: the wall-clock limit kills the whole sandbox."""

EXPECT = "timeout"
TIME_BUDGET = 5


def run(ctx):
    n = 0
    while True:
        n += 1
