"""A lean AdamW for the small heads ``train_head`` fits.

On a linear head over 384 features one ``torch.optim.AdamW`` step costs about as much in its
wrapper (hooks, profiler scopes, the dynamo guard, per-parameter state lookups) as in its
arithmetic, and a seed takes over a thousand steps. ``LeanAdamW`` does the same decoupled
AdamW update with the same tensor operations in the same order as torch's single-tensor CPU
path, so its results are bitwise equal to ``torch.optim.AdamW(foreach=False)`` (checked by
tests/test_optim.py, which fails if a torch upgrade changes that arithmetic), and skips the
wrapper. Scores recorded before it existed therefore replay unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class LeanAdamW:
    """Decoupled-weight-decay Adam (Loshchilov & Hutter) over a fixed list of CPU tensors."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.eps = float(lr), float(weight_decay), float(eps)
        self.beta1, self.beta2 = (float(b) for b in betas)
        # Per parameter, as torch keeps them: a step that leaves a parameter without a gradient
        # neither advances its count nor touches its moments.
        self.steps = [0] * len(self.params)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        lr, beta1, beta2 = self.lr, self.beta1, self.beta2
        for i, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            self.steps[i] += 1
            step = float(self.steps[i])  # torch keeps the count in a float32 tensor
            if self.weight_decay != 0:
                param.mul_(1 - lr * self.weight_decay)
            self.exp_avg[i].lerp_(grad, 1 - beta1)
            self.exp_avg_sq[i].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction2_sqrt = (1 - beta2**step) ** 0.5
            denom = (self.exp_avg_sq[i].sqrt() / bias_correction2_sqrt).add_(self.eps)
            param.addcdiv_(self.exp_avg[i], denom, value=-(lr / (1 - beta1**step)))
