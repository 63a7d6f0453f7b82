"""The dashboard's steering parts: the steer box of a session page and the queue of directions.

Every write (steer, queue add, queue drop) needs the page's CSRF token and a same-origin
request (the Host check and the anti-framing headers are the access middleware's), and every
field is capped in size; the lab refuses empty or oversized text with a one-line message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent.ui.lab import BadRequest, Lab
from agent.ui.security import write_allowed
from experiments.layout import StoreError
from experiments.steering import MAX_TEXT_CHARS, SteerMessage, send_steer, steer_messages
from experiments.store import LabStore

MAX_FIELD_CHARS = {"text": MAX_TEXT_CHARS, "researcher": 16, "task": 300, "csrf": 200}


async def _form(request: Request, what: str) -> dict[str, str]:
    """The posted fields, each within its cap, after the CSRF and origin checks."""
    form = await request.form()
    fields = {k: str(form.get(k, "")).strip() for k in MAX_FIELD_CHARS}
    if not write_allowed(request, fields["csrf"]):
        raise BadRequest(f"the {what} form is stale or came from another site; reload the page and resubmit")
    for key, cap in MAX_FIELD_CHARS.items():
        if len(fields[key]) > cap:
            raise BadRequest(f"the {key} field has {len(fields[key]):,} characters; the limit is {cap:,}")
    return fields


def _write(lab: Lab, action: Any) -> Any:
    with lab.open() as store:
        try:
            return action(store)
        except StoreError as exc:
            raise BadRequest(str(exc)) from exc


def messages_of(lab: Lab, session_id: str) -> list[SteerMessage]:
    """What people sent to a session (for its page's steer box), newest first."""
    with lab.open() as store:
        return list(reversed(steer_messages(store, session_id)))


# -- steer a session -----------------------------------------------------------------------
async def steer_post(request: Request) -> Response:
    fields = await _form(request, "steer")
    sid = request.path_params["sid"]

    def send(store: LabStore) -> str:
        session = store.resolve_session(sid)
        send_steer(store, session, fields["text"], fields["researcher"] or None)
        return session

    session = await run_in_threadpool(_write, request.app.state.lab, send)
    return RedirectResponse(f"/sessions/{quote(session)}?steered=1#steer", status_code=303)


# -- the queue of directions ------------------------------------------------------------------
def queue_page(request: Request) -> Response:
    from experiments.queue import directions

    with request.app.state.lab.open() as store:
        items = directions(store, include_dropped=request.query_params.get("all") == "1")
        sessions = {s.session_id: s for s in store.index.sessions()}
        tasks = list(store.index.tasks())
    state = request.app.state
    return state.templates.TemplateResponse(request, "queue.html", {
        "lab_path": str(state.lab.path), "csrf": state.access.csrf, "items": items, "sessions": sessions,
        "tasks": tasks, "added": request.query_params.get("added"), "dropped": request.query_params.get("dropped"),
        "max_text": MAX_TEXT_CHARS})


async def queue_post(request: Request) -> Response:
    from experiments.queue import add_direction

    fields = await _form(request, "queue")
    added = await run_in_threadpool(_write, request.app.state.lab,
                                    lambda store: add_direction(store, fields["text"], fields["task"] or None))
    return RedirectResponse(f"/queue?added={quote(added.id)}#queue", status_code=303)


async def queue_drop_post(request: Request) -> Response:
    from experiments.queue import drop_direction

    await _form(request, "queue")
    dropped = await run_in_threadpool(_write, request.app.state.lab,
                                      lambda store: drop_direction(store, request.path_params["qid"]))
    return RedirectResponse(f"/queue?dropped={quote(dropped.id)}#queue", status_code=303)
