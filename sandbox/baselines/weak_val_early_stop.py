"""Early stopping on a weak-labeled validation split: hold out 20% of the unlabeled set,
keep the epoch whose predictions agree most with the weak labels there (never gold)."""

import numpy as np

from sandbox.runtime import IdeaContext, train_head, weak_val_split


def run(ctx: IdeaContext) -> np.ndarray:
    x = ctx.features("unlabeled")
    train, val = weak_val_split(len(x), frac=0.2, seed=ctx.seed)
    head = train_head(x[train], ctx.weak_soft[train], seed=ctx.seed, epochs=40,
                      val=(x[val], ctx.weak_soft[val]), patience=4)
    ctx.report("epochs_run", len(head.history))
    return head.predict_proba(ctx.features("test"))
