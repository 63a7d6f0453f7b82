"""Paginated reads of the lab's query index (the index itself answers whole lists only).

These run against the same SQLite file as ``experiments.index.LabIndex`` and turn rows into the
same ``AttemptSummary`` models, so the dashboard and the CLI always agree on what a row says.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from experiments.index import LabIndex, _summary
from experiments.layout import FIRST_RESEARCHER, group_of
from experiments.schemas import AttemptSummary

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
ORDERS = {
    "index": "a.idx, a.researcher, a.created_at",
    "time": "a.created_at DESC, a.idx DESC",
    "pgr": "a.pgr IS NULL, a.pgr DESC, a.created_at",
}


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


def _where(sessions: list[str] | None, task: str | None, statuses: list[str] | None,
           include_replays: bool) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if sessions is not None:
        clauses.append("a.session_id IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(sessions))
    if task is not None:
        clauses.append("COALESCE(a.task, s.task) = ?")
        args.append(task)
    if statuses:
        clauses.append(f"a.status IN ({','.join('?' * len(statuses))})")
        args.extend(statuses)
    if not include_replays:
        clauses.append("s.proposer != 'replay'")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args


def attempt_rows(index: LabIndex, page: Page, *, sessions: list[str] | None = None, task: str | None = None,
                 statuses: list[str] | None = None, order: str = "index", include_replays: bool = True,
                 scored_only: bool = False) -> Rows:
    """A page of attempts matching the filters, plus the total and per-status counts."""
    index.refresh()
    where, args = _where(sessions, task, statuses, include_replays)
    if scored_only:
        where += (" AND " if where else "WHERE ") + "a.pgr IS NOT NULL"
    base = f"FROM attempts a JOIN sessions s USING(session_id) {where}"
    count_where, count_args = _where(sessions, task, None, include_replays)
    with index._db() as db:
        total = db.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
        rows = db.execute(f"SELECT a.* {base} ORDER BY {ORDERS[order]} LIMIT ? OFFSET ?",
                          [*args, page.per, page.offset]).fetchall()
        ids = [r["attempt_id"] for r in rows]
        latest = {r["attempt_id"]: r for r in db.execute(
            "SELECT attempt_id, verdict, note FROM reviews WHERE attempt_id IN "
            "(SELECT value FROM json_each(?)) ORDER BY attempt_id, seq", (json.dumps(ids),))}
        counts = {r[0]: r[1] for r in db.execute(
            f"SELECT a.status, COUNT(*) FROM attempts a JOIN sessions s USING(session_id) {count_where} "
            "GROUP BY a.status ORDER BY 2 DESC", count_args)}
    return Rows([_summary(r, latest.get(r["attempt_id"])) for r in rows], total, page, counts)


def chart_points(index: LabIndex, sessions: list[str]) -> list[ChartPoint]:
    """Every attempt of the sessions, just the columns the chart needs, in step order."""
    index.refresh()
    with index._db() as db:
        return [ChartPoint(r["attempt_id"], r["idx"], r["researcher"] or FIRST_RESEARCHER, r["name"], r["status"], r["pgr"],
                           r["pgr_ci95"], r["created_at"] or "")
                for r in db.execute(
                    "SELECT attempt_id, idx, researcher, name, status, pgr, pgr_ci95, created_at FROM attempts "
                    "WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY idx, researcher, created_at",
                    (json.dumps(sessions),))]


def vanilla_from_lab(index: LabIndex, sessions: list[str]) -> float | None:
    """Vanilla's dev PGR as the lab knows it: each scored attempt carries its paired difference
    against vanilla on the same seeds, so ``pgr - vs_vanilla`` is vanilla's PGR on those seeds."""
    with index._db() as db:
        values = sorted(r[0] for r in db.execute(
            "SELECT pgr - vs_vanilla FROM attempts WHERE session_id IN (SELECT value FROM json_each(?)) "
            "AND status = 'ok' AND pgr IS NOT NULL AND vs_vanilla IS NOT NULL", (json.dumps(sessions),)))
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
    with index._db() as db:
        found = {r[0]: r[1] for r in db.execute(
            "SELECT idx, attempt_id FROM attempts WHERE session_id = ? AND researcher = ? AND idx IN (?, ?)",
            (row.session_id, row.researcher, row.index - 1, row.index + 1))}
    return found.get(row.index - 1), found.get(row.index + 1)
