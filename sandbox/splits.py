"""Class-balanced, deterministic splits: weak-train / unlabeled / dev / held-out."""

from __future__ import annotations

import numpy as np

from sandbox.errors import HarnessError
from sandbox.tasks.registry import SplitSizes

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
