"""The built-in baselines as rows of the leaderboard, placed among the attempts by the table's
order (the one ranking of experiments/ranking.py by default) and marked as baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.ui.tables import Sort
from experiments.ranking import lower_bound, rank_key


@dataclass(frozen=True)
class BaselineRow:
    """One built-in baseline (``aar baselines``) on the task's seeds, shaped like an attempt row."""

    name: str
    pgr: float
    pgr_ci95: float | None
    heldout_pgr: float | None
    n_seeds: int
    source: str
    is_baseline: bool = True
    vs_vanilla: float | None = None
    vs_vanilla_p: float | None = None
    dev_acc: float | None = None
    heldout_acc: float | None = None
    session_id: str = ""

    @property
    def pgr_lower(self) -> float | None:
        return lower_bound(self.pgr, self.pgr_ci95)

    @classmethod
    def from_summary(cls, row: dict[str, Any], source: str) -> BaselineRow:
        values = row.get("pgr_values") or []
        return cls(str(row["name"]), float(row["pgr"]), row.get("pgr_ci95"), row.get("heldout_pgr"),
                   len(values), source)


# ``sort key -> a row's value`` for placing baselines among attempts (attribute names shared).
_VALUES: dict[str, Callable[[Any], Any]] = {
    "name": lambda r: r.name.lower(), "dev_pgr": lambda r: r.pgr, "lower": lambda r: r.pgr_lower,
    "vs_vanilla": lambda r: r.vs_vanilla, "seeds": lambda r: r.n_seeds, "dev_acc": lambda r: r.dev_acc,
    "heldout_acc": lambda r: r.heldout_acc, "heldout_pgr": lambda r: r.heldout_pgr,
    "session": lambda r: r.session_id or None}


def _ranking_value(row: Any) -> Any:
    """The one ranking's key; rejected or unscored attempts rank after everything (None)."""
    if not getattr(row, "is_baseline", False) and (row.status != "ok" or row.rejected):
        return None
    return rank_key(row.pgr, row.pgr_ci95)


def place_baselines(rows: Sequence[Any], baselines: list[BaselineRow], sort: Sort, *, before: Any | None,
                    last_page: bool) -> list[Any]:
    """``rows`` (one page, in the table's order) with each baseline where the order puts it.
    ``before`` is the row just before this page (None on the first page): a baseline that sorts
    ahead of it belongs to an earlier page, one that sorts after this page's last row to a later
    page (unless this is the last)."""
    value = _ranking_value if sort.key is None else _VALUES[sort.key]
    descending = True if sort.key is None else sort.descending
    out = list(rows)
    for base in sorted(baselines, key=lambda b: b.name):
        mine = value(base)
        if before is not None and not _goes_before(value(before), mine, descending) \
                and value(before) != mine:
            continue
        spot = next((i for i, r in enumerate(out) if not getattr(r, "is_baseline", False)
                     and _goes_before(mine, value(r), descending)), None)
        if spot is not None:
            out.insert(spot, base)
        elif last_page:
            out.append(base)
    return out


def _goes_before(mine: Any, theirs: Any, descending: bool) -> bool:
    if mine is None:
        return False
    if theirs is None:
        return True
    return mine > theirs if descending else mine < theirs
