"""Vanilla fine-tune with a LoRA adapter (rank 8 on the attention query/value projections)
instead of all weights: the body stays frozen, the adapter and the head train."""

import numpy as np

from sandbox.runtime import (
    VANILLA_FT,
    IdeaContext,
    cpu_seconds,
    finetune,
    peak_rss_mb,
    predict_proba,
)


def run(ctx: IdeaContext) -> np.ndarray:
    student = ctx.student(lora={"rank": 8, "alpha": 16})
    ctx.report("trainable_params", student.trainable_parameters())
    recipe = {**VANILLA_FT, "lr": 1e-3}  # adapters need a larger step than full weights
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed,
             time_limit_s=ctx.time_left() - 60, **recipe)
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
