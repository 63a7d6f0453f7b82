"""A valid .npy header that claims 10^12 float64 elements over 16 bytes of data: a naive loader
would try to allocate 8 TB in the parent. Contained: the header is checked against the size."""

import json
import os

import numpy as np

EXPECT = "invalid"
MATCH = "header does not match the data size"


def run(ctx):
    with open("/aar/job.json") as fh:
        out = json.load(fh)["out_dir"]
    with open(os.path.join(out, "predictions.npy"), "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        fh.write(b"\0" * 16)
    os._exit(0)
