"""The runtime's speed-ups change no result: LeanAdamW is bitwise torch's AdamW, and the warm
worker's one-time run of the runtime ops leaves no trace a seed could see."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sandbox.runtime import losses, train
from sandbox.runtime.optim import LeanAdamW
from sandbox.runtime.worker import _warm_ops

ROOT = Path(__file__).resolve().parents[1]


def _problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 24)).astype(np.float32)
    logits = x[:, :4] @ rng.normal(size=(4, 4)) + rng.normal(size=(300, 4))
    soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return x, soft.astype(np.float32)


def _train_with(optimizer: type | None, monkeypatch: pytest.MonkeyPatch, **kwargs) -> train.Head:  # noqa: ANN003
    if optimizer is None:  # torch's own, single-tensor path (what AdamW picks on CPU)
        monkeypatch.setattr(train, "LeanAdamW",
                            lambda params, **kw: torch.optim.AdamW(params, foreach=False, **kw))
    else:
        monkeypatch.setattr(train, "LeanAdamW", optimizer)
    x, soft = _problem()
    return train.train_head(x, soft, seed=3, epochs=4, batch_size=32, **kwargs)


@pytest.mark.parametrize("kwargs", [
    {},
    {"hidden": 16, "dropout": 0.2, "weight_decay": 0.0, "lr": 0.02},
    {"loss_fn": losses.aux_confidence_loss(), "sample_weight": np.linspace(0.1, 1.0, 300)},
    {"val": _problem(1), "patience": 1},
], ids=["linear", "mlp-no-decay", "aux-resampled", "early-stop"])
def test_lean_adamw_is_bitwise_torchs_adamw(monkeypatch, kwargs):
    theirs = _train_with(None, monkeypatch, **kwargs)
    ours = _train_with(LeanAdamW, monkeypatch, **kwargs)
    assert ours.history == theirs.history
    for mine, reference in zip(ours.module.state_dict().values(), theirs.module.state_dict().values(), strict=True):
        assert torch.equal(mine, reference)


def test_lean_adamw_skips_parameters_without_gradients_as_torch_does():
    """A parameter with no gradient in a step keeps its moments and its step count."""
    torch.manual_seed(0)
    pairs = []
    for make in (lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.01, foreach=False),
                 lambda ps: LeanAdamW(ps, lr=0.1, weight_decay=0.01)):
        torch.manual_seed(0)
        a, b = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(5))
        opt = make([a, b])
        for step in range(6):
            opt.zero_grad()
            loss = (a * a).sum() + ((b * b).sum() if step % 2 else 0.0)
            loss.backward()
            opt.step()
        pairs.append((a.detach().clone(), b.detach().clone()))
    assert torch.equal(pairs[0][0], pairs[1][0]) and torch.equal(pairs[0][1], pairs[1][1])


def test_the_workers_warm_up_leaves_every_random_state_and_the_thread_count_as_they_were():
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    threads = torch.get_num_threads()
    before = random.random(), np.random.random(), torch.rand(1).item()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    _warm_ops()
    assert (random.random(), np.random.random(), torch.rand(1).item()) == before
    assert torch.get_num_threads() == threads


FORK_AFTER_WARM_UP = """
import os, select, sys
import torch
from sandbox.runtime.worker import _warm_ops
_warm_ops()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    torch.set_num_threads(2)
    big = torch.randn(600, 600)
    total = float((big @ big).sum()) + float(torch.randn(1 << 20).exp().sum())
    os.write(write, str(torch.get_num_threads()).encode())
    os._exit(0)
ready, _, _ = select.select([read], [], [], 60)
if not ready:
    os.kill(pid, 9)
os.waitpid(pid, 0)
print(os.read(read, 10).decode() if ready else "hung")
"""


def test_a_child_forked_after_the_warm_up_can_use_more_threads():
    """The warm-up runs on one thread, so no thread pool exists at the fork: a child that asks
    for two threads gets them and its parallel ops finish. (Run in a fresh interpreter: this
    test process has used torch's pool already; a warm-up on two threads hangs the child.)"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", FORK_AFTER_WARM_UP], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2", done.stderr[-2000:]
