"""Returns class names as strings instead of numbers. Contained: validation of the dtype."""

import numpy as np

EXPECT = "invalid"
MATCH = "predictions must be numbers"


def run(ctx):
    ids = np.asarray(ctx.weak_test_probs).argmax(1)
    return np.asarray([ctx.card.classes[i] for i in ids])
