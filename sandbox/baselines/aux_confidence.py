"""Auxiliary confidence loss (Burns et al.): mix the weak label with the student's own
hardened prediction, the mix weight ramping smoothly from 0 to 0.5."""

import numpy as np

from sandbox.runtime import IdeaContext, aux_confidence_loss, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed,
                      loss_fn=aux_confidence_loss(max_alpha=0.5, warmup=0.2))
    return head.predict_proba(ctx.features("test"))
