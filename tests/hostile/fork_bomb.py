"""A fork bomb: every process forks forever. Contained: the process count is capped inside the
sandbox (RLIMIT_NPROC on an unprivileged uid), fork fails with EAGAIN, the PID namespace dies
with the run."""

import os
import time

EXPECT = "error"
MATCH = r"BlockingIOError: forked (\d+) times"


def run(ctx):
    forked = 0
    while True:
        try:
            pid = os.fork()
        except BlockingIOError:
            if forked == 0:
                continue
            raise BlockingIOError(f"forked {forked} times, then EAGAIN") from None
        if pid == 0:  # children keep forking and never return
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
        forked += 1
