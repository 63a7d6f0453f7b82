"""Escapes through symlinks: links in scratch to host paths (the host's gold labels, path learnt
from bwrap's command line, and the roots of other namespaces). Contained: the links resolve
inside the sandbox, and results come back over a pipe, so no link is ever read by the parent."""

import os
import re

import numpy as np

EXPECT = "error|denied"
MATCH = "FileNotFoundError|PermissionError|No such file"


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
    raise FileNotFoundError(f"no link reached {gold}")
