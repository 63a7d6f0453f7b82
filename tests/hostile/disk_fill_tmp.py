"""Fills /tmp and /dev/shm, the usual places outside scratch. Contained: both are private
tmpfs with a small size cap."""

import os

EXPECT = "error"
MATCH = "No space left on device"


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
