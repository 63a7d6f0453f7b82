"""Fills the output directory, the one place it can write on the host's disk, with many big
files. Contained: the parent watches the output directory and kills the run over its cap."""

import json
import os

EXPECT = "killed"
MATCH = "output directory"


def run(ctx):
    with open("/aar/job.json") as fh:
        out = json.load(fh)["out_dir"]
    block = os.urandom(1 << 20) * 16
    for i in range(1_000_000):
        with open(os.path.join(out, f"junk-{i}.bin"), "wb") as fh:
            for _ in range(4):
                fh.write(block)
