import math

import numpy as np
import pytest
import torch

from sandbox.runtime import (
    aux_confidence_loss,
    bootstrap_loss,
    confidence_window_loss,
    confident_mask,
    knn_probe,
    label_propagation,
    logistic_probe,
    product_loss,
    smooth_ramp,
    soft_ce,
    train_head,
    weak_val_split,
)
from sandbox.runtime.context import IdeaContext, JobSpec


@pytest.fixture
def ctx(small_cache, tmp_path):
    job = JobSpec(idea_path="x.py", public_dir=str(small_cache.public_dir), weak_seed=1, student_seed=1,
                  weak_dir=str(small_cache.public_dir / "weak" / "seed_1"),
                  time_budget_s=60, scratch_dir=str(tmp_path))
    return IdeaContext.from_job(job)


def test_context_offers_what_the_contract_says(ctx):
    card = ctx.card
    assert ctx.n_classes == 10 and len(ctx.unlabeled_texts) == card.n_unlabeled == 600
    assert len(ctx.test_texts) == card.n_test == 400
    assert ctx.weak_soft.shape == (600, 10) and ctx.weak_test_probs.shape == (400, 10)
    for layer in card.layers:
        assert ctx.features("unlabeled", layer).shape == (600, card.feature_dim)
    assert 0 < ctx.time_left() <= 60


def test_context_arrays_are_read_only(ctx):
    with pytest.raises(ValueError):
        ctx.weak_soft[0, 0] = 1.0
    with pytest.raises(ValueError):
        ctx.features("test")[0, 0] = 1.0


def test_context_rejects_unknown_split_layer_and_seed(ctx, small_cache, tmp_path):
    with pytest.raises(ValueError, match="split"):
        ctx.features("weak_train")
    with pytest.raises(ValueError, match="not cached"):
        ctx.features("test", "layer_99")
    job = JobSpec(idea_path="x.py", public_dir=str(small_cache.public_dir), weak_seed=99, student_seed=99,
                  weak_dir=str(tmp_path), time_budget_s=60, scratch_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no weak-teacher"):
        IdeaContext.from_job(job)


def test_report_keeps_values_bounded(ctx):
    ctx.report("x", float("nan"))
    ctx.report("s", "y" * 1000)
    for i in range(100):
        ctx.report(f"k{i}", i)
    assert ctx.diagnostics["x"] == "nan" and len(ctx.diagnostics["s"]) == 200
    assert len(ctx.diagnostics) == 64


def test_smooth_ramp_is_continuous_and_bounded():
    values = [smooth_ramp(p / 100, end=0.2, max_value=0.5) for p in range(101)]
    assert values[0] == 0 and values[-1] == 0.5
    assert max(abs(a - b) for a, b in zip(values, values[1:], strict=False)) < 0.05  # no jump


@pytest.mark.parametrize("loss", [soft_ce, aux_confidence_loss(), bootstrap_loss(),
                                  product_loss(), confidence_window_loss()])
def test_losses_are_finite_scalars_with_gradients(loss):
    torch.manual_seed(0)
    logits = torch.randn(16, 3, requires_grad=True)
    targets = torch.softmax(torch.randn(16, 3), -1)
    for progress in (0.0, 0.5, 1.0):
        value = loss(logits, targets, progress)
        assert value.ndim == 0 and math.isfinite(value.item())
        value.backward()


def test_aux_confidence_keeps_class_balance_for_two_classes():
    logits = torch.tensor([[0.0, 3.0]] * 8)  # the student predicts class 1 everywhere
    targets = torch.tensor([[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 4)
    from sandbox.runtime.losses import _balanced_hard

    hard = _balanced_hard(logits.softmax(-1), targets)
    assert hard[:, 1].sum().item() >= 4  # thresholded at the weak share, not all one class


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centers = np.zeros((2, 8))
    centers[0, 0] = centers[1, 1] = 6.0  # far from the origin, so cosine neighbours work too
    x = rng.normal(size=(n, 8)) + centers[y]
    return x.astype(np.float32), y


def test_train_head_learns_and_early_stops_on_weak_labels():
    x, y = _blobs()
    soft = np.eye(2, dtype=np.float32)[y]
    head = train_head(x, soft, epochs=60, seed=0)
    assert (head.predict_proba(x).argmax(1) == y).mean() > 0.95
    tr, va = weak_val_split(len(x), 0.25, seed=0)
    stopped = train_head(x[tr], soft[tr], val=(x[va], soft[va]), epochs=50, patience=2, seed=0)
    assert len(stopped.history) < 50 and "weak_val_agreement" in stopped.history[0]
    mlp = train_head(x, soft, hidden=16, epochs=5, seed=0)
    assert mlp.predict_proba(x).shape == (200, 2)


def test_probes_and_propagation_recover_structure():
    x, y = _blobs(seed=1)
    noisy = np.eye(2, dtype=np.float32)[np.where(np.arange(len(y)) % 5 == 0, 1 - y, y)]
    assert (knn_probe(x, noisy, x, k=15, exclude_self=True).argmax(1) == y).mean() > 0.95
    assert (logistic_probe(x, noisy, x).argmax(1) == y).mean() > 0.95
    spread = label_propagation(x, noisy, k=10)
    assert np.allclose(spread.sum(1), 1, atol=1e-4) and (spread.argmax(1) == y).mean() > 0.95
    assert confident_mask(np.array([[0.8, 0.2], [0.6, 0.4]])).tolist() == [True, False]
