"""Floods stdout and stderr with 200 MB, to fill the disk through the log or the parent's
memory. Contained: the log is read from a pipe keeping only a head and a tail."""

import sys

EXPECT = "error"
MATCH = "RuntimeError: flooded"


def run(ctx):
    line = "x" * 1023 + "\n"
    for _ in range(100_000):
        sys.stdout.write(line)
        sys.stderr.write(line)
    raise RuntimeError("flooded 200 MB")
