"""Walks from the public cache to its private sibling: public_dir/../../private/<key>, the
realpath of the public dir, and the host path of the bind mount read from /proc/self/mountinfo.
Contained: only the public directory itself is mounted."""

import os
import re

import numpy as np

EXPECT = "error"
MATCH = "FileNotFoundError"


def _host_public_paths():
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4 and fields[4] == str(os.path.realpath("/aar/public")):
                yield fields[3]


def run(ctx):
    name = ctx.public_dir.name
    candidates = [ctx.public_dir / ".." / ".." / "private" / name / "gold_test.npy",
                  os.path.join(os.path.realpath(ctx.public_dir), "..", "..", "private", name, "gold_test.npy")]
    for host in _host_public_paths():
        private = re.sub(r"/public/", "/private/", host)
        candidates += [f"{private}/gold_test.npy", f"{host}/../../private/{os.path.basename(host)}/gold_test.npy"]
    last = FileNotFoundError(f"tried {candidates}")
    for path in candidates:
        try:
            return np.eye(ctx.n_classes)[np.load(path)]
        except OSError as exc:
            last = exc
    raise last
