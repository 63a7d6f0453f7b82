"""Returns predictions of the wrong shape (one row short, transposed). Contained: validation."""

import numpy as np

EXPECT = "invalid"
MATCH = "expected shape"


def run(ctx):
    return np.asarray(ctx.weak_test_probs)[:-1].T
