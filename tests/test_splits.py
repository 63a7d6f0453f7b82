import numpy as np
import pytest

from sandbox.cache.splits import make_splits
from sandbox.errors import HarnessError
from sandbox.tasks import SplitSizes


def _labels(n_per_class=(500, 300, 50)):
    return np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])


def test_splits_are_deterministic_per_seed_and_differ_across_seeds():
    labels, sizes = _labels(), SplitSizes(weak_train=60, unlabeled=300, dev=60, heldout=60)
    a, b = make_splits(labels, 3, sizes, seed=1), make_splits(labels, 3, sizes, seed=1)
    c = make_splits(labels, 3, sizes, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["unlabeled"], c["unlabeled"])


def test_splits_are_disjoint_exact_and_class_balanced():
    labels, sizes = _labels(), SplitSizes(weak_train=60, unlabeled=300, dev=60, heldout=60)
    splits = make_splits(labels, 3, sizes, seed=0)
    seen = np.concatenate(list(splits.values()))
    assert len(seen) == len(set(seen.tolist())) == sizes.total
    assert {k: len(v) for k, v in splits.items()} == sizes.model_dump()
    assert np.bincount(labels[splits["weak_train"]], minlength=3).tolist() == [20, 20, 20]
    # class 2 has 50 rows in all: it gives what it has, the others fill the unlabeled split
    assert len(splits["unlabeled"]) == 300


def test_too_many_requested_is_a_clear_error():
    with pytest.raises(HarnessError, match="smaller --split-sizes"):
        make_splits(_labels((5, 5)), 2, SplitSizes(weak_train=10, unlabeled=10, dev=10, heldout=10), 0)


def test_split_sizes_parse():
    assert SplitSizes.parse("1,2,3,4").total == 10
    with pytest.raises(ValueError):
        SplitSizes.parse("1,2,3")


def test_test_order_and_roles_follow_the_secret_only():
    from sandbox.cache.splits import secret_test_layout

    labels = _labels((100, 100, 100))
    pool = np.arange(0, 300, 2)
    a = secret_test_layout(pool, labels, 75, b"a" * 32)
    again = secret_test_layout(pool, labels, 75, b"a" * 32)
    other = secret_test_layout(pool, labels, 75, b"b" * 32)
    assert all(np.array_equal(x, y) for x, y in zip(a, again, strict=True))
    assert not np.array_equal(a[1], other[1]) and not np.array_equal(a[0], other[0])
    idx, roles = a
    assert sorted(idx.tolist()) == pool.tolist() and int((roles == 0).sum()) == 75
    assert np.bincount(labels[idx[roles == 0]], minlength=3).tolist() == [25, 25, 25]


def test_cache_keeps_its_split_secret_private(small_cache):
    from sandbox.cache.task_cache import SECRET_NAME

    assert len((small_cache.private_dir / SECRET_NAME).read_bytes()) == 32
    assert not any(p.name == SECRET_NAME for p in small_cache.public_dir.rglob("*"))


def test_dev_is_divided_into_a_selection_and_a_confirmation_part_by_the_secret():
    from sandbox.cache.splits import (
        CONFIRMATION,
        HELDOUT,
        SELECTION,
        confirmation_part,
        secret_test_layout,
    )

    labels = np.repeat(np.arange(4), 50)
    idx, roles = secret_test_layout(np.arange(200), labels, 120, b"k" * 32)
    three = confirmation_part(roles, labels[idx], None, b"k" * 32)
    assert ((three == HELDOUT) == (roles == HELDOUT)).all()  # the held-out line does not move
    assert int((three == CONFIRMATION).sum()) == int((three == SELECTION).sum()) == 60
    assert np.bincount(labels[idx][three == CONFIRMATION], minlength=4).tolist() == [15] * 4
    other = confirmation_part(roles, labels[idx], None, b"j" * 32)
    assert not (other == three).all() and (confirmation_part(roles, labels[idx], None, b"k" * 32) == three).all()
    groups = [f"g{i // 4}" for i in range(len(idx))]  # groups of 4 rows: never split
    grouped = confirmation_part(roles, labels[idx], groups, b"k" * 32)
    for g in set(groups):
        assert len({int(grouped[i]) for i in range(len(idx)) if groups[i] == g and roles[i] == SELECTION}) <= 1


def test_a_cache_scores_every_part_and_its_references_cover_each(small_cache):
    from sandbox.cache.splits import CONFIRMATION, SELECTION

    roles = small_cache.test_roles()
    assert int((roles == CONFIRMATION).sum()) == int((roles == SELECTION).sum()) == 100  # SMALL dev 200
    b = small_cache.baselines()
    assert b.weak_confirm is not None and b.ceiling_confirm is not None and b.weak_confirm.n == b.weak_dev.n
