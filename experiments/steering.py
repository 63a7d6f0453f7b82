"""Humans steer running researchers: messages to a session, and what reaches a researcher at its
next turn (its inbox: reviews of its attempts and messages sent to it).

Messages live on the lab's ``steering`` branch, one commit per message adding
``messages/<created>-<id>.json`` (published like forum posts), so any process (the CLI, the
dashboard, another machine sharing the lab) can write them while the session runs; the loop
reads the inbox between turns (agent/loop.py). Reviews stay git notes (experiments/reviews.py).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from experiments.gitobjects import BLOB_MODE, RefConflict, identity
from experiments.layout import StoreError
from experiments.store import LabStore

STEERING_REF = "refs/heads/steering"
MAX_TEXT_CHARS = 4000
RETRIES = 5


class SteerMessage(BaseModel):
    """A message a person sent to a running (or resumable) session."""

    id: str = Field(description="Short random id of the message.")
    session_id: str = Field(description="The session it is for.")
    researcher: str | None = Field(None, description="Only this researcher of the session (None: any).")
    text: str = Field(description="What the person said.")
    author: str = Field(description="Who sent it (git config user.name, else $USER).")
    created_at: str = Field(description="When it was sent (ISO-8601 UTC).")


class Delivery(BaseModel):
    """One item of a researcher's inbox, as delivered (and recorded in its transcript)."""

    id: str = Field(description="Stable id: 'steer:<message id>' or 'review:<attempt id>:<n-th review of it>'.")
    kind: Literal["steer", "review"] = Field(description="A steer message or a review of an attempt.")
    text: str = Field(description="The message, or the review's note.")
    author: str = Field(description="Who sent it or reviewed.")
    created_at: str = Field(description="When it was written.")
    attempt_id: str | None = Field(None, description="The reviewed attempt (reviews only).")
    verdict: str | None = Field(None, description="accept or reject (reviews only).")


def update(store: LabStore, ref: str, message: str,
           change: Callable[[bytes | None], dict[str, str] | None]) -> bool:
    """Commit what ``change`` decides (``path -> content``, from the ref's current tree; None:
    nothing) and move the ref by compare-and-swap under the lab lock, deciding again when another
    writer moved it first. Returns whether anything was written."""
    objects = store.objects
    for attempt_no in range(RETRIES):
        with store.lock():
            head = objects.ref_sha(ref)
            root = objects.commit_tree(head) if head else None
            files = change(root)
            if not files:
                return False
            tree = root
            for path, content in files.items():
                tree = objects.put(tree, path, (objects.blob(content), BLOB_MODE))
            assert tree is not None
            me = identity(store.repo)
            sha = objects.commit(tree, [head] if head else [], message, me, me)
            try:
                objects.update_ref(ref, sha, head, message.splitlines()[0])
                return True
            except RefConflict:
                if attempt_no == RETRIES - 1:
                    raise
    raise AssertionError("unreachable")


def publish(store: LabStore, ref: str, path: str, content: str, message: str) -> None:
    """Commit ``content`` at ``path`` on ``ref`` (a new file: a post, a message)."""
    update(store, ref, message, lambda _root: {path: content})


def read_folder(store: LabStore, root: bytes | None, folder: str) -> list[tuple[str, bytes]]:
    """``(name, content)`` of the files in ``folder`` of a tree, sorted by name."""
    objects = store.objects
    entry = objects.lookup(root, folder) if root is not None else None
    if entry is None:
        return []
    return [(name, objects.read(sha, "blob")) for name, (sha, _mode) in sorted(objects.read_tree(entry[0]).items())]


def branch_root(store: LabStore) -> bytes | None:
    """The steering branch's current tree (None before anything was written)."""
    head = store.objects.ref_sha(STEERING_REF)
    return store.objects.commit_tree(head) if head else None


def clean_text(text: str, what: str = "message") -> str:
    """The text stripped; refused when empty or longer than ``MAX_TEXT_CHARS``."""
    text = text.strip()
    if not text:
        raise StoreError(f"the {what} is empty: say what the researcher should know")
    if len(text) > MAX_TEXT_CHARS:
        raise StoreError(f"the {what} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}: shorten it")
    return text


def send_steer(store: LabStore, session_id: str, text: str, researcher: str | None = None) -> SteerMessage:
    """Send ``text`` to ``session_id`` (its researcher ``researcher`` only, when given)."""
    now = dt.datetime.now(dt.UTC)
    me = identity(store.repo)
    msg = SteerMessage(id=secrets.token_hex(4), session_id=session_id, researcher=researcher,
                       text=clean_text(text), author=me.name or "unknown", created_at=now.isoformat(timespec="seconds"))
    publish(store, STEERING_REF, f"messages/{now.strftime('%Y%m%dT%H%M%S%f')}-{msg.id}.json",
            msg.model_dump_json(indent=1), f"steer {session_id}: {msg.text[:60]}\n\nAar-Kind: steer\n"
            f"Aar-Session: {session_id}\n")
    return msg


def steer_messages(store: LabStore, session_id: str | None = None) -> list[SteerMessage]:
    """Messages sent (to ``session_id``), oldest first."""
    out = [SteerMessage.model_validate_json(data) for name, data in read_folder(store, branch_root(store), "messages")
           if name.endswith(".json")]
    return [m for m in out if session_id is None or m.session_id == session_id]


def inbox(store: LabStore, session_id: str, researcher: str) -> list[Delivery]:
    """Everything a researcher should hear about, oldest first: the reviews of its session's
    attempts and the messages sent to it. The loop keeps what it delivered; this is all of it."""
    items = [Delivery(id=f"review:{aid}:{seq}", kind="review", text=r.note, author=r.reviewer,
                      created_at=r.created_at, attempt_id=aid, verdict=r.verdict)
             for aid, seq, r in store.index.session_reviews(session_id)]
    items += [Delivery(id=f"steer:{m.id}", kind="steer", text=m.text, author=m.author, created_at=m.created_at)
              for m in steer_messages(store, session_id) if m.researcher in (None, researcher)]
    return sorted(items, key=lambda d: d.created_at)


__all__ = ["MAX_TEXT_CHARS", "STEERING_REF", "Delivery", "SteerMessage", "branch_root", "clean_text", "inbox",
           "publish", "read_folder", "send_steer", "steer_messages", "update"]
