"""Live progress of a running session: server-sent events that poll the session branch's head.

The research loop commits every attempt (and its state files) to ``sessions/<id>``; whenever the
head moves the stream sends ``head`` with the number of attempts and the session status, and the
page reloads itself when either changed. The stream ends (``end``) once the session is no longer
running, after ``live_max_s`` seconds (the browser's EventSource then reconnects), or when the
server shuts down."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agent.ui.lab import Lab, NotFound
from agent.ui.queries import groups
from experiments.layout import StoreError
from experiments.store import LabStore

HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class HeadState:
    """What the session branch says right now."""

    head: str
    attempts: int
    status: str
    subject: str
    when: str


def live_state(store: LabStore, sessions: list[str]) -> HeadState:
    """One state for one or several session branches (a group changes when any branch moves)."""
    heads = store.session_heads()
    commits = [store.repo.commit(heads[sid]) for sid in sessions]
    latest = max(commits, key=lambda c: c.committed_date)
    statuses = [store.manifest(sid).status for sid in sessions]
    summary = latest.summary if isinstance(latest.summary, str) else latest.summary.decode()
    return HeadState(".".join(heads[sid] for sid in sessions),
                     sum(len(store.attempt_folders(sid, heads[sid])) for sid in sessions),
                     "running" if "running" in statuses else statuses[0], summary,
                     latest.committed_datetime.isoformat())


def head_state(lab: Lab, session_text: str) -> HeadState:
    with lab.open() as store:
        try:
            return live_state(store, [store.resolve_session(session_text)])
        except StoreError as exc:
            raise NotFound(str(exc)) from exc


def group_state(lab: Lab, group: str) -> HeadState:
    with lab.open() as store:
        members = groups(list(store.session_heads())).get(group)
        if not members:
            raise NotFound(f"no researcher sessions {group}-r<k> in this lab")
        return live_state(store, members)


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def stream(request: Request, read: Callable[[], HeadState], known: str | None, poll_s: float,
                 max_s: float) -> AsyncIterator[str]:
    """Events for one subscriber; ``known`` is the head the page was rendered from."""
    started = last_sent = time.monotonic()
    yield f"retry: {int(max(poll_s, 1.0) * 1000)}\n\n"
    while True:
        state = await run_in_threadpool(read)
        if state.head != known:
            known = state.head
            last_sent = time.monotonic()
            yield _event("head", asdict(state))
        if state.status != "running":
            yield _event("end", asdict(state))
            return
        if time.monotonic() - started >= max_s or request.app.state.stopping.is_set() \
                or await request.is_disconnected():
            return
        if time.monotonic() - last_sent >= HEARTBEAT_S:
            last_sent = time.monotonic()
            yield ": still here\n\n"
        await asyncio.sleep(poll_s)


async def _events(request: Request, read: Callable[[], HeadState]) -> Response:
    first = await run_in_threadpool(read)  # a missing session or group is a plain 404
    settings = request.app.state.live
    known = request.query_params.get("head") or first.head
    return StreamingResponse(stream(request, read, known, settings["poll_s"], settings["max_s"]),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def session_events(request: Request) -> Response:
    return await _events(request, partial(head_state, request.app.state.lab, request.path_params["sid"]))


async def group_events(request: Request) -> Response:
    return await _events(request, partial(group_state, request.app.state.lab, request.path_params["group"]))
