"""Looks at the held-out split: each ``aar eval --held-out`` is counted in the lab.

The held-out split is meant to be looked at rarely and knowingly: every look is
``heldout/<time>-<id>.json`` on the lab's ``steering`` branch (a git commit, like the queue),
naming the task, its cache, the idea and who looked, and the leaderboard shows the count.
"""

from __future__ import annotations

import datetime as dt
import secrets

from pydantic import BaseModel, Field

from experiments.gitobjects import identity
from experiments.steering import STEERING_REF, branch_root, publish, read_folder
from experiments.store import LabStore

LOOKS_DIR = "heldout"


class HeldOutLook(BaseModel):
    """One look at held-out figures."""

    task: str = Field(description="Task name.")
    cache_key: str = Field(description="The task cache (its held-out rows) that was looked at.")
    idea: str = Field(description="The idea whose held-out figures were shown.")
    seeds: int = Field(description="Seeds scored.")
    who: str = Field(description="Who looked (the lab's git identity).")
    at: str = Field(description="When (ISO-8601 UTC).")


def record_look(store: LabStore, task: str, cache_key: str, idea: str, seeds: int) -> HeldOutLook:
    """Count one look (a commit on the steering branch)."""
    look = HeldOutLook(
        task=task,
        cache_key=cache_key,
        idea=idea[:200],
        seeds=seeds,
        who=identity(store.repo).name or "unknown",
        at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
    )
    name = f"{LOOKS_DIR}/{look.at.replace(':', '')}-{secrets.token_hex(4)}.json"
    publish(
        store,
        STEERING_REF,
        name,
        look.model_dump_json(indent=1),
        f"held-out look: {look.idea[:60]} on {task}\n\nAar-Kind: heldout-look\n",
    )
    return look


def looks(store: LabStore, task: str | None = None) -> list[HeldOutLook]:
    """The lab's held-out looks, oldest first (only ``task``'s when given)."""
    found = [
        HeldOutLook.model_validate_json(data)
        for name, data in read_folder(store, branch_root(store), LOOKS_DIR)
        if name.endswith(".json")
    ]
    return [x for x in found if task is None or x.task.split("@")[0] == task.split("@")[0]]


__all__ = ["LOOKS_DIR", "HeldOutLook", "looks", "record_look"]
