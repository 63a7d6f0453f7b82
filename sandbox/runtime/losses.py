"""Weak-to-strong losses. A loss is ``fn(logits, targets, progress) -> scalar tensor``.

``targets`` are the (soft) weak labels of the batch, ``progress`` runs from 0 to 1 over training.
Targets built from the student's own predictions are detached (stop-gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def soft_ce(logits: torch.Tensor, targets: torch.Tensor, progress: float = 0.0) -> torch.Tensor:
    """Cross-entropy against soft targets (the weak teacher's probabilities)."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def hard_ce(logits: torch.Tensor, targets: torch.Tensor, progress: float = 0.0) -> torch.Tensor:
    """Cross-entropy against the argmax of the targets."""
    return F.cross_entropy(logits, targets.argmax(-1))


def smooth_ramp(progress: float, end: float = 0.2, max_value: float = 0.5) -> float:
    """0 at the start, ``max_value`` from ``end`` on, a half-cosine in between (no jumps)."""
    if end <= 0 or progress >= end:
        return max_value
    return max_value * 0.5 * (1 - math.cos(math.pi * max(progress, 0.0) / end))


def _balanced_hard(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One-hot student predictions that keep the weak labels' class balance in the batch.

    Two classes: threshold at the batch quantile (Burns et al.). More classes: argmax after
    shifting log-probabilities from the batch's predicted prior to the weak labels' prior, so
    an untrained student's arbitrary favourite class cannot take over."""
    n_classes = probs.shape[-1]
    if n_classes == 2:
        share = targets[:, 1].mean().clamp(0.0, 1.0)
        threshold = torch.quantile(probs[:, 1], 1 - share)
        ones = (probs[:, 1] >= threshold).long()
        return F.one_hot(ones, 2).float()
    shift = targets.mean(0).clamp_min(1e-6).log() - probs.mean(0).clamp_min(1e-6).log()
    return F.one_hot((probs.clamp_min(1e-12).log() + shift).argmax(-1), n_classes).float()


def aux_confidence_loss(max_alpha: float = 0.5, warmup: float = 0.2) -> LossFn:
    """Auxiliary confidence loss: target = (1-a)*weak + a*hard(student), a ramped smoothly."""

    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        alpha = smooth_ramp(progress, warmup, max_alpha)
        hard = _balanced_hard(logits.detach().softmax(-1), targets)
        return soft_ce(logits, (1 - alpha) * targets + alpha * hard)

    return loss


def bootstrap_loss(beta: float = 0.8, hard: bool = True) -> LossFn:
    """Bootstrapping (Reed et al.): target = beta*weak + (1-beta)*student (hard or soft)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        probs = logits.detach().softmax(-1)
        own = F.one_hot(probs.argmax(-1), probs.shape[-1]).float() if hard else probs
        return soft_ce(logits, beta * targets + (1 - beta) * own)

    return loss


def product_loss(alpha: float = 1.0, beta: float = 1.0, warmup: float = 0.2) -> LossFn:
    """Product / posterior target: proportional to weak^alpha * student^beta (stop-gradient);
    beta ramps in so the untrained student does not dominate."""

    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        b = smooth_ramp(progress, warmup, beta)
        log_t = alpha * targets.clamp_min(1e-8).log() + b * F.log_softmax(logits.detach(), -1)
        return soft_ce(logits, log_t.softmax(-1))

    return loss


def confidence_window_loss(radius: float = 0.2, warmup: float = 0.2) -> LossFn:
    """Train only where the student is unsure, after a warm-up on all examples.

    Unsure: the top-two probability margin is under ``2 * radius`` (for two classes that is
    top probability < 0.5 + radius)."""

    def loss(logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        if progress < warmup:
            return soft_ce(logits, targets)
        top2 = logits.detach().softmax(-1).topk(2, dim=-1).values
        unsure = (top2[:, 0] - top2[:, 1]) < 2 * radius
        if not bool(unsure.any()):
            return logits.sum() * 0.0
        return soft_ce(logits[unsure], targets[unsure])

    return loss
