"""Signals other runs through locks on the shared public files: flock, fcntl record locks and
open-file-description locks on card.json (another run polls them to read bits). Contained: the
seccomp filter refuses every lock call (ENOLCK)."""

import fcntl
import os

import numpy as np

EXPECT = "error"
MATCH = "No locks available"


def run(ctx):
    with open(ctx.public_dir / "card.json", "rb") as fh:
        for attempt in (lambda: fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB),
                        lambda: fcntl.lockf(fh, fcntl.LOCK_SH | fcntl.LOCK_NB),
                        lambda: fcntl.fcntl(fh, getattr(fcntl, "F_OFD_SETLK", 37), b"\0" * 32)):
            attempt()
    os.sched_yield()
    return np.asarray(ctx.weak_test_probs)
