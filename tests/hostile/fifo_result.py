"""Makes predictions.npy a FIFO in its scratch and keeps its result pipe open in a detached
child that never writes or exits, so a parent that opens outputs blocks forever, or one that
waits for the pipe's end never finishes. Contained: no output file is ever opened, and the
parent stops reading once the seed's main process ended (what it left is killed)."""

import os
import time

EXPECT = "invalid"
MATCH = "no end frame"


def run(ctx):
    os.mkfifo(os.path.join(str(ctx.scratch), "predictions.npy"))
    if os.fork() == 0:  # holds fd 3 open, silent
        os.setsid()
        time.sleep(3600)
        os._exit(0)
    os._exit(0)
