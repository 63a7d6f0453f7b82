"""Live progress of a running session: server-sent events that poll the session branch's head.

The research loop commits every attempt (and its state files) to ``sessions/<id>``; whenever the
head moves the stream sends ``head`` with the number of attempts and the session status, and the
page reloads itself when either changed. The stream ends (``end``) once the session is no longer
running, after ``live_max_s`` seconds (the browser's EventSource then reconnects), or when the
server shuts down."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from functools import partial

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agent.ui.lab import Lab, NotFound
from agent.ui.queries import groups
from experiments.layout import StoreError
from experiments.live_status import read_running
from experiments.store import LabStore

HEARTBEAT_S = 15.0
MIN_GAP_S = 1.0


@dataclass(frozen=True)
class HeadState:
    """What the session branch says right now, and what is being scored (``running``: the
    attempts in flight, from experiments/live_status.py; ``typical_s``: the median time between
    the session's attempts, for an estimate of when the one in flight is done)."""

    head: str
    attempts: int
    status: str
    subject: str
    when: str
    running: list[dict] = field(default_factory=list)
    typical_s: float | None = None

    @property
    def key(self) -> str:
        """Changes whenever the page should change: a new commit, or another attempt in flight."""
        return self.head + "|" + ",".join(f"{r['researcher']}:{r['index']}:{r['idea']}" for r in self.running)


def typical_gap_s(created: list[str]) -> float | None:
    """The median time between consecutive attempts (ISO times), or None with fewer than two.
    Gaps under ``MIN_GAP_S`` are left out: attempts recorded in one batch (a replay, an import)
    say nothing about how long scoring takes."""
    times = sorted(dt.datetime.fromisoformat(t) for t in created if t)
    gaps = sorted(g for a, b in zip(times, times[1:], strict=False) if (g := (b - a).total_seconds()) >= MIN_GAP_S)
    return None if not gaps else statistics.median(gaps)


def live_state(store: LabStore, sessions: list[str]) -> HeadState:
    """One state for one or several session branches (a group changes when any branch moves)."""
    heads = store.session_heads()
    commits = [store.repo.commit(heads[sid]) for sid in sessions]
    latest = max(commits, key=lambda c: c.committed_date)
    statuses = [store.manifest(sid).status for sid in sessions]
    summary = latest.summary if isinstance(latest.summary, str) else latest.summary.decode()
    status = "running" if "running" in statuses else statuses[0]
    running = [] if status != "running" else [
        r.model_dump() for sid in sessions for r in read_running(store.git_dir, sid)]
    created = [r["created_at"] for r in store.index.chart_rows(sessions)] if running else []
    return HeadState(".".join(heads[sid] for sid in sessions),
                     sum(len(store.attempt_folders(sid, heads[sid])) for sid in sessions),
                     status, summary, latest.committed_datetime.isoformat(), running, typical_gap_s(created))


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


@dataclass(frozen=True)
class ListState:
    """The sessions list as the index has it: changes when any session commits or changes status."""

    key: str
    sessions: int
    status: str = "running"  # the list never ends its stream; max_s and reconnects bound it


def list_state(lab: Lab) -> ListState:
    with lab.open() as store:
        rows = store.index.sessions()
    return ListState("|".join(f"{s.session_id}:{s.head}:{s.status}" for s in rows), len(rows))


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def stream(request: Request, read: Callable[[], HeadState | ListState], known: str | None, poll_s: float,
                 max_s: float) -> AsyncIterator[str]:
    """Events for one subscriber; ``known`` is the state key (``HeadState.key``) the page was rendered from."""
    started = last_sent = time.monotonic()
    yield f"retry: {int(max(poll_s, 1.0) * 1000)}\n\n"
    while True:
        state = await run_in_threadpool(read)
        if state.key != known:
            known = state.key
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


async def _events(request: Request, read: Callable[[], HeadState | ListState]) -> Response:
    first = await run_in_threadpool(read)  # a missing session or group is a plain 404
    settings = request.app.state.live
    known = request.query_params.get("head") or first.key
    return StreamingResponse(stream(request, read, known, settings["poll_s"], settings["max_s"]),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def session_events(request: Request) -> Response:
    return await _events(request, partial(head_state, request.app.state.lab, request.path_params["sid"]))


async def group_events(request: Request) -> Response:
    return await _events(request, partial(group_state, request.app.state.lab, request.path_params["group"]))


async def sessions_events(request: Request) -> Response:
    """The sessions list's stream: ``head`` whenever a session commits, starts or changes status."""
    return await _events(request, partial(list_state, request.app.state.lab))
