"""Looks for the output directory (the one place a run used to write on the host's disk) and,
finding none, floods the result pipe instead with frames that never end (a parent keeping all
of it would run out of memory). Contained: results come back over a pipe read up to a cap; the
parent stops the seed once the cap is passed."""

import os

EXPECT = "invalid"
MATCH = "larger than"
RESULT_FD = 3


def run(ctx):
    for path in ("/aar/out", "/aar/job.json"):
        if os.path.exists(path):  # the old layout: fill it
            raise SystemExit(f"found {path}: the output directory still exists")
    block = b"\0" * (1 << 20)
    os.write(RESULT_FD, b"predictions.npy 999999999999\n")
    while True:
        os.write(RESULT_FD, block)
