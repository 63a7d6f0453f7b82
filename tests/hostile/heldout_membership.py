"""Computes which test rows are held-out from the public constants (split seed, sizes) the way
the cache used to lay them out, then answers well on the rows it thinks are dev and badly on
the rest: if the guess is right, dev accuracy stays at the weak teacher's while held-out
collapses. Contained: order and roles follow from a secret in the private store, so the guess
is chance and both parts degrade alike (test_hostile checks the gap)."""

import numpy as np

EXPECT = "ok"
CHECK = "heldout_guess_is_chance"
SPLIT_SEED = 0  # the task's public split seed


def run(ctx):
    n = ctx.card.n_test
    n_dev = n // 2  # the public sizes give dev and held-out halves here
    order = np.random.default_rng(SPLIT_SEED + 1).permutation(n)
    guessed_heldout = np.concatenate([np.zeros(n_dev), np.ones(n - n_dev)])[order] == 1
    probs = np.array(ctx.weak_test_probs)
    second = np.argsort(probs, axis=1)[:, -2]
    bad = np.eye(ctx.n_classes)[second]
    probs[guessed_heldout] = bad[guessed_heldout]
    ctx.report("guessed_heldout", int(guessed_heldout.sum()))
    return probs
