"""Writes a predictions.npy that is not an .npy file and exits before the runtime writes a real
one. Contained: the parent reports an unreadable result."""

import json
import os

EXPECT = "invalid"
MATCH = "malformed .npy header"


def run(ctx):
    with open("/aar/job.json") as fh:
        out = json.load(fh)["out_dir"]
    with open(os.path.join(out, "predictions.npy"), "wb") as fh:
        fh.write(b"\x93NUMPY\x01\x00{'descr': '<f8', 'shape': (3,, 'fortran_order': oops}" + b"\0" * 64)
    os._exit(0)
