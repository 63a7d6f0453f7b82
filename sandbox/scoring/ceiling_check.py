"""The ceiling-recipe check (trusted: it reads gold labels): is the gold-trained ceiling under-trained?

Run once per cache when an idea first scores at or above the ceiling (a few seconds on a
features task), kept in the private store. Fine-tune ceilings are a training run each and are
not re-trained here: their check is ``None``, and the flag says so.
"""

from __future__ import annotations

import numpy as np

from sandbox.cache.splits import SELECTION
from sandbox.cache.task_cache import CEILING_EPOCHS, TaskCache, features_ceiling
from sandbox.cache.threads import single_threaded
from sandbox.files import atomic_write, file_lock
from sandbox.results import CeilingCheck
from sandbox.scoring.t_stats import t_half_width

CHECK_FILE = "ceiling_check.json"
LONGER_FACTOR = 3


def ceiling_check(cache: TaskCache) -> CeilingCheck | None:
    """The check of this cache's ceiling recipe, computed on first use; None for fine-tune tasks."""
    if cache.card().kind != "features":
        return None
    path = cache.private_dir / CHECK_FILE
    with file_lock(cache.root / "locks" / f"{cache.key}.ceiling-check.lock"):
        if not path.is_file():
            atomic_write(path, _run_check(cache).model_dump_json(indent=2))
    return CeilingCheck.model_validate_json(path.read_text())


def _run_check(cache: TaskCache) -> CeilingCheck:
    baselines = cache.baselines()
    seed = (baselines.reference_seeds or [0])[0]
    x_unl = np.load(cache.public_dir / "features" / "unlabeled__final.npy")
    x_test = np.load(cache.public_dir / "features" / "test__final.npy")
    gold_unl = np.load(cache.private_dir / "gold_unlabeled.npy")
    dev = cache.test_roles() == SELECTION
    gold_dev = cache.gold_test()[dev]
    longer = CEILING_EPOCHS * LONGER_FACTOR
    fits, correct = {}, {}
    with single_threaded():  # a linear head: one thread is fastest (sandbox/cache/threads.py)
        for epochs in (CEILING_EPOCHS, longer):
            head = features_ceiling(cache, seed, gold_unl, epochs)
            correct[epochs] = head.predict_proba(x_test)[dev].argmax(1) == gold_dev
            fits[epochs] = (float(correct[epochs].mean()),
                            float((head.predict_proba(x_unl).argmax(1) == gold_unl).mean()))
    seed_noise = t_half_width(baselines.ceiling_dev.values) or 0.0
    rows_noise = paired_rows_half_width(correct[longer], correct[CEILING_EPOCHS])
    return CeilingCheck(
        seed=seed, recipe_epochs=CEILING_EPOCHS, longer_epochs=longer,
        recipe_dev=fits[CEILING_EPOCHS][0], longer_dev=fits[longer][0],
        train_fit=fits[CEILING_EPOCHS][1], longer_train_fit=fits[longer][1],
        noise=max(seed_noise, rows_noise, 1.0 / max(1, int(dev.sum()))))


def paired_rows_half_width(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """95% half-width of the accuracy difference of two heads scored on the same rows (a paired
    t-interval over rows). Why: the two heads differ only on the rows where one is right and the
    other wrong, and which rows a dev division holds moves that difference far more than the
    reference seeds move the ceiling (wordnet-10: +0.016 on one division, 0.000 on another)."""
    diff = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    return t_half_width(diff.tolist()) or 0.0
