"""Live progress of a running session: server-sent events that poll the session branch's head.

The research loop commits every attempt (and its state files) to ``sessions/<id>``; whenever the
head moves the stream sends ``head`` with the number of attempts and the session status, and the
page reloads itself when either changed. The stream ends (``end``) once the session is no longer
running, or after ``live_max_s`` seconds (the browser's EventSource then reconnects)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agent.ui.lab import Lab, NotFound
from experiments.store import StoreError

HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class HeadState:
    """What the session branch says right now."""

    head: str
    attempts: int
    status: str
    subject: str
    when: str


def head_state(lab: Lab, session_text: str) -> HeadState:
    with lab.open() as store:
        try:
            sid = store.resolve_session(session_text)
        except StoreError as exc:
            raise NotFound(str(exc)) from exc
        head = store.session_heads()[sid]
        commit = store.repo.commit(head)
        return HeadState(head, len(store.attempt_folders(sid, head)), store.manifest(sid).status,
                         commit.summary if isinstance(commit.summary, str) else commit.summary.decode(),
                         commit.committed_datetime.isoformat())


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def stream(request: Request, lab: Lab, session_text: str, known: str | None, poll_s: float,
                 max_s: float) -> AsyncIterator[str]:
    """Events for one subscriber; ``known`` is the head the page was rendered from."""
    started = last_sent = time.monotonic()
    yield f"retry: {int(max(poll_s, 1.0) * 1000)}\n\n"
    while True:
        state = await run_in_threadpool(head_state, lab, session_text)
        if state.head != known:
            known = state.head
            last_sent = time.monotonic()
            yield _event("head", asdict(state))
        if state.status != "running":
            yield _event("end", asdict(state))
            return
        if time.monotonic() - started >= max_s or await request.is_disconnected():
            return
        if time.monotonic() - last_sent >= HEARTBEAT_S:
            last_sent = time.monotonic()
            yield ": still here\n\n"
        await asyncio.sleep(poll_s)


async def session_events(request: Request) -> Response:
    lab: Lab = request.app.state.lab
    session_text = request.path_params["sid"]
    first = await run_in_threadpool(head_state, lab, session_text)  # a missing session is a plain 404
    settings = request.app.state.live
    known = request.query_params.get("head") or first.head
    return StreamingResponse(stream(request, lab, session_text, known, settings["poll_s"], settings["max_s"]),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
