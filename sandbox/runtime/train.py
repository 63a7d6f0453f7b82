"""Linear and MLP heads on frozen features, trained in torch with a pluggable loss."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sandbox.runtime.arrays import to_tensor
from sandbox.runtime.losses import LossFn, soft_ce
from sandbox.runtime.optim import LeanAdamW


@dataclass
class Head:
    """A trained classification head over fixed features."""

    module: nn.Module
    history: list[dict[str, float]]

    def logits(self, x: np.ndarray) -> torch.Tensor:
        self.module.eval()
        with torch.no_grad():
            return self.module(to_tensor(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).softmax(-1).numpy()


def make_head(in_dim: int, n_classes: int, hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """A linear head (``hidden=0``) or a one-hidden-layer MLP."""
    if hidden <= 0:
        return nn.Linear(in_dim, n_classes)
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
    )


def weak_val_split(n: int, frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of a random split of the weak-labeled rows (never gold)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * frac)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _agreement(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    module.eval()
    with torch.no_grad():
        agree = (module(x).argmax(-1) == y.argmax(-1)).float().mean().item()
    module.train()
    return agree


def train_head(
    x: np.ndarray,
    targets: np.ndarray,
    *,
    hidden: int = 0,
    dropout: float = 0.0,
    epochs: int = 20,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    loss_fn: LossFn = soft_ce,
    sample_weight: np.ndarray | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int = 4,
    time_limit_s: float | None = None,
) -> Head:
    """Train a head on ``x`` against ``targets`` (soft labels, (n, C)).

    ``val`` = (features, weak soft labels) enables early stopping on agreement with the weak
    labels of a held-out weak-labeled split; the best epoch's weights are kept.
    ``sample_weight`` resamples rows in proportion to their weight.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = to_tensor(x)
    yt = to_tensor(targets)
    module = make_head(xt.shape[1], yt.shape[1], hidden, dropout)
    opt = LeanAdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    weights = None if sample_weight is None else to_tensor(sample_weight, np.float64)
    val_t = None if val is None else tuple(to_tensor(a) for a in val)
    steps_per_epoch = max(1, (len(xt) + batch_size - 1) // batch_size)
    total = epochs * steps_per_epoch
    best_state, best_score, since_best = None, -1.0, 0
    history: list[dict[str, float]] = []
    start, step = time.monotonic(), 0
    module.train()
    for epoch in range(epochs):
        if weights is None:
            order = torch.randperm(len(xt), generator=gen)
        else:
            order = torch.multinomial(weights, len(xt), replacement=True, generator=gen)
        running = 0.0
        for batch in order.split(batch_size):
            # index_select: the same rows as xt[batch], without indexing's Python-side parsing
            loss = loss_fn(module(xt.index_select(0, batch)), yt.index_select(0, batch), step / total)
            opt.zero_grad()
            loss.backward()
            opt.step()
            running += loss.item()
            step += 1
        record = {"epoch": float(epoch), "loss": running / steps_per_epoch}
        if val_t is not None:
            record["weak_val_agreement"] = _agreement(module, *val_t)
            if record["weak_val_agreement"] > best_score:
                best_score, since_best = record["weak_val_agreement"], 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                since_best += 1
        history.append(record)
        if val_t is not None and since_best >= patience:
            break
        if time_limit_s is not None and time.monotonic() - start > time_limit_s:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return Head(module=module, history=history)
