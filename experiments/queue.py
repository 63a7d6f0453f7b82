"""The queue of research directions people add (CLI or dashboard) and idle researchers take.

Each direction is ``queue/<id>.json`` on the lab's ``steering`` branch; taking one is a
compare-and-swap of that branch, so two researchers never take the same direction.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Literal

from pydantic import BaseModel, Field

from experiments.gitobjects import identity
from experiments.layout import StoreError
from experiments.steering import STEERING_REF, branch_root, clean_text, read_folder, update
from experiments.store import LabStore

QUEUE_DIR = "queue"
QueueStatus = Literal["open", "taken", "dropped"]


class QueuedDirection(BaseModel):
    """One direction in the queue and who took it."""

    id: str = Field(description="Short random id.")
    text: str = Field(description="The direction, in a person's words.")
    task: str | None = Field(None, description="Only for sessions on this task (None: any task).")
    author: str = Field(description="Who added it.")
    created_at: str = Field(description="When it was added (ISO-8601 UTC).")
    status: QueueStatus = Field("open", description="open, taken (by a session) or dropped.")
    session_id: str | None = Field(None, description="The session that took it.")
    taken_at: str | None = Field(None, description="When it was taken.")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _path(direction: QueuedDirection) -> str:
    return f"{QUEUE_DIR}/{direction.created_at.replace(':', '')}-{direction.id}.json"


def _entries(store: LabStore, root: bytes | None) -> list[QueuedDirection]:
    return [QueuedDirection.model_validate_json(data) for name, data in read_folder(store, root, QUEUE_DIR)
            if name.endswith(".json")]


def directions(store: LabStore, include_dropped: bool = False) -> list[QueuedDirection]:
    """The queue, oldest first."""
    return [d for d in _entries(store, branch_root(store)) if include_dropped or d.status != "dropped"]


def add_direction(store: LabStore, text: str, task: str | None = None) -> QueuedDirection:
    """Add a direction at the end of the queue."""
    me = identity(store.repo)
    direction = QueuedDirection(id=secrets.token_hex(4), text=clean_text(text, "direction"), task=task or None,
                                author=me.name or "unknown", created_at=_now())
    update(store, STEERING_REF, f"queue: add {direction.text[:60]}\n\nAar-Kind: queue\n",
           lambda _root: {_path(direction): direction.model_dump_json(indent=1)})
    return direction


def _find(entries: list[QueuedDirection], text: str) -> QueuedDirection:
    hits = [d for d in entries if d.id.startswith(text)]
    if len(hits) != 1:
        raise StoreError(f"no queued direction {text!r}; list them with `aar queue list`" if not hits
                         else f"direction prefix {text!r} is ambiguous; give more characters")
    return hits[0]


def drop_direction(store: LabStore, text: str) -> QueuedDirection:
    """Drop an open direction (one already taken stays: its session is history)."""
    dropped: list[QueuedDirection] = []

    def change(root: bytes | None) -> dict[str, str]:
        found = _find(_entries(store, root), text)
        if found.status != "open":
            raise StoreError(f"direction {found.id} is {found.status}"
                             + (f" by {found.session_id}" if found.session_id else "")
                             + "; only open ones can be dropped")
        dropped[:] = [found.model_copy(update={"status": "dropped"})]
        return {_path(found): dropped[0].model_dump_json(indent=1)}

    update(store, STEERING_REF, f"queue: drop {text}\n\nAar-Kind: queue\n", change)
    return dropped[0]


def take_next(store: LabStore, session_id: str, task: str) -> QueuedDirection | None:
    """Mark the oldest open direction for ``task`` (or any task) taken by ``session_id``; None
    when the queue has none left."""
    taken: list[QueuedDirection] = []

    def change(root: bytes | None) -> dict[str, str] | None:
        for d in _entries(store, root):
            if d.status == "open" and d.task in (None, task):
                taken[:] = [d.model_copy(update={"status": "taken", "session_id": session_id, "taken_at": _now()})]
                return {_path(d): taken[0].model_dump_json(indent=1)}
        taken.clear()
        return None

    update(store, STEERING_REF, f"queue: {session_id} takes a direction\n\nAar-Kind: queue\n", change)
    return taken[0] if taken else None


def as_json(items: list[QueuedDirection]) -> str:
    return json.dumps([d.model_dump() for d in items], indent=2)


__all__ = ["QUEUE_DIR", "QueuedDirection", "add_direction", "as_json", "directions", "drop_direction", "take_next"]
