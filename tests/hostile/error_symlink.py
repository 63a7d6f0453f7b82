"""Leaves error.json and predictions.npy as symlinks to a host file (/etc/passwd) where a run
used to write its outputs (its scratch, its working directory) and exits with an error, so a
parent reading files would copy the host file into the message shown to the proposer.
Contained: the parent reads no file the idea made; results arrive only over the result pipe."""

import os

EXPECT = "error"
MATCH = r"^idea process exited with code 2$"


def run(ctx):
    for where in (str(ctx.scratch), os.getcwd()):
        for name in ("error.json", "predictions.npy"):
            try:
                os.symlink("/etc/passwd", os.path.join(where, name))
            except OSError:
                pass
    os._exit(2)
