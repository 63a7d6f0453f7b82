"""Auxiliary confidence loss (Burns et al.) while fine-tuning end to end: the target mixes the weak label
with the student's own hardened prediction, the weight ramping smoothly from 0 to 0.5."""

import numpy as np

from sandbox.runtime import (
    VANILLA_FT,
    IdeaContext,
    aux_confidence_loss,
    cpu_seconds,
    finetune,
    peak_rss_mb,
    predict_proba,
)


def run(ctx: IdeaContext) -> np.ndarray:
    student = ctx.student()
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed,
             loss_fn=aux_confidence_loss(max_alpha=0.5, warmup=0.2), time_limit_s=ctx.time_left() - 60, **VANILLA_FT)
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
