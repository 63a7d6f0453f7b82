"""Breaks its own scratch for whoever comes next: fills it with a tree of files, then takes every
permission away (chmod 000 on a nested dir, a file and the scratch itself), so a wipe that
lists and deletes as the slot's uid fails and the warm worker would be retired and restarted
(3.4-4.9 s instead of 1.8 s for every later attempt). Contained: the cleaner gives the scratch
and each directory back their owner's permissions before it wipes them, the next seed's child
restores the scratch's mode, and the worker serves on (tests/test_hostile.py checks it)."""

import os

import numpy as np

EXPECT = "ok"
CHECK = "scratch_usable_after"


def run(ctx):
    root = str(ctx.scratch)
    deep = os.path.join(root, "a", "b")
    os.makedirs(deep)
    for d in (root, os.path.join(root, "a"), deep):
        with open(os.path.join(d, "f"), "w") as fh:
            fh.write("x")
    os.chmod(os.path.join(deep, "f"), 0)
    os.chmod(deep, 0)
    os.chmod(os.path.join(root, "a"), 0)
    os.chmod(root, 0)
    return np.asarray(ctx.weak_test_probs)
