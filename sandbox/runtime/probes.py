"""Probes and graph methods on frozen strong features (numpy in, numpy out)."""

from __future__ import annotations

import numpy as np
import torch

from sandbox.runtime.arrays import to_tensor


def confident_mask(probs: np.ndarray, threshold: float = 0.75) -> np.ndarray:
    """Rows whose largest class probability reaches ``threshold``."""
    return np.asarray(probs).max(axis=1) >= threshold


def _unit(x: np.ndarray) -> torch.Tensor:
    t = to_tensor(x)
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def knn_indices(x_query: np.ndarray, x_ref: np.ndarray, k: int, exclude_self: bool = False,
                chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k nearest neighbours of each query row in ``x_ref``: (indices, similarities)."""
    q, r = _unit(x_query), _unit(x_ref)
    idx_parts, sim_parts = [], []
    for start in range(0, len(q), chunk):
        sims = q[start : start + chunk] @ r.T
        if exclude_self:
            rows = torch.arange(sims.shape[0])
            sims[rows, rows + start] = -2.0
        top = sims.topk(min(k, r.shape[0]), dim=1)
        idx_parts.append(top.indices.numpy())
        sim_parts.append(top.values.numpy())
    return np.concatenate(idx_parts), np.concatenate(sim_parts)


def knn_probe(x_train: np.ndarray, y_soft: np.ndarray, x_query: np.ndarray, k: int = 20,
              exclude_self: bool = False) -> np.ndarray:
    """Average of the k nearest training rows' soft labels (cosine similarity)."""
    idx, _ = knn_indices(x_query, x_train, k, exclude_self)
    probs = np.asarray(y_soft, dtype=np.float32)[idx].mean(axis=1)
    return probs / probs.sum(axis=1, keepdims=True)


def logistic_probe(x_train: np.ndarray, y_soft: np.ndarray, x_query: np.ndarray,
                   c: float = 1.0, weighted: bool = True, seed: int = 0) -> np.ndarray:
    """Logistic regression on the argmax of ``y_soft`` (weighted by confidence), then
    probabilities for ``x_query`` over all classes."""
    from sklearn.linear_model import LogisticRegression

    y_soft = np.asarray(y_soft)
    hard = y_soft.argmax(axis=1)
    weights = y_soft.max(axis=1) if weighted else None
    model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    model.fit(np.asarray(x_train), hard, sample_weight=weights)
    out = np.zeros((len(x_query), y_soft.shape[1]), np.float32)
    out[:, model.classes_] = model.predict_proba(np.asarray(x_query))
    return out


def label_propagation(x: np.ndarray, y_init: np.ndarray, k: int = 10, alpha: float = 0.8,
                      iters: int = 20) -> np.ndarray:
    """Label spreading (Zhou et al.) over a symmetric cosine kNN graph.

    ``y_init`` rows may be all-zero for points with no label (e.g. test points)."""
    n = len(x)
    idx, sims = knn_indices(x, x, k, exclude_self=True)
    rows = np.repeat(np.arange(n), idx.shape[1])
    weights = torch.sparse_coo_tensor(
        torch.from_numpy(np.vstack([rows, idx.ravel()])),
        torch.from_numpy(np.clip(sims.ravel(), 0, None).astype(np.float32)),
        (n, n),
        check_invariants=True,
    ).coalesce()
    weights = ((weights + weights.t()) * 0.5).coalesce()
    degree = torch.sparse.sum(weights, dim=1).to_dense().clamp_min(1e-12)
    inv_sqrt = degree.pow(-0.5)
    y0 = to_tensor(y_init)
    f = y0.clone()
    for _ in range(iters):
        spread = inv_sqrt[:, None] * torch.sparse.mm(weights, inv_sqrt[:, None] * f)
        f = alpha * spread + (1 - alpha) * y0
    f = f.clamp_min(0) + 1e-8
    return (f / f.sum(dim=1, keepdim=True)).numpy()
