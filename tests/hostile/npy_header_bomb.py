"""A valid .npy header that claims 10^12 float64 elements over 16 bytes of data: a naive loader
would try to allocate 8 TB in the parent. Contained: the header is checked against the size."""

import io
import os

import numpy as np

EXPECT = "invalid"
MATCH = "header does not match the data size"


def _send(name, data):
    """A frame on the result pipe (fd 3), as the runtime would send it."""
    os.write(3, f"{name} {len(data)}\n".encode() + data)


def run(ctx):
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    _send("predictions.npy", fh.getvalue() + b"\0" * 16)
    _send("end", b"")  # as the runtime ends its stream, so the frame above is read
    os._exit(0)
