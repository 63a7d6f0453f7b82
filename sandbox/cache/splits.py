"""Class-balanced, deterministic splits: weak-train / unlabeled / dev / held-out."""

from __future__ import annotations

import numpy as np

from sandbox.errors import HarnessError
from sandbox.tasks.spec import SplitSizes

SPLITS = ("weak_train", "unlabeled", "dev", "heldout")


def _per_class(total: int, n_classes: int) -> list[int]:
    base, extra = divmod(total, n_classes)
    return [base + (1 if c < extra else 0) for c in range(n_classes)]


def make_splits(labels: np.ndarray, n_classes: int, sizes: SplitSizes, seed: int) -> dict[str, np.ndarray]:
    """Indices per split, each split as class-balanced as the data allows.

    A class too small for its equal share gives all it has; the shortfall is drawn from the
    remaining classes, so split sizes are always exact. Same inputs and seed, same splits.
    """
    labels = np.asarray(labels)
    if sizes.total > len(labels):
        raise HarnessError(
            f"split sizes need {sizes.total} examples but the task has {len(labels)}: "
            "pass smaller --split-sizes"
        )
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(n_classes)]
    out: dict[str, np.ndarray] = {}
    for name in SPLITS:
        want = _per_class(getattr(sizes, name), n_classes)
        chosen: list[int] = []
        for c in range(n_classes):
            take = min(want[c], len(pools[c]))
            chosen += pools[c][:take]
            pools[c] = pools[c][take:]
        short = getattr(sizes, name) - len(chosen)
        while short > 0:  # top up from the classes with the most left
            c = max(range(n_classes), key=lambda k: len(pools[k]))
            chosen.append(pools[c].pop(0))
            short -= 1
        out[name] = rng.permutation(np.array(chosen, dtype=np.int64))
    return out


def secret_rng(secret: bytes) -> np.random.Generator:
    """A generator seeded by the cache's private secret (never by a public constant)."""
    return np.random.default_rng(int.from_bytes(secret, "big"))


def secret_test_layout(test_idx: np.ndarray, labels: np.ndarray, n_dev: int,
                       secret: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(test indices in a secret order, roles: 0 dev / 1 held-out) for the pooled test rows.

    Which rows form the test split may follow from public constants; the order and which of
    them are held out follow from ``secret`` only, class-balanced as far as the data allows,
    so an idea that recomputes the public splits still cannot tell dev from held-out rows."""
    rng = secret_rng(secret)
    test_idx = np.asarray(test_idx)
    test_labels = np.asarray(labels)[test_idx]
    classes = np.unique(test_labels)
    pools = [list(rng.permutation(np.flatnonzero(test_labels == c))) for c in classes]
    want = _per_class(n_dev, len(classes))
    dev: list[int] = []
    for c in range(len(classes)):
        take = min(want[c], len(pools[c]))
        dev += pools[c][:take]
        pools[c] = pools[c][take:]
    while len(dev) < n_dev:  # top up from the classes with the most left
        c = max(range(len(classes)), key=lambda k: len(pools[k]))
        dev.append(pools[c].pop(0))
    roles = np.ones(len(test_idx), dtype=np.int8)
    roles[np.asarray(dev, dtype=np.int64)] = 0
    order = rng.permutation(len(test_idx))
    return test_idx[order], roles[order]
