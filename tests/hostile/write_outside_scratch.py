"""Writes outside its scratch dir: the file system root, /etc, the libraries, the public cache,
its own idea file and job file. Contained: everything but scratch, /tmp and the output dir is
read-only."""

import os

import numpy as np

EXPECT = "denied"
MATCH = r"Read-only file system|Permission denied"


def run(ctx):
    targets = ["/pwned", "/etc/pwned", "/usr/lib/pwned", str(ctx.public_dir / "card.json"),
               str(ctx.public_dir / "pwned"), "/aar/job.json", os.path.abspath(__file__)]
    errors = []
    for path in targets:
        try:
            with open(path, "a") as fh:
                fh.write("pwned")
        except OSError as exc:
            errors.append(exc)
    if len(errors) < len(targets):
        return np.asarray(ctx.weak_test_probs)
    raise errors[-1]
