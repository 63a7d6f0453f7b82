"""The idea runtime: everything an idea may import. Nothing here can read gold labels.

An idea is one Python file with ``def run(ctx: IdeaContext)`` returning class probabilities
``(n_test, n_classes)`` or class ids ``(n_test,)``. See ``prompts/idea_contract.md``.

Names load lazily (PEP 562), so the harness can import ``sandbox.runtime.context`` without
paying for torch; ``from sandbox.runtime import train_head`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "IdeaContext": "context", "TaskCard": "context",
    "aux_confidence_loss": "losses", "bootstrap_loss": "losses", "confidence_window_loss": "losses",
    "hard_ce": "losses", "product_loss": "losses", "smooth_ramp": "losses", "soft_ce": "losses",
    "confident_mask": "probes", "knn_probe": "probes", "label_propagation": "probes",
    "logistic_probe": "probes",
    "LeanAdamW": "optim",
    "Head": "train", "train_head": "train", "weak_val_split": "train",
    "cpu_seconds": "finetuning", "finetune": "finetuning", "hidden_states": "finetuning", "peak_rss_mb": "finetuning",
    "predict_proba": "finetuning", "VANILLA_FT": "recipes", "vanilla_recipe": "finetuning",
    "peak_gpu_mb": "finetuning",
    "LoraSpec": "student_spec", "StudentSpec": "student_spec", "Student": "students",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sandbox.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sandbox.runtime.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
