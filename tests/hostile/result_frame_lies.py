"""Sends a result frame whose length header claims a gigabyte (the parent might allocate it or
wait for it forever), then exits. Contained: the parent reads at most its cap and refuses a
stream that does not add up."""

import os

EXPECT = "invalid"
MATCH = "malformed result stream"


def run(ctx):
    os.write(3, b"predictions.npy 1000000000\n" + b"\0" * 100)
    os._exit(0)
