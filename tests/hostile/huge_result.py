"""Returns a huge result (80 MB of float64) to exhaust the parent's memory or disk.
Contained: the parent refuses a predictions file over its cap without loading it."""

import numpy as np

EXPECT = "invalid"
MATCH = "larger than"


def run(ctx):
    return np.zeros(10_000_000, dtype=np.float64)
