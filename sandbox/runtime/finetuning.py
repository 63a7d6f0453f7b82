"""Fine-tuning the strong model end to end, with the same loss API as ``train_head``.

``finetune(student, texts, targets, loss_fn=...)`` trains a student (from ``ctx.student()``)
against soft targets (n, C); a loss is ``fn(logits, targets, progress)`` exactly as for heads, so
``aux_confidence_loss``, ``product_loss``, ``bootstrap_loss`` and ``confidence_window_loss``
work unchanged. ``predict_proba`` and ``hidden_states`` read the student back out.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from sandbox.runtime.arrays import to_tensor
from sandbox.runtime.losses import LossFn, soft_ce
from sandbox.runtime.recipes import VANILLA_FT, FinetuneRecipe
from sandbox.runtime.students import Student

DEFAULT_LR = {"all": 5e-5, "lora": 5e-4}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_gpu_mb() -> float | None:
    """Peak GPU memory torch allocated in this process (MiB), or None without a GPU."""
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used: a load-independent cost measure on a
    shared machine, where wall-clock time depends on what else runs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _batches(n: int, batch_size: int, order: torch.Tensor) -> Iterator[torch.Tensor]:
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _lr_at(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then linear decay to zero: the usual fine-tuning schedule."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _trainable_state(student: Student) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in student.model.named_parameters() if p.requires_grad}


def _agreement(student: Student, texts: list[str], targets: np.ndarray, batch_size: int,
               max_len: int | None) -> float:
    probs = predict_proba(student, texts, batch_size=batch_size, max_len=max_len)
    return float((probs.argmax(1) == np.asarray(targets).argmax(1)).mean())


def checkpoint_activations(student: Student, enabled: bool | None = None) -> bool:
    """Gradient checkpointing for a causal student's training (``None``: on a GPU): the
    activations of 16 x 512 tokens through a 4B model would otherwise need tens of GB. The KV
    cache is off as well (nothing reuses it while training). Returns whether it is on."""
    model: Any = student.model  # a transformers (or peft) model: nn.Module's typing says Tensor
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model
    if student.spec.family != "causal":
        return False
    base.config.use_cache = False
    on = student.device.type == "cuda" if enabled is None else enabled
    # transformers 5 renamed gradient_* to activation_checkpointing_*; the floor (4.56) has the old.
    new_api = hasattr(base, "activation_checkpointing_enable")
    active = bool(getattr(base, "is_activation_checkpointing" if new_api else "is_gradient_checkpointing", False))
    if on and getattr(base, "supports_gradient_checkpointing", False):
        # Non-reentrant: gradients reach a LoRA adapter's weights though the frozen inputs need none.
        kwargs = {"use_reentrant": False}
        if new_api:
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        return True
    if not on and active:
        (base.activation_checkpointing_disable if new_api else base.gradient_checkpointing_disable)()
    return False


def finetune(
    student: Student,
    texts: list[str],
    targets: np.ndarray,
    *,
    loss_fn: LossFn = soft_ce,
    epochs: float = 1.0,
    lr: float | None = None,
    head_lr: float = 2e-3,
    batch_size: int = 16,
    max_len: int | None = None,
    weight_decay: float = 0.01,
    warmup_frac: float = 0.1,
    sample_weight: np.ndarray | None = None,
    val: tuple[list[str], np.ndarray] | None = None,
    eval_every: int | None = None,
    patience: int = 3,
    time_limit_s: float | None = None,
    seed: int = 0,
    gradient_checkpointing: bool | None = None,
) -> Student:
    """Train ``student`` in place on ``texts`` against soft ``targets`` (n, C); returns it.

    ``epochs`` may be fractional (0.5 = half a pass). ``lr`` defaults to 5e-5 for all weights,
    5e-4 for LoRA; an encoder's fresh classification head trains at ``head_lr``.
    ``sample_weight`` resamples rows in proportion to their weight. ``val`` = (texts, weak soft
    labels) evaluates agreement every ``eval_every`` steps (default: each epoch) and keeps the
    best weights; training stops after ``patience`` evaluations without gain. ``time_limit_s``
    stops training (not prediction) once that many seconds have passed.
    ``gradient_checkpointing``: causal students only; None = on when training on a GPU.
    """
    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} target rows")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    y = to_tensor(targets)
    if y.ndim != 2 or y.shape[1] != student.n_classes:
        raise ValueError(f"targets must be (n, {student.n_classes}) probabilities, got {tuple(y.shape)}")
    lr = lr or DEFAULT_LR["lora" if student.lora else "all"]
    named = [(n, p) for n, p in student.model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    # A fresh classification head needs a larger step than the pretrained body it sits on.
    head = [p for n, p in named if "classifier" in n]
    body = [p for n, p in named if "classifier" not in n]
    groups = [{"params": body, "lr": lr}] + ([{"params": head, "lr": max(lr, head_lr)}] if head else [])
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(texts) / batch_size)
    total = max(1, math.ceil(epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _lr_at(s, total, max(1, int(warmup_frac * total))))
    weights = None if sample_weight is None else to_tensor(sample_weight, np.float64)
    eval_every = eval_every or steps_per_epoch
    best, best_score, stale = None, -1.0, 0
    start, step, running = time.monotonic(), 0, 0.0
    checkpoint_activations(student, gradient_checkpointing)
    student.model.train()
    while step < total:
        order = (torch.randperm(len(texts), generator=gen) if weights is None
                 else torch.multinomial(weights, len(texts), replacement=True, generator=gen))
        for batch in _batches(len(texts), batch_size, order):
            idx = batch.tolist()
            logits = student.class_logits([texts[i] for i in idx], max_len)
            loss = loss_fn(logits, y[idx].to(logits.device), step / total)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            step += 1
            stop = time_limit_s is not None and time.monotonic() - start > time_limit_s
            if step % eval_every == 0 or step == total or stop:
                record = {"step": float(step), "loss": running / max(1, step),
                          "seconds": time.monotonic() - start, "tokens": float(student.tokens_trained)}
                if val is not None:
                    record["weak_val_agreement"] = _agreement(student, val[0], val[1], 2 * batch_size, max_len)
                    student.model.train()
                    if record["weak_val_agreement"] > best_score:
                        best, best_score, stale = _trainable_state(student), record["weak_val_agreement"], 0
                    else:
                        stale += 1
                student.history.append(record)
                stop = stop or stale >= patience
            if step >= total or stop:
                break
        if stop:
            break
    if best is not None:
        with torch.no_grad():
            for name, param in student.model.named_parameters():
                if name in best:
                    param.copy_(best[name])
    student.model.eval()
    return student


def _sorted_batches(texts: list[str], batch_size: int) -> Iterator[list[int]]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def predict_proba(student: Student, texts: list[str], *, batch_size: int = 64,
                  max_len: int | None = None) -> np.ndarray:
    """Class probabilities (n, C) from the student, in the order of ``texts``."""
    out = np.zeros((len(texts), student.n_classes), np.float32)
    was_training = student.model.training
    student.model.eval()
    with torch.inference_mode():
        for idx in _sorted_batches(texts, batch_size):
            logits = student.class_logits([texts[i] for i in idx], max_len)
            out[idx] = logits.softmax(-1).cpu().numpy()
    student.model.train(was_training)
    return out


def hidden_states(student: Student, texts: list[str], layer: int = -1, *, batch_size: int = 64,
                  max_len: int | None = None) -> np.ndarray:
    """The student's representation of each text at ``layer`` (0 = embeddings, -1 = last),
    (n, d): mean over tokens for encoders, the last token (the label slot) for causal LMs."""
    return pooled_layers(student, texts, [layer], batch_size=batch_size, max_len=max_len)[layer]


def pooled_layers(student: Student, texts: list[str], layers: list[int], *, batch_size: int = 64,
                  max_len: int | None = None) -> dict[int, np.ndarray]:
    """:func:`hidden_states` for several layers in one pass over the texts."""
    out: dict[int, dict[int, np.ndarray]] = {layer: {} for layer in layers}
    student.model.eval()
    with torch.inference_mode():
        for idx in _sorted_batches(texts, batch_size):
            enc = student.encode([texts[i] for i in idx], max_len)
            states = student.model(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"].unsqueeze(-1).float()
            for layer in layers:
                hidden = states[layer].float()
                if student.spec.family == "causal":
                    pooled = hidden[:, -1]
                else:
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                for i, row in zip(idx, pooled.cpu().numpy(), strict=True):
                    out[layer][i] = row
    return {layer: np.stack([rows[i] for i in range(len(texts))]) for layer, rows in out.items()}


# The vanilla fine-tune recipe: the vanilla baseline idea and the gold-trained ceiling both use
# it, so the ceiling is "the same training on gold labels".
def vanilla_recipe(student: Student) -> FinetuneRecipe:
    """VANILLA_FT for this student: adapters take a 10x larger step than full weights."""
    return {**VANILLA_FT, "lr": VANILLA_FT["lr"] * (10 if student.lora else 1)}
