"""Numpy → torch without warnings: the context hands out read-only arrays (memory-mapped
features, write-protected weak labels) so an idea cannot alter what the next seed reads;
``torch.as_tensor`` on such an array warns that it "is not writable". A private copy is made
only when the array is read-only or needs a dtype change."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(x: np.ndarray, dtype: type = np.float32) -> torch.Tensor:
    """A tensor over ``x`` as ``dtype`` (shares memory when ``x`` is writable and already that dtype)."""
    array: np.ndarray = np.asarray(x, dtype=dtype)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)
