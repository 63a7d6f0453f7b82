"""Fills its scratch dir (a tmpfs on the host's memory in the sandbox). Contained: the scratch
tmpfs has a size cap, so the write fails with ENOSPC long before the host notices."""

import os

EXPECT = "error"
MATCH = r"No space left on device|File too large"


def run(ctx):
    block = os.urandom(1 << 20) * 8
    for i in range(1_000_000):
        with open(ctx.scratch / f"fill-{i}.bin", "wb") as fh:
            for _ in range(16):
                fh.write(block)
