"""Sortable, filterable tables: the sort and filter state lives in the URL's query string, so a
filtered view is a permalink. Sorting is done by the server (the index's SQL for attempts, here
for the short sessions list); column headers are links that toggle the order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from agent.ui.lab import BadRequest
from experiments.index import COLUMN_SORTS
from experiments.schemas import SessionSummary

MAX_SEARCH_CHARS = 200
# Columns whose first click sorts largest first (scores, counts, money, time).
DESCENDING_FIRST = {"dev_pgr", "lower", "vs_vanilla", "dev_acc", "heldout_acc", "heldout_pgr", "seeds", "cost",
                    "finished", "attempts", "ok", "best", "started"}
# The sessions list sorts in Python: ``key -> value of a row`` (None sorts last either way).
SESSION_SORTS: dict[str, Callable[[SessionSummary], Any]] = {
    "session": lambda s: s.session_id, "task": lambda s: s.task, "proposer": lambda s: s.proposer,
    "attempts": lambda s: s.attempts, "ok": lambda s: s.ok, "best": lambda s: s.best_lower,
    "cost": lambda s: s.cost_usd, "status": lambda s: s.status, "started": lambda s: s.created_at}


@dataclass(frozen=True)
class Sort:
    """A table's order as the URL says it: ``?sort=key`` ascending, ``?sort=-key`` descending;
    ``key`` None means the table's own default order (its ranking or step order)."""

    key: str | None = None
    descending: bool = False

    @property
    def param(self) -> str:
        return "" if self.key is None else ("-" if self.descending else "") + self.key

    def toggled(self, key: str) -> Sort:
        """The order a click on column ``key``'s header asks for."""
        if key == self.key:
            return Sort(key, not self.descending)
        return Sort(key, key in DESCENDING_FIRST)

    def arrow(self, key: str) -> str:
        return "" if key != self.key else (" ▼" if self.descending else " ▲")

    def aria(self, key: str) -> str:
        return "none" if key != self.key else ("descending" if self.descending else "ascending")


def parse_sort(request: Request, allowed: Sequence[str]) -> Sort:
    """The ``sort`` query parameter, checked against the table's columns (a 400 page otherwise)."""
    text = (request.query_params.get("sort") or "").strip()
    if not text:
        return Sort()
    key = text.removeprefix("-")
    if key not in allowed:
        raise BadRequest(f"cannot sort this table by {key!r}: use one of {', '.join(allowed)} "
                         "(a leading '-' sorts descending), or click a column header")
    return Sort(key, text.startswith("-"))


def attempt_order(sort: Sort, default: str) -> str:
    """The index order (experiments/index.py ``order_sql``) of a table of attempts."""
    return default if sort.key is None else sort.param


def search_text(request: Request) -> str | None:
    """The free-text filter ``?q=``, trimmed; too long a text is a 400 page."""
    text = (request.query_params.get("q") or "").strip()
    if len(text) > MAX_SEARCH_CHARS:
        raise BadRequest(f"the search text is {len(text)} characters; keep it under {MAX_SEARCH_CHARS}")
    return text or None


def sort_sessions(sessions: list[SessionSummary], sort: Sort) -> list[SessionSummary]:
    """The sessions in the asked order (newest first by default); empty values last either way."""
    if sort.key is None:
        return sessions
    value = SESSION_SORTS[sort.key]
    present = [s for s in sessions if value(s) is not None]
    missing = [s for s in sessions if value(s) is None]
    return sorted(present, key=value, reverse=sort.descending) + missing


def filter_sessions(sessions: list[SessionSummary], *, status: str | None, task: str | None,
                    text: str | None) -> list[SessionSummary]:
    """Sessions with that status and task whose id, task, proposer or model contain ``text``."""
    needle = (text or "").lower()
    return [s for s in sessions if (status is None or s.status == status) and (task is None or s.task == task)
            and (not needle or needle in " ".join([s.session_id, s.task, s.proposer, s.model or ""]).lower())]


def sort_url(request: Request, sort: Sort) -> Callable[[str], str]:
    """``key -> the URL of this page sorted by key`` (other filters kept, back to page 1)."""
    def url(key: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("sort", "page")]
        params.append(("sort", sort.toggled(key).param))
        return f"{request.url.path}?{urlencode(params)}"
    return url


__all__ = ["COLUMN_SORTS", "SESSION_SORTS", "Sort", "attempt_order", "filter_sessions", "parse_sort",
           "search_text", "sort_sessions", "sort_url"]
