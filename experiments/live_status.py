"""What a running session is doing right now, for the dashboard's live view: the idea being
scored, its step and seeds, since when. Kept beside the lab's git data (``<git dir>/aar-live/
<session>.json``), outside history: it changes every attempt and means nothing once the attempt
is committed. Written atomically by the research process; a missing or unreadable file just
means nothing is in flight."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from sandbox.files import atomic_write

LIVE_DIR = "aar-live"


class Running(BaseModel):
    """The attempt in flight."""

    session_id: str = Field(description="Session id.")
    researcher: str = Field(description="Researcher id.")
    index: int = Field(description="Step number the attempt will get.")
    idea: str = Field(description="The idea's name.")
    seeds: list[int] = Field(description="Seeds it is being scored on.")
    started_at: str = Field(description="ISO UTC time scoring started.")


def _path(git_dir: Path, session_id: str, researcher: str) -> Path:
    return git_dir / LIVE_DIR / f"{session_id}.{researcher}.json"


def publish_running(git_dir: Path, running: Running) -> None:
    """Say that ``running`` is being scored now."""
    path = _path(git_dir, running.session_id, running.researcher)
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, running.model_dump_json())


def clear_running(git_dir: Path, session_id: str, researcher: str) -> None:
    """Nothing is in flight for this researcher any more."""
    _path(git_dir, session_id, researcher).unlink(missing_ok=True)


def read_running(git_dir: Path, session_id: str) -> list[Running]:
    """Attempts in flight in the session (one per researcher at most)."""
    out = []
    for path in sorted((git_dir / LIVE_DIR).glob(f"{session_id}.*.json")):
        try:
            out.append(Running.model_validate(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, ValidationError):
            continue  # being replaced right now, or left by a crashed process: not shown
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
