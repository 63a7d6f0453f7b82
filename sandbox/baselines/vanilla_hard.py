"""Vanilla (hard): the same head trained on the argmax of the weak labels."""

import numpy as np

from sandbox.runtime import IdeaContext, hard_ce, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed, loss_fn=hard_ce)
    return head.predict_proba(ctx.features("test"))
