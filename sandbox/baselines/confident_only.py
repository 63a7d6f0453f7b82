"""Confident-only: train only on unlabeled examples where the weak teacher's top
probability reaches a threshold (0.75 for two classes; scaled down for more classes)."""

import numpy as np

from sandbox.runtime import IdeaContext, confident_mask, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    threshold = 0.75 if ctx.n_classes == 2 else 0.5
    keep = confident_mask(ctx.weak_soft, threshold)
    ctx.report("kept_fraction", float(keep.mean()))
    x = ctx.features("unlabeled")[keep]
    head = train_head(x, ctx.weak_soft[keep], seed=ctx.seed)
    return head.predict_proba(ctx.features("test"))
