"""Product (posterior) target while fine-tuning end to end: proportional to weak * student
(stop-gradient), the student's exponent ramping in."""

import numpy as np

from sandbox.runtime import (
    VANILLA_FT,
    IdeaContext,
    cpu_seconds,
    finetune,
    peak_rss_mb,
    predict_proba,
    product_loss,
)


def run(ctx: IdeaContext) -> np.ndarray:
    student = ctx.student()
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed,
             loss_fn=product_loss(alpha=1.0, beta=1.0, warmup=0.2), time_limit_s=ctx.time_left() - 60, **VANILLA_FT)
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
