"""Vanilla fine-tune: the strong model trained end to end (all weights) for one epoch with
cross-entropy against the weak teacher's soft labels (the recipe the ceiling uses on gold)."""

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
    student = ctx.student()
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed,
             time_limit_s=ctx.time_left() - 60, **VANILLA_FT)
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
