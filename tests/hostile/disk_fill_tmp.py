"""Fills /tmp and /dev/shm, the usual places outside scratch. Contained: both are private
tmpfs with a small size cap (and not writable at all where seeds share one sandbox)."""

import os

EXPECT = "error|denied"
MATCH = "No space left on device|Permission denied"


def run(ctx):
    block = os.urandom(1 << 20)
    for top in ("/dev/shm", "/tmp"):
        try:
            with open(f"{top}/fill.bin", "wb") as fh:
                while True:
                    fh.write(block)
                    fh.flush()
        except OSError as exc:
            if top == "/tmp":
                raise
            ctx.log.info("%s full: %s", top, exc)
