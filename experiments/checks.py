"""End-of-session confirmation and transfer checks, stored on the session branch as ``state/checks.json``:
a confirmation of the top ideas on fresh seeds, and a transfer of the best one to another task."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from experiments.gitobjects import READ_ERRORS
from experiments.store import LabStore

CHECKS_FILE = "checks.json"


class IdeaCheck(BaseModel):
    """One idea re-scored outside the search that found it."""

    attempt_id: str = Field(description="The attempt whose code was re-run.")
    kind: Literal["confirm", "transfer"] = Field(description="Fresh seeds on the same task, or another task.")
    task: str = Field(description="Task identity it was scored on.")
    seeds: list[int] = Field(description="Seeds it ran on (fresh: never seen by the search).")
    status: str = Field(description="ok or the failing status.")
    pgr: float | None = Field(None, description="Mean PGR on dev's selection part (the rows the search chose on).")
    heldout_pgr: float | None = Field(None, description="Mean held-out PGR on those seeds.")
    confirm_pgr: float | None = Field(None, description="Mean PGR on dev's confirmation part (rows the search "
                                                        "never saw scores of) on those seeds.")
    confirm_pgr_values: list[float] | None = Field(None, description="Per-seed confirmation-part PGR, in seed order.")
    search_pgr: float | None = Field(None, description="Its dev PGR during the search, for comparison.")


def save_checks(store: LabStore, session_id: str, checks: list[IdeaCheck]) -> None:
    store.write_session_file(session_id, CHECKS_FILE, json.dumps([c.model_dump() for c in checks], indent=1))


def load_checks(store: LabStore, session_id: str) -> list[IdeaCheck]:
    try:
        text = store.read_session_file(session_id, CHECKS_FILE)
    except READ_ERRORS:  # an unreadable branch has no checks to show (`aar check` reports it)
        return []
    return [IdeaCheck.model_validate(c) for c in json.loads(text)] if text else []


def add_checks(store: LabStore, session_id: str, new: list[IdeaCheck]) -> list[IdeaCheck]:
    """Keep ``new`` beside the session's earlier checks; a check of the same attempt, kind and
    task (e.g. repeated by a resumed run) replaces the earlier one. Returns them all."""
    fresh = {(c.attempt_id, c.kind, c.task) for c in new}
    kept = [c for c in load_checks(store, session_id) if (c.attempt_id, c.kind, c.task) not in fresh]
    save_checks(store, session_id, [*kept, *new])
    return [*kept, *new]
