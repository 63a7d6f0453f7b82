"""Bootstrapping / self-training: train on weak labels, then retrain fresh students on a
blend of the weak labels and the previous student's predictions, for a few rounds."""

import numpy as np

from sandbox.runtime import IdeaContext, train_head

ROUNDS = 3
KEEP_WEAK = 0.5


def run(ctx: IdeaContext) -> np.ndarray:
    x, x_test = ctx.features("unlabeled"), ctx.features("test")
    targets = ctx.weak_soft
    for round_ in range(ROUNDS):
        head = train_head(x, targets, seed=ctx.seed + 100 * round_)
        student = head.predict_proba(x)
        ctx.report(f"round{round_}_agreement_with_weak",
                   float((student.argmax(1) == ctx.weak_soft.argmax(1)).mean()))
        targets = KEEP_WEAK * ctx.weak_soft + (1 - KEEP_WEAK) * student
    return head.predict_proba(x_test)
