"""Pair-aware preference tasks: each side encoded apart, [A, B, A - B], label symmetrisation."""

from __future__ import annotations

import json
import random

import numpy as np

from sandbox.runtime.pairs import pair_rows, swap_sides, symmetrised

FRUITS = ["apple", "pear", "plum", "cherry", "mango", "peach", "grape", "lemon", "melon", "banana"]
TOOLS = ["hammer", "wrench", "chisel", "saw", "drill", "pliers", "spanner", "mallet", "file", "screwdriver"]


def test_swapping_sides_is_an_involution_that_flips_the_targets():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(6.0, 12.0).reshape(2, 3)
    x = pair_rows(a, b)
    assert x.shape == (2, 9) and np.allclose(x[:, 6:], a - b)
    t = np.array([[1.0, 0.0], [0.2, 0.8]])
    sx, st = swap_sides(x, t)
    assert np.allclose(sx, pair_rows(b, a)) and np.allclose(st, t[:, ::-1])
    assert np.allclose(swap_sides(sx), x)
    both, targets = symmetrised(x, t)
    assert both.shape == (4, 9) and np.allclose(targets.sum(0), [2.0, 2.0])  # each side wins as often


def _pref_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        fruit, tool = rng.choice(FRUITS), rng.choice(TOOLS)
        a_first = rng.random() < 0.5
        rows.append({"prompt": "Which can you eat?", "first": fruit if a_first else tool,
                     "second": tool if a_first else fruit, "label": "A" if a_first else "B"})
    return rows


def test_a_preference_task_keeps_the_order_of_its_sides(tmp_path):
    """Every row holds one fruit and one tool, so the label is only in which side is which: the
    pair-aware teachers and ceilings learn it (a joined text's bag of words would not)."""
    from sandbox.cache.task_cache import open_cache
    from sandbox.cache.teachers import fit_pair_tfidf_teacher
    from sandbox.tasks import SplitSizes, get_task

    folder = tmp_path / "pref"
    folder.mkdir()
    (folder / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in _pref_rows(240)))
    spec = get_task(str(folder), SplitSizes.parse("60,100,40,40"))
    cache = open_cache(spec, n_weak_seeds=2, show_progress=False, root=tmp_path / "cache")
    card = cache.card()
    assert card.pair_features and card.feature_dim == 3 * 384
    x = np.load(cache.public_dir / "features" / "test__final.npy")
    assert np.allclose(x[:, 768:], x[:, :384] - x[:, 384:768], atol=1e-5)
    b = cache.baselines()
    assert b.weak_dev.mean > 0.8 and b.ceiling_dev.mean > 0.8  # chance is 0.5
    sides = [(f"q\n{r['first']}", f"q\n{r['second']}") for r in _pref_rows(80, seed=1)]
    labels = np.array([0 if r["label"] == "A" else 1 for r in _pref_rows(80, seed=1)])
    probs = fit_pair_tfidf_teacher(sides[:60], labels[:60], {"as given": sides[60:],
                                                              "swapped": [(b, a) for a, b in sides[60:]]}, 0)
    assert np.abs(probs["as given"] - probs["swapped"][:, ::-1]).max() < 0.05  # no side is favoured
