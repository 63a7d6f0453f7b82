"""Writes a predictions.npy that is not an .npy file and exits before the runtime writes a real
one. Contained: the parent reports an unreadable result."""

import os

EXPECT = "invalid"
MATCH = "malformed .npy header"


def _send(name, data):
    """A frame on the result pipe (fd 3), as the runtime would send it."""
    os.write(3, f"{name} {len(data)}\n".encode() + data)


def run(ctx):
    _send("predictions.npy", b"\x93NUMPY\x01\x00{'descr': '<f8', 'shape': (3,, 'fortran_order': oops}" + b"\0" * 64)
    _send("end", b"")  # as the runtime ends its stream, so the frame above is read
    os._exit(0)
