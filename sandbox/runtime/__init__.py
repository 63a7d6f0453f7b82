"""The idea runtime: everything an idea may import. Nothing here can read gold labels.

An idea is one Python file with ``def run(ctx: IdeaContext)`` returning class probabilities
``(n_test, n_classes)`` or class ids ``(n_test,)``. See ``prompts/idea_contract.md``.
"""

from sandbox.runtime.context import IdeaContext, TaskCard
from sandbox.runtime.losses import (
    aux_confidence_loss,
    bootstrap_loss,
    confidence_window_loss,
    hard_ce,
    product_loss,
    smooth_ramp,
    soft_ce,
)
from sandbox.runtime.probes import (
    confident_mask,
    knn_probe,
    label_propagation,
    logistic_probe,
)
from sandbox.runtime.train import Head, train_head, weak_val_split

__all__ = [
    "Head", "IdeaContext", "TaskCard", "aux_confidence_loss", "bootstrap_loss",
    "confidence_window_loss", "confident_mask", "hard_ce", "knn_probe", "label_propagation",
    "logistic_probe", "product_loss", "smooth_ramp", "soft_ce", "train_head", "weak_val_split",
]
