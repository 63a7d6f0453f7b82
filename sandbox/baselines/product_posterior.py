"""Product / posterior target: train against normalise(weak^1 * student^1), the student's
share ramping in smoothly, with stop-gradient through the target."""

import numpy as np

from sandbox.runtime import IdeaContext, product_loss, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed,
                      loss_fn=product_loss(alpha=1.0, beta=1.0, warmup=0.3))
    return head.predict_proba(ctx.features("test"))
