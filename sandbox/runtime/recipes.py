"""Named fine-tune recipes: plain data, importable without torch (the cache key of a fine-tune
task names the ceiling's recipe, and ``aar tasks`` computes keys without loading a model)."""

from __future__ import annotations

from typing import TypedDict


class FinetuneRecipe(TypedDict):
    """The keyword arguments of ``finetune`` a named recipe fixes."""

    epochs: float
    batch_size: int
    lr: float


VANILLA_FT: FinetuneRecipe = {"epochs": 1.0, "batch_size": 16, "lr": 1e-4}
