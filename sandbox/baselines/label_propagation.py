"""Label propagation: spread the weak labels over a kNN graph of strong features that
includes the test points (transductive), then train the student on the propagated labels."""

import numpy as np

from sandbox.runtime import IdeaContext, label_propagation, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    x, x_test = ctx.features("unlabeled"), ctx.features("test")
    both = np.concatenate([x, x_test])
    seeds = np.concatenate([ctx.weak_soft, np.zeros((len(x_test), ctx.n_classes), np.float32)])
    spread = label_propagation(both, seeds, k=10, alpha=0.8, iters=20)
    head = train_head(x, spread[: len(x)], seed=ctx.seed)
    return head.predict_proba(x_test)
