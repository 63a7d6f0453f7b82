"""Vanilla fine-tune: the strong model trained end to end (all weights, or the task's vanilla
LoRA adapter) for one epoch with cross-entropy against the weak teacher's soft labels: the
recipe the ceiling uses on gold labels."""

import numpy as np

from sandbox.runtime import (
    IdeaContext,
    cpu_seconds,
    finetune,
    peak_gpu_mb,
    peak_rss_mb,
    predict_proba,
    vanilla_recipe,
)


def run(ctx: IdeaContext) -> np.ndarray:
    student = ctx.student(lora=ctx.card.student.vanilla_lora)
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed,
             time_limit_s=ctx.time_left() - 60, **vanilla_recipe(student))
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    if student.history:  # training throughput (benchmarks/gpu_check.py prints tokens/s)
        ctx.report("train_s", round(student.history[-1]["seconds"], 2))
        ctx.report("train_tokens", int(student.history[-1]["tokens"]))
    if peak_gpu_mb() is not None:
        ctx.report("peak_gpu_mb", round(peak_gpu_mb()))
    return probs
