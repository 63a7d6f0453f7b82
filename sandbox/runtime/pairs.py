"""Pair-aware features of preference rows ({prompt, first, second, label: A/B}).

A pair joined into one text loses which side is which for a bag of words or a mean-pooled
encoder. So a preference feature task encodes each side apart (prompt + that answer) and keeps
one row as three blocks: [side A, side B, A - B]. Swapping the sides and the A/B targets gives an
equally valid example (label symmetrisation), which the cache's ceilings and weak teachers train
on, and ideas may too.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pair_rows(first: Any, second: Any) -> Any:
    """[first, second, first - second] side by side (dense arrays or scipy sparse matrices)."""
    if hasattr(first, "tocsr"):  # sparse (TF-IDF): stay sparse
        from scipy import sparse

        return sparse.hstack([first, second, first - second], format="csr")
    a, b = np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32)
    return np.concatenate([a, b, a - b], axis=1)


def swap_sides(x: np.ndarray, targets: np.ndarray | None = None) -> Any:
    """Pair features with A and B exchanged ([B, A, B - A]); with ``targets`` (n, 2) in A/B order,
    (swapped features, targets with the two columns exchanged)."""
    width = x.shape[1] // 3
    a, b = x[:, :width], x[:, width : 2 * width]
    swapped = np.concatenate([b, a, b - a], axis=1)
    return swapped if targets is None else (swapped, np.asarray(targets)[:, ::-1].copy())


def symmetrised(x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair twice, as given and with its sides swapped (targets (n, 2) in A/B order)."""
    sx, st = swap_sides(x, targets)
    return np.concatenate([x, sx]), np.concatenate([np.asarray(targets), st])
