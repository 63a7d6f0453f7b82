"""Stars and tags on attempts, kept as git notes on the attempt's commit (``refs/notes/aar-tags``),
like reviews (experiments/reviews.py): ``git log --notes=aar-tags sessions/<id>`` shows them.
Each note is JSON ``{"attempt_id": ..., "tags": [...]}``; setting tags replaces the list. A star
is the tag ``star``."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import git

from experiments.gitobjects import author_env, identity, note_texts
from experiments.layout import StoreError

if TYPE_CHECKING:
    from experiments.store import LabStore

TAGS_REF = "refs/notes/aar-tags"
STAR = "star"
MAX_TAGS = 12
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


def parse_tags(text: str) -> list[str]:
    """Tags from a comma- or space-separated text, lower-cased, in order, without repeats; a
    StoreError names a tag that is not 1-32 of a-z, 0-9, ``_ . -`` (starting with a letter or digit)."""
    out: list[str] = []
    for raw in re.split(r"[,\s]+", text.strip().lower()):
        if not raw:
            continue
        if not TAG_PATTERN.fullmatch(raw):
            raise StoreError(f"tag {raw[:40]!r} is not allowed: use 1-32 of a-z, 0-9, '_', '.', '-', "
                             "starting with a letter or digit")
        if raw not in out:
            out.append(raw)
    if len([t for t in out if t != STAR]) > MAX_TAGS:  # the star does not count
        raise StoreError(f"{len(out)} tags given; keep at most {MAX_TAGS}")
    return out


def _parse(text: str) -> tuple[str | None, list[str]]:
    try:
        data = json.loads(text)
        return data.get("attempt_id"), [str(t) for t in data.get("tags", []) if TAG_PATTERN.fullmatch(str(t))]
    except (ValueError, AttributeError):
        return None, []


def set_tags(store: LabStore, attempt_id: str, tags: list[str]) -> list[str]:
    """Replace the attempt's tags (an empty list removes them); returns what was stored."""
    tags = parse_tags(",".join(tags))
    row = store.index.find(attempt_id)
    env = author_env(identity(store.repo))
    with store.lock(), store.repo.git.custom_environment(**env):
        if tags:
            data = json.dumps({"attempt_id": row.attempt_id, "tags": tags}, indent=1)
            store.objects.locked_git(lambda: store.repo.git.notes("--ref", TAGS_REF, "add", "-f", "-m", data,
                                                                  row.commit))
        else:
            try:
                store.objects.locked_git(lambda: store.repo.git.notes("--ref", TAGS_REF, "remove", row.commit))
            except git.GitCommandError:
                pass  # had no tags
    return tags


def read_all_tags(store: LabStore) -> list[tuple[str, list[str]]]:
    """``(attempt_id, tags)`` for every tagged attempt in the lab."""
    if store.objects.ref_sha(TAGS_REF) is None:
        return []
    out = []
    for _commit, text in note_texts(store.repo, TAGS_REF, lambda sha: store.objects.read(sha, "blob")):
        attempt_id, tags = _parse(text)
        if attempt_id and tags:
            out.append((attempt_id, tags))
    return out
