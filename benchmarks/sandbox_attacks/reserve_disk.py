"""Benchmark attack: reserves space with fallocate(KEEP_SIZE) in every writable place it knows
(the output directory of older harnesses, scratch, /tmp), 256 MiB at a time up to 4 GiB,
printing the total reserved."""

import ctypes
import json
import os
import sys

import numpy as np

STEP = 256 << 20
CAP = 4 << 30


def _places(ctx):  # noqa: ANN001, ANN202
    places = [str(ctx.scratch), "/tmp"]
    try:
        with open("/aar/job.json") as fh:
            places.insert(0, json.load(fh)["out_dir"])
    except (OSError, KeyError, ValueError):
        pass
    return places


def run(ctx):  # noqa: ANN001, ANN201 - an idea file, as ideas are written
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    total = 0
    for place in _places(ctx):
        try:
            fd = os.open(os.path.join(place, "reserve.bin"), os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError:
            continue
        offset = 0
        while total < CAP and libc.fallocate(fd, 1, offset, STEP) == 0:
            offset += STEP
            total += STEP
            print(f"reserved {total >> 20}", file=sys.stderr, flush=True)
    return np.asarray(ctx.weak_test_probs)
