"""Early stopping on a weak-labeled validation split while fine-tuning end to end: hold out 20%
of the unlabeled rows, evaluate agreement with their weak labels four times during the epoch
and keep the best weights (never gold)."""

import numpy as np

from sandbox.runtime import (
    VANILLA_FT,
    IdeaContext,
    cpu_seconds,
    finetune,
    peak_rss_mb,
    predict_proba,
    weak_val_split,
)


def run(ctx: IdeaContext) -> np.ndarray:
    texts, soft = ctx.unlabeled_texts, ctx.weak_soft
    train, val = weak_val_split(len(texts), frac=0.2, seed=ctx.seed)
    student = ctx.student()
    steps_per_epoch = -(-len(train) // int(VANILLA_FT["batch_size"]))
    finetune(student, [texts[i] for i in train], soft[train], seed=ctx.seed,
             val=([texts[i] for i in val], soft[val]), eval_every=max(1, steps_per_epoch // 4),
             patience=3, time_limit_s=ctx.time_left() - 60, **VANILLA_FT)
    ctx.report("evaluations", len(student.history))
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
