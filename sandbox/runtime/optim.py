"""A lean AdamW for the small heads ``train_head`` fits.

On a linear head over 384 features one ``torch.optim.AdamW`` step costs about as much in its
wrapper (hooks, profiler scopes, the dynamo guard, per-parameter state lookups) as in its
arithmetic, and a seed takes over a thousand steps. ``LeanAdamW`` does the same decoupled
AdamW update with the same operations in the same order as torch's single-tensor CPU path,
each applied to all parameters in one ``_foreach`` call, so its results are bitwise equal to
``torch.optim.AdamW(foreach=False)`` (tests/test_optim.py checks it and fails if a torch
upgrade changes that arithmetic). Scores recorded before it existed therefore replay unchanged.
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
        live = [i for i, param in enumerate(self.params) if param.grad is not None]
        if not live:
            return
        for i in live:
            self.steps[i] += 1
        if len({self.steps[i] for i in live}) == 1:
            self._update(live, float(self.steps[live[0]]))
        else:  # parameters that missed steps: each with its own bias correction
            for i in live:
                self._update([i], float(self.steps[i]))

    def _update(self, live: list[int], step: float) -> None:
        """One update of the parameters ``live`` (all at count ``step``, torch keeps it in a
        float32 tensor): the single-tensor path's operations, each applied to the whole list
        at once (torch's ``_foreach`` ops, one call per operation instead of one per tensor)."""
        lr, beta1, beta2 = self.lr, self.beta1, self.beta2
        params: list[torch.Tensor] = [self.params[i] for i in live]
        grads = [param.grad for param in params if param.grad is not None]  # ``live``: params with a grad
        exp_avg = [self.exp_avg[i] for i in live]
        exp_avg_sq = [self.exp_avg_sq[i] for i in live]
        if self.weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * self.weight_decay)
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, (1 - beta2**step) ** 0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, value=-(lr / (1 - beta1**step)))
