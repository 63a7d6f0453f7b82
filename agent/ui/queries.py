"""Paginated reads of the lab's query index (the index itself answers whole lists only).

They go through ``LabIndex``'s public query API (its one filter builder and the one ranking of
``experiments/ranking.py``), so the dashboard and the CLI always agree on what a row says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from experiments.index import LabIndex
from experiments.layout import FIRST_RESEARCHER, group_of
from experiments.schemas import AttemptSummary

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class Page:
    """Which slice of a long list to show."""

    number: int = 1
    per: int = DEFAULT_PER_PAGE

    @classmethod
    def parse(cls, number: str | None, per: str | None) -> Page:
        def to_int(text: str | None, default: int) -> int:
            try:
                return int(text) if text else default
            except ValueError:
                return default

        return cls(max(1, to_int(number, 1)), min(MAX_PER_PAGE, max(1, to_int(per, DEFAULT_PER_PAGE))))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.per


@dataclass
class Rows:
    """One page of attempt rows and how many match in all."""

    rows: list[AttemptSummary]
    total: int
    page: Page
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page.per))

    @property
    def first_rank(self) -> int:
        return self.page.offset + 1


@dataclass(frozen=True)
class ChartPoint:
    """One attempt on the PGR-over-attempts chart."""

    attempt_id: str
    index: int
    researcher: str
    name: str
    status: str
    pgr: float | None
    ci95: float | None
    created_at: str
    heldout_pgr: float | None = None
    rejected: bool = False  # latest review rejects it: drawn, never the best


def attempt_rows(index: LabIndex, page: Page, *, sessions: list[str] | None = None, task: str | None = None,
                 statuses: list[str] | None = None, order: str = "index", include_replays: bool = True,
                 scored_only: bool = False, search: str | None = None, tag: str | None = None) -> Rows:
    """A page of attempts matching the filters, plus the total and per-status counts."""
    rows, total, counts = index.page(page.offset, page.per, sessions=sessions, task=task, statuses=statuses,
                                     order=order, include_replays=include_replays, scored_only=scored_only,
                                     search=search, tag=tag)
    return Rows(rows, total, page, counts)


def chart_points(index: LabIndex, sessions: list[str]) -> list[ChartPoint]:
    """Every attempt of the sessions, just the columns the chart needs, in step order."""
    return [ChartPoint(r["attempt_id"], r["idx"], r["researcher"] or FIRST_RESEARCHER, r["name"], r["status"],
                       r["pgr"], r["pgr_ci95"], r["created_at"] or "", r["heldout_pgr"], bool(r["rejected"]))
            for r in index.chart_rows(sessions)]


def vanilla_from_lab(index: LabIndex, sessions: list[str]) -> float | None:
    """Vanilla's dev PGR as the lab knows it: each scored attempt carries its paired difference
    against vanilla on the same seeds, so ``pgr - vs_vanilla`` is vanilla's PGR on those seeds."""
    values = index.vanilla_pgrs(sessions)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def groups(session_ids: list[str]) -> dict[str, list[str]]:
    """``group -> its sessions`` for every group in the lab."""
    out: dict[str, list[str]] = {}
    for sid in session_ids:
        group = group_of(sid)
        if group is not None:
            out.setdefault(group, []).append(sid)
    return {g: sorted(members) for g, members in out.items()}


def neighbours(index: LabIndex, row: AttemptSummary) -> tuple[str | None, str | None]:
    """Ids of the same researcher's previous and next attempt in the session."""
    return index.neighbours(row)
