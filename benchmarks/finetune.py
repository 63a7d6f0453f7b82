"""Fine-tune speed: one vanilla fine-tune seed through the sandbox, the same recipe in a bare
process, and Hugging Face ``Trainer`` on the same model, data and steps.

    .venv/bin/python benchmarks/finetune.py [--task wordnet-10-ft] [--split-sizes ...] [--seed 0] [--repeats 3]

Each way runs in a fresh process (as a sandboxed seed does), on the same number of threads, and
reports the whole seed's wall time (model load, training, prediction), the training seconds,
training tokens per second (non-padding tokens of the unlabeled texts, truncated as the student
truncates them, per second of training) and peak RSS. The sandboxed seed runs an idea that is
``ft_vanilla`` plus two diagnostics (its training seconds and whole-run seconds); the bare
process calls the same runtime functions (``load_student``, ``finetune``, ``predict_proba``);
``Trainer`` gets the same optimiser (AdamW, body lr and head lr as ``vanilla_recipe``, weight
decay 0.01), the same warm-up/decay schedule and clipping, batch size and one epoch. Goal
(issue 28): sandbox <= 1.1x bare, and not slower than ``Trainer``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IDEA = '''"""ft_vanilla, timed: the vanilla recipe, reporting its training and whole-run seconds."""
import time

from sandbox.runtime import cpu_seconds, finetune, peak_rss_mb, predict_proba, vanilla_recipe


def run(ctx):
    started = time.monotonic()
    student = ctx.student(lora=ctx.card.student.vanilla_lora)
    finetune(student, ctx.unlabeled_texts, ctx.weak_soft, seed=ctx.seed,
             time_limit_s=ctx.time_left() - 60, **vanilla_recipe(student))
    probs = predict_proba(student, ctx.test_texts)
    ctx.report("train_s", round(student.history[-1]["seconds"], 2))
    ctx.report("seed_s", round(time.monotonic() - started, 2))
    ctx.report("peak_rss_mb", round(peak_rss_mb()))
    ctx.report("cpu_s", round(cpu_seconds(), 1))
    return probs
'''


def _inputs(public: Path, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    texts = json.loads((public / "texts.json").read_text())
    soft = np.load(public / "weak" / f"seed_{seed}" / "unlabeled_soft.npy")
    return texts["unlabeled"], soft, texts["test"]


def _tokens(student: Any, texts: list[str]) -> int:
    enc = student.tokenizer(texts, truncation=True, max_length=student.spec.max_len)
    return sum(len(ids) for ids in enc["input_ids"])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare(public: Path, seed: int) -> dict:
    """The vanilla recipe through the runtime's own functions, no sandbox."""
    # The same imports before the clock as trainer(): its `from transformers import Trainer` loads
    # the model classes load_student would otherwise import on the clock (a 2 s difference).
    from transformers import Trainer, TrainingArguments  # noqa: F401

    from sandbox.runtime import finetune, predict_proba, vanilla_recipe
    from sandbox.runtime.context import TaskCard
    from sandbox.runtime.students import load_student

    started = time.monotonic()
    card = TaskCard.model_validate_json((public / "card.json").read_text())
    texts, soft, test = _inputs(public, seed)
    spec = card.student
    if spec is None:
        raise SystemExit("this benchmark needs a fine-tune task (kind finetune)")
    student = load_student(spec, len(card.classes), lora=spec.vanilla_lora, seed=seed, device="cpu")
    finetune(student, texts, soft, seed=seed, **vanilla_recipe(student))
    predict_proba(student, test)
    return {"seed_s": time.monotonic() - started, "train_s": student.history[-1]["seconds"],
            "tokens": _tokens(student, texts), "peak_rss_mb": _peak_rss_mb()}


def trainer(public: Path, seed: int) -> dict:
    """Hugging Face Trainer on the same student, data, optimiser, schedule and steps."""
    import math

    import torch
    from transformers import Trainer, TrainingArguments

    from sandbox.runtime import predict_proba, vanilla_recipe
    from sandbox.runtime.context import TaskCard
    from sandbox.runtime.finetuning import _lr_at
    from sandbox.runtime.students import load_student

    started = time.monotonic()
    card = TaskCard.model_validate_json((public / "card.json").read_text())
    texts, soft, test = _inputs(public, seed)
    spec = card.student
    if spec is None:
        raise SystemExit("this benchmark needs a fine-tune task (kind finetune)")
    student = load_student(spec, len(card.classes), lora=spec.vanilla_lora, seed=seed, device="cpu")
    recipe = vanilla_recipe(student)
    enc = student.tokenizer(texts, truncation=True, max_length=student.spec.max_len)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": [float(p) for p in target]}
            for ids, mask, target in zip(enc["input_ids"], enc["attention_mask"], soft, strict=True)]

    class SoftTargets(torch.nn.Module):
        """The student's classifier with the recipe's loss (soft cross-entropy), as Trainer wants."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, labels):  # noqa: ANN001 - Trainer's batch
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            loss = -(labels * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
            return {"loss": loss, "logits": logits}

    def collate(batch: list[dict]) -> dict:
        padded = student.tokenizer.pad([{k: r[k] for k in ("input_ids", "attention_mask")} for r in batch],
                                       return_tensors="pt")
        return {**padded, "labels": torch.tensor([r["labels"] for r in batch])}

    named = [(n, p) for n, p in student.model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if "classifier" not in n], "lr": recipe["lr"]},
              {"params": [p for n, p in named if "classifier" in n], "lr": max(recipe["lr"], 2e-3)}]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    total = math.ceil(recipe["epochs"] * math.ceil(len(rows) / recipe["batch_size"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_at(s, total, max(1, int(0.1 * total))))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=int(recipe["batch_size"]), max_steps=total,
            max_grad_norm=1.0, save_strategy="no", report_to=[], logging_strategy="no", use_cpu=True,
            dataloader_num_workers=0, seed=seed, disable_tqdm=True, remove_unused_columns=False)
        run = Trainer(model=SoftTargets(student.model), args=args, train_dataset=rows, data_collator=collate,
                      optimizers=(opt, sched))
        train_started = time.monotonic()
        run.train()
        train_s = time.monotonic() - train_started
    student.model.eval()
    predict_proba(student, test)
    return {"seed_s": time.monotonic() - started, "train_s": train_s, "tokens": _tokens(student, texts),
            "peak_rss_mb": _peak_rss_mb()}


def sandboxed(cache: Any, seed: int) -> dict:
    """One seed of the timed vanilla idea through the trusted evaluator and its sandbox."""
    from sandbox.scoring.evaluator import Evaluator

    evaluator = Evaluator(cache, parallel=1, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        idea = Path(tmp) / "ft_vanilla_timed.py"
        idea.write_text(IDEA)
        started = time.monotonic()
        result = evaluator.evaluate(idea, [seed], compare_vanilla=False, charge=False)
        wall = time.monotonic() - started
    (run,) = result.seeds
    if run.status != "ok":
        raise SystemExit(f"the sandboxed seed failed: {run.status}: {run.error}")
    d = run.diagnostics
    return {"wall_s": wall, "seed_s": float(d["seed_s"]), "train_s": float(d["train_s"]),
            "peak_rss_mb": float(d["peak_rss_mb"]), "dev_acc": run.dev_acc}


def _child(mode: str, public: Path, seed: int, threads: int) -> dict:
    """``mode`` in a fresh process on ``threads`` threads, timed from outside as well."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.monotonic()
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--public", str(public), "--seed", str(seed),
                          "--threads", str(threads)], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="wordnet-10-ft")
    parser.add_argument("--split-sizes", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("bare", "trainer"), help=argparse.SUPPRESS)
    parser.add_argument("--public", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way, interleaved")
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps((bare if args.child == "bare" else trainer)(args.public, args.seed)))
        return
    from sandbox.cache.task_cache import open_cache
    from sandbox.tasks import SplitSizes, get_task

    sizes = SplitSizes.parse(args.split_sizes) if args.split_sizes else None
    cache = open_cache(get_task(args.task, sizes), n_weak_seeds=args.seed + 1, device="cpu")
    runs: dict[str, list[dict]] = {"sandbox": [], "bare": [], "trainer": []}
    ways = list(runs)
    for round_no in range(args.repeats):  # interleaved, the order rotating, so drift hits every way alike
        for name in ways[round_no % 3:] + ways[:round_no % 3]:
            runs[name].append(sandboxed(cache, args.seed) if name == "sandbox"
                              else _child(name, cache.public_dir, args.seed, args.threads))
    tokens = runs["bare"][0]["tokens"]
    print(f"{args.task}, seed {args.seed}, {args.threads} threads, {tokens:,} training tokens per epoch, "
          f"{args.repeats} runs of each way (medians; range in brackets)")
    print(f"{'way':<8} {'seed s':>18} {'train s':>18} {'tokens/s':>9} {'peak RSS MiB':>13} {'process wall s':>15}")

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def spread(name: str, key: str) -> str:
        values = [r[key] for r in runs[name]]
        return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"

    for name in ways:
        print(f"{name:<8} {spread(name, 'seed_s'):>18} {spread(name, 'train_s'):>18} "
              f"{tokens / med(name, 'train_s'):>9.0f} {med(name, 'peak_rss_mb'):>13.0f} {med(name, 'wall_s'):>15.1f}")
    for other in ("bare", "trainer"):
        for key in ("seed_s", "wall_s"):  # wall: the whole process (imports, sandbox and worker start)
            paired = [s[key] / o[key] for s, o in zip(runs["sandbox"], runs[other], strict=True)]
            print(f"sandbox / {other} ({key}): median of paired ratios {statistics.median(paired):.2f}x "
                  f"[{min(paired):.2f}-{max(paired):.2f}]")
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
