"""Vanilla (soft): a linear head on the strong model's final layer, trained with
cross-entropy against the weak teacher's soft labels."""

import numpy as np

from sandbox.runtime import IdeaContext, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed)
    return head.predict_proba(ctx.features("test"))
