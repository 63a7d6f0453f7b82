"""Reviews of attempts, kept as git notes on the attempt's commit (``refs/notes/aar-reviews``).

``git log --notes=aar-reviews sessions/<id>`` shows them next to the commits. Each note is JSON:
``{"attempt_id": ..., "reviews": [Review, ...]}``; a new review appends to the list.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import git

from experiments.gitobjects import author_env, identity, note_texts
from experiments.layout import StoreError
from experiments.schemas import Review, Verdict, utc_now

if TYPE_CHECKING:
    from experiments.store import LabStore

NOTES_REF = "refs/notes/aar-reviews"
MAX_NOTE_CHARS = 4000  # the dashboard's form says the same


def _parse(text: str) -> tuple[str | None, list[Review]]:
    try:
        data = json.loads(text)
        return data.get("attempt_id"), [Review.model_validate(r) for r in data.get("reviews", [])]
    except (ValueError, AttributeError):
        return None, []


def _note_text(store: LabStore, commit: str) -> str | None:
    try:
        return store.repo.git.notes("--ref", NOTES_REF, "show", commit)
    except git.GitCommandError:
        return None


def add_review(store: LabStore, attempt_id: str, verdict: Verdict, note: str) -> Review:
    """Append a review to the attempt's note; the reviewer comes from git config (else $USER)."""
    if len(note) > MAX_NOTE_CHARS:
        raise StoreError(f"the review note has {len(note):,} characters; the limit is {MAX_NOTE_CHARS:,}: shorten it")
    row = store.index.find(attempt_id)
    me = identity(store.repo)
    review = Review(verdict=verdict, note=note, reviewer=me.name or "unknown", email=me.email or "",
                    created_at=utc_now())
    env = author_env(me)
    with store.lock():
        text = _note_text(store, row.commit)
        reviews = _parse(text)[1] if text else []
        data = {"attempt_id": row.attempt_id, "reviews": [r.model_dump() for r in [*reviews, review]]}
        with store.repo.git.custom_environment(**env):
            store.objects.locked_git(lambda: store.repo.git.notes(
                "--ref", NOTES_REF, "add", "-f", "-m", json.dumps(data, indent=2), row.commit))
    return review


def read_all_notes(store: LabStore) -> list[tuple[str, str, list[Review]]]:
    """``(commit, attempt_id, reviews)`` for every review note in the lab."""
    if store.objects.ref_sha(NOTES_REF) is None:
        return []
    out = []
    for commit, text in note_texts(store.repo, NOTES_REF, lambda sha: store.objects.read(sha, "blob")):
        attempt_id, reviews = _parse(text)
        if attempt_id and reviews:
            out.append((commit, attempt_id, reviews))
    return out
