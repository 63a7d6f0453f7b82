"""Bootstrapping (Reed et al.) while fine-tuning end to end: target = 0.8 * weak label +
0.2 * the student's own hard prediction."""

import numpy as np

from sandbox.runtime import (
    VANILLA_FT,
    IdeaContext,
    bootstrap_loss,
    cpu_seconds,
    finetune,
    peak_rss_mb,
    predict_proba,
)


def run(ctx: IdeaContext) -> np.ndarray:
    student = ctx.student()
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed, loss_fn=bootstrap_loss(beta=0.8, hard=True),
             time_limit_s=ctx.time_left() - 60, **VANILLA_FT)
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
