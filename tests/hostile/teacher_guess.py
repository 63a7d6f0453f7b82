"""Finds the other seeds' weak-teacher copies next to its own: lists the directory that holds
them, then guesses their names from its own (the attempt's key plus the seed's index).
Contained: the directory cannot be listed, names carry a secret of their own, and every copy is
private from the first byte (made 0700 by the host, files 0400, then handed to its seed)."""

import os
import re

import numpy as np

EXPECT = "denied"
MATCH = "PermissionError"


def run(ctx):
    own = str(ctx.weak_dir)
    parent, name = os.path.split(own)
    guesses = []
    match = re.match(r"(.*-)(\d+)(.*)$", name)
    if match:
        guesses = [f"{match.group(1)}{i}{match.group(3)}" for i in range(8)]
        guesses += [f"{match.group(1)}{i}" for i in range(8)]
    for guess in guesses:
        path = os.path.join(parent, guess, "test_probs.npy")
        if os.path.join(parent, guess) != own and os.path.exists(path):
            return np.load(path)
    os.listdir(parent)  # raises PermissionError where it cannot be listed
    raise SystemExit("the teachers' directory could be listed")
