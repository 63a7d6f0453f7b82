"""Escapes through symlinks: links in scratch to host paths, then predictions.npy in the output
dir as a symlink to the host's gold labels (path learnt from bwrap's command line), exiting
before the runtime overwrites it, so the parent would load gold as the predictions.
Contained: the links resolve inside the sandbox; the parent never follows a symlink."""

import os
import re

import numpy as np

EXPECT = "invalid"
MATCH = "predictions.npy cannot be opened safely"


def run(ctx):
    with open("/proc/1/cmdline", "rb") as fh:
        hosts = re.findall(rb"(/[^\0]*)/public/[^\0/]+", fh.read()) or [b"/tmp/aarcache"]
    gold = f"{hosts[0].decode()}/private/{ctx.public_dir.name}/gold_test.npy"
    for i, target in enumerate([gold, "/proc/1/root", "/../../..", "/proc/self/root/.."]):
        link = ctx.scratch / f"link{i}"
        os.symlink(target, link)
        try:
            np.load(link)
            return np.eye(ctx.n_classes)[np.load(link)]
        except (OSError, ValueError):
            pass
    import json

    with open("/aar/job.json") as fh:
        out = json.load(fh)["out_dir"]
    os.symlink(gold, os.path.join(out, "predictions.npy"))
    os._exit(0)
