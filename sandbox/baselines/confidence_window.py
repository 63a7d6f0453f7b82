"""Confidence window: after a warm-up on all examples, train only where the student is
still unsure (top-two margin under 0.4; for two classes, top probability under 0.7)."""

import numpy as np

from sandbox.runtime import IdeaContext, confidence_window_loss, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed,
                      loss_fn=confidence_window_loss(radius=0.2, warmup=0.3))
    return head.predict_proba(ctx.features("test"))
