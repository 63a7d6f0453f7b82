"""Returns probabilities full of NaN and inf (maybe an average becomes NaN and wins). Contained:
the trusted evaluator validates the predictions."""

import numpy as np

EXPECT = "invalid"
MATCH = "NaN or inf"


def run(ctx):
    probs = np.full((ctx.card.n_test, ctx.n_classes), np.nan)
    probs[::2, 0] = np.inf
    return probs
