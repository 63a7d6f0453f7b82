"""Leaves a daemon behind to outlive the run: double fork, setsid, exec a long sleeper whose
command line carries a marker, then fail. Contained: the daemon is still inside the run's PID
namespace, which dies with the run; the test looks for the marker on the host afterwards."""

import os
import sys
import time

EXPECT = "error"
MATCH = "RuntimeError: daemon started"
MARKER = "aar-hostile-daemon-marker"


def run(ctx):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", f"import time; time.sleep(600)  # {MARKER}"])
        os._exit(0)
    time.sleep(1)
    raise RuntimeError("daemon started; the harness must reap it")
