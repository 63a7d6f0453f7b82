"""The one definition of "best": how attempts are ranked everywhere (racing, leaderboards, the
index's SQL, reports, session summaries, parallel summaries, ``--target-pgr``, the dashboard).

Rule: the **lower 95% bound of dev PGR over seeds** (mean minus the CI half-width), ties broken
by the mean. A one-seed result has no interval; its bound is its mean minus ``UNTESTED_PENALTY``,
so a lucky single seed cannot lead. Only ok, scored attempts rank, and an attempt whose latest
review is a rejection leaves every ranking (it stays visible, marked rejected).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from sandbox.results import IdeaResult

# A one-seed result (no interval) is pushed down by this much.
UNTESTED_PENALTY = 1.0
REJECTED = "reject"  # the review verdict that takes an attempt out of every ranking
RULE = "ranked by the lower 95% bound of dev PGR over seeds (ties by the mean); rejected attempts left out"
MEAN_COLUMN = "dev PGR mean"
BOUND_COLUMN = "lower 95%"
# SQL over the index's ``attempts`` table aliased ``a``: the same rule as ``lower_bound``.
SQL_BOUND = f"(a.pgr - COALESCE(a.pgr_ci95, {UNTESTED_PENALTY}))"
SQL_ORDER = f"a.pgr IS NULL, {SQL_BOUND} DESC, a.pgr DESC, a.created_at"
# True when the attempt's latest review (the index's ``reviews`` table) is not a rejection.
SQL_NOT_REJECTED = ("NOT EXISTS (SELECT 1 FROM reviews rv WHERE rv.attempt_id = a.attempt_id "
                    f"AND rv.verdict = '{REJECTED}' "
                    "AND rv.seq = (SELECT MAX(seq) FROM reviews rw WHERE rw.attempt_id = a.attempt_id))")
# The attempts that rank at all: ok, scored, not rejected.
SQL_RANKS = f"a.status = 'ok' AND a.pgr IS NOT NULL AND {SQL_NOT_REJECTED}"

T = TypeVar("T")
RankKey = tuple[float, float]


def lower_bound(mean: float | None, ci95: float | None) -> float | None:
    """Mean minus the 95% half-width (no interval: minus ``UNTESTED_PENALTY``); None unscored."""
    if mean is None:
        return None
    return mean - (ci95 if ci95 is not None else UNTESTED_PENALTY)


def rank_key(mean: float | None, ci95: float | None) -> RankKey | None:
    """What sorts attempts, larger first: (lower bound, mean); None for an unscored one."""
    bound = lower_bound(mean, ci95)
    return None if bound is None or mean is None else (bound, mean)


def result_key(result: IdeaResult | None) -> RankKey | None:
    """The rank key of a scored result (only ok results with a PGR rank)."""
    if result is None or result.status != "ok" or result.pgr is None:
        return None
    return rank_key(result.pgr.mean, result.pgr_ci95)


def result_bound(result: IdeaResult | None) -> float | None:
    """The lower bound a result ranks by, or None when it does not rank."""
    key = result_key(result)
    return None if key is None else key[0]


def ranked(items: Iterable[T], key: Callable[[T], RankKey | None]) -> list[T]:
    """The items that rank, best first (stable: equal keys keep their order)."""
    keyed = [(k, item) for item in items if (k := key(item)) is not None]
    keyed.sort(key=lambda pair: (-pair[0][0], -pair[0][1]))
    return [item for _, item in keyed]


def best(items: Iterable[T], key: Callable[[T], RankKey | None]) -> T | None:
    """The best item by the rule, or None when none ranks."""
    top = ranked(items, key)
    return top[0] if top else None


def is_rejected(verdict: str | None) -> bool:
    """Whether a latest review verdict takes its attempt out of the rankings."""
    return verdict == REJECTED


__all__ = ["BOUND_COLUMN", "MEAN_COLUMN", "REJECTED", "RankKey", "RULE", "SQL_BOUND", "SQL_NOT_REJECTED", "SQL_ORDER",
           "SQL_RANKS", "UNTESTED_PENALTY",
           "best", "is_rejected", "lower_bound", "rank_key", "ranked", "result_bound", "result_key"]
