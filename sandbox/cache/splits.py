"""Class-balanced, deterministic splits: weak-train / unlabeled / dev / held-out."""

from __future__ import annotations

import numpy as np

from sandbox.errors import HarnessError
from sandbox.tasks.spec import SplitSizes

SPLITS = ("weak_train", "unlabeled", "dev", "heldout")
# Test roles: dev's selection part (the only test rows whose scores reach a proposer), held-out,
# and dev's confirmation part (scored, never shown: what `--confirm` and verdicts rest on).
SELECTION, HELDOUT, CONFIRMATION = 0, 1, 2
CONFIRM_FRACTION = 0.5


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


def role_splits(roles: list[str], groups: list[str], sizes: SplitSizes, seed: int) -> dict[str, np.ndarray]:
    """Indices per split of a split-file task: ``weak_train`` from train_label, ``unlabeled`` from
    train_unlabel, ``test`` (dev + held-out, divided later by the secret) from test only. Where
    the sizes ask for fewer rows than a file holds, a seeded sample of it; test rows are taken by
    whole ``consistency_id`` groups, so a group is never split by sampling."""
    rng = np.random.default_rng(seed)
    roles_arr = np.asarray(roles)
    want = {"weak_train": sizes.weak_train, "unlabeled": sizes.unlabeled, "test": sizes.dev + sizes.heldout}
    out: dict[str, np.ndarray] = {}
    for role, n in want.items():
        idx = np.flatnonzero(roles_arr == role)
        if role == "test":
            out[role] = np.sort(_whole_groups(idx, groups, n, rng))
        else:
            out[role] = np.sort(rng.permutation(idx)[:n])
    return out


def _whole_groups(idx: np.ndarray, groups: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """About ``n`` of ``idx`` (at most n unless one group alone is larger), whole groups at a
    time in a random order; rows without a group ("") are groups of one."""
    members = _group_members(idx, groups)
    chosen: list[int] = []
    for g in rng.permutation(len(members)):
        if chosen and len(chosen) + len(members[g]) > n:
            continue
        chosen += members[g]
        if len(chosen) >= n:
            break
    return np.asarray(chosen, dtype=np.int64)


def _group_members(idx: np.ndarray, groups: list[str]) -> list[list[int]]:
    """``idx`` as lists of indices sharing a non-empty group (in first-seen order)."""
    by_group: dict[str, list[int]] = {}
    members: list[list[int]] = []
    for i in idx.tolist():
        key = groups[i]
        if not key:
            members.append([i])
        elif key in by_group:
            by_group[key].append(i)
        else:
            by_group[key] = [i]
            members.append(by_group[key])
    return members


def secret_group_layout(test_idx: np.ndarray, groups: list[str], n_dev: int,
                        secret: bytes) -> tuple[np.ndarray, np.ndarray]:
    """:func:`secret_test_layout` for test rows in ``consistency_id`` groups: whole groups go to
    dev (in an order only ``secret`` gives) until it holds about ``n_dev`` rows, the rest are
    held out, so no group straddles the dev/held-out line."""
    rng = secret_rng(secret)
    test_idx = np.asarray(test_idx)
    members = _group_members(np.arange(len(test_idx)), [groups[i] for i in test_idx])
    roles = np.ones(len(test_idx), dtype=np.int8)
    n_in_dev = 0
    for g in rng.permutation(len(members)):
        if n_in_dev >= n_dev:
            break
        if n_in_dev and n_in_dev + len(members[g]) > n_dev:
            continue
        roles[members[g]] = 0
        n_in_dev += len(members[g])
    order = rng.permutation(len(test_idx))
    return test_idx[order], roles[order]


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


def confirmation_part(roles: np.ndarray, test_labels: np.ndarray, groups: list[str] | None,
                      secret: bytes) -> np.ndarray:
    """``roles`` with a secret share (``CONFIRM_FRACTION``) of the dev rows moved to the
    confirmation part: class-balanced, or by whole ``consistency_id`` groups where the rows have
    them. The draw uses its own stream of the secret, so the dev/held-out line is unchanged."""
    roles = np.asarray(roles).copy()
    dev = np.flatnonzero(roles == SELECTION)
    n_confirm = int(len(dev) * CONFIRM_FRACTION)
    if n_confirm == 0:
        return roles
    rng = np.random.default_rng([int.from_bytes(secret, "big"), CONFIRMATION])
    if groups is not None and any(groups[i] for i in dev):
        members = _group_members(dev, groups)
        chosen: list[int] = []
        for g in rng.permutation(len(members)):
            if len(chosen) + len(members[g]) <= n_confirm:
                chosen += members[g]
        roles[np.asarray(chosen, dtype=np.int64)] = CONFIRMATION
        return roles
    labels = np.asarray(test_labels)[dev]
    classes = np.unique(labels)
    pools = [list(rng.permutation(dev[labels == c])) for c in classes]
    want = _per_class(n_confirm, len(classes))
    picked: list[int] = []
    for c in range(len(classes)):
        picked += pools[c][: want[c]]
        pools[c] = pools[c][want[c]:]
    while len(picked) < n_confirm:  # a class short of its share: top up from the largest left
        c = max(range(len(classes)), key=lambda k: len(pools[k]))
        picked.append(pools[c].pop(0))
    roles[np.asarray(picked, dtype=np.int64)] = CONFIRMATION
    return roles
