"""The dashboard's pages. Every handler opens the lab, reads through the history store and its
index, and renders a server-side template; a missing session or attempt is a 404 page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent.ui import chart
from agent.ui.lab import BadRequest, Lab, NotFound
from agent.ui.live import live_state
from agent.ui.queries import Page, attempt_rows, chart_points, groups, neighbours
from agent.ui.references import references
from agent.ui.render import diff_html, markdown_html, python_html, transcript_views
from agent.ui.workspace_view import workspace_section
from experiments.layout import ATTEMPT_FILES, StoreError, group_of
from experiments.ranking import RULE
from experiments.reviews import add_review
from experiments.schemas import ATTEMPT_STATUSES, AttemptSummary
from experiments.store import LabStore, attempt_files
from experiments.views import LOG_TAIL_LINES, _metric_rows, side_by_side_rows

MAX_NOTE_CHARS = 4000
VERDICTS = ("accept", "reject")


def _render(request: Request, name: str, status: int = 200, **values: Any) -> Response:
    state = request.app.state

    def page_url(number: int) -> str:
        url = request.url.include_query_params(page=number)
        return f"{url.path}?{url.query}"

    base = {"lab_path": str(state.lab.path), "csrf": state.access.csrf, "page_url": page_url, "rank_rule": RULE,
            "statuses_all": ATTEMPT_STATUSES, "q": request.query_params}
    return state.templates.TemplateResponse(request, name, {**base, **values}, status_code=status)


def _lab(request: Request) -> Lab:
    return request.app.state.lab


def _page(request: Request) -> Page:
    return Page.parse(request.query_params.get("page"), request.query_params.get("per"))


def _statuses(request: Request, default: list[str] | None = None) -> list[str] | None:
    values = [v for raw in request.query_params.getlist("status") for v in raw.split(",") if v]
    if "all" in values:
        return None
    bad = [v for v in values if v not in ATTEMPT_STATUSES]
    if bad:
        raise BadRequest(f"unknown status {bad[0]!r}: use {', '.join(ATTEMPT_STATUSES)}")
    return values or default


def _session_id(store: LabStore, text: str) -> str:
    try:
        return store.resolve_session(text)
    except StoreError as exc:
        raise NotFound(str(exc)) from exc


def _find(store: LabStore, text: str) -> AttemptSummary:
    try:
        return store.index.find(text)
    except StoreError as exc:
        raise NotFound(str(exc)) from exc


# -- sessions ------------------------------------------------------------------------------
def sessions_page(request: Request) -> Response:
    page = _page(request)
    with _lab(request).open() as store:
        sessions = store.index.sessions()
        tasks = store.index.tasks()
    shown = sessions[page.offset:page.offset + page.per]
    pages = max(1, -(-len(sessions) // page.per))
    return _render(request, "sessions.html", sessions=shown, total=len(sessions), page=page, pages=pages,
                   tasks=tasks, groups=groups([s.session_id for s in sessions]), group_of=group_of)


def session_page(request: Request) -> Response:
    page = _page(request)
    statuses = _statuses(request)
    with _lab(request).open() as store:
        sid = _session_id(store, request.path_params["sid"])
        manifest = store.manifest(sid)
        rows = attempt_rows(store.index, page, sessions=[sid], statuses=statuses, order="index")
        points = chart_points(store.index, [sid])
        refs = references(manifest, store.index)
        summary = next((s for s in store.index.sessions() if s.session_id == sid), None)
        head = store.repo.commit(store.session_heads()[sid])
    last = {"sha": head.hexsha, "when": head.committed_datetime.isoformat(), "subject": head.summary}
    return _render(request, "session.html", sid=sid, manifest=manifest, rows=rows, statuses=statuses or [],
                   figure=chart.figure(points, refs), refs=refs, summary=summary, last=last,
                   live=manifest.status == "running", attempts_total=len(points), group=group_of(sid))


def group_page(request: Request) -> Response:
    """Parallel researchers (sessions <group>-r<k>): one chart, one table, their findings."""
    page = _page(request)
    statuses = _statuses(request)
    group = request.path_params["group"]
    with _lab(request).open() as store:
        members = groups(list(store.session_heads())).get(group)
        if not members:
            raise NotFound(f"no researcher sessions {group}-r<k> in this lab; see the sessions list")
        summaries = [s for s in store.index.sessions() if s.session_id in members]
        manifest = store.manifest(members[0])
        rows = attempt_rows(store.index, page, sessions=members, statuses=statuses, order="index")
        points = chart_points(store.index, members)
        refs = references(manifest, store.index, sessions=members)
        directions = {sid: store.manifest(sid).direction for sid in members}
        state = live_state(store, members)
    return _render(request, "group.html", group=group, sessions=summaries, directions=directions, rows=rows,
                   statuses=statuses or [], figure=chart.figure(points, refs), refs=refs, manifest=manifest,
                   state=state, live=state.status == "running", attempts_total=len(points))


# -- leaderboard ---------------------------------------------------------------------------
def leaderboard_page(request: Request) -> Response:
    page = _page(request)
    statuses = _statuses(request, ["ok"])
    replays = request.query_params.get("replays") == "1"
    with _lab(request).open() as store:
        tasks = store.index.tasks()
        task = request.query_params.get("task") or next(iter(tasks), None)
        if task is not None and task not in tasks:
            raise NotFound(f"no attempts on task {task!r} in this lab; tasks here: {', '.join(tasks) or 'none'}")
        rows = None if task is None else attempt_rows(
            store.index, page, task=task, statuses=statuses, order="pgr", include_replays=replays)
    return _render(request, "leaderboard.html", tasks=tasks, task=task, rows=rows, statuses=statuses or [],
                   replays=replays)


# -- one attempt ---------------------------------------------------------------------------
def attempt_page(request: Request) -> Response:
    with _lab(request).open() as store:
        summary = _find(store, request.path_params["aid"])
        attempt = store.get_attempt(summary.attempt_id)
        parent = store.parent_of(attempt)
        reviews = store.index.reviews(attempt.attempt_id)
        prev_id, next_id = neighbours(store.index, summary)
        ws = workspace_section(store, summary, store.index.find(prev_id) if prev_id else None,
                               (attempt.extra.get("workspace") or {}).get("entry"))
    diff = None if parent is None else diff_html(parent.code, attempt.code, f"{parent.attempt_id}/idea.py",
                                                  f"{attempt.attempt_id}/idea.py")
    log_lines = attempt.log.rstrip().splitlines()
    return _render(
        request, "attempt.html", a=attempt, s=summary, parent=parent, reviews=reviews, res=attempt.result,
        code=python_html(attempt.code), rationale=markdown_html(attempt.rationale), diff=diff,
        log_tail="\n".join(log_lines[-LOG_TAIL_LINES:]), log_lines=len(log_lines), log_tail_n=LOG_TAIL_LINES, log_full=attempt.log,
        calls=transcript_views(attempt.transcript), files=ATTEMPT_FILES, prev_id=prev_id, next_id=next_id,
        reviewed=request.query_params.get("reviewed"), ws=ws)


def attempt_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ATTEMPT_FILES:
        raise NotFound(f"attempts have no file {name!r}; they have {', '.join(ATTEMPT_FILES)}")
    with _lab(request).open() as store:
        attempt = store.get_attempt(_find(store, request.path_params["aid"]).attempt_id)
    media = "application/json" if name.endswith(".json") else "text/plain"
    return Response(attempt_files(attempt)[name], media_type=f"{media}; charset=utf-8")


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def review_post(request: Request) -> Response:
    form = await request.form()
    if not _same_origin(request) or not request.app.state.access.csrf_ok(str(form.get("csrf", ""))):
        raise BadRequest("the review form is stale or came from another site; reload the attempt page and resubmit")
    verdict = str(form.get("verdict", ""))
    note = str(form.get("note", "")).strip()
    if verdict not in VERDICTS:
        raise BadRequest("choose accept or reject")
    if len(note) > MAX_NOTE_CHARS:
        raise BadRequest(f"the note is {len(note)} characters; keep it under {MAX_NOTE_CHARS}")
    attempt_id = await run_in_threadpool(_review, _lab(request), request.path_params["aid"], verdict, note)
    return RedirectResponse(f"/attempts/{quote(attempt_id)}?reviewed={verdict}#reviews", status_code=303)


def _review(lab: Lab, text: str, verdict: str, note: str) -> str:
    with lab.open() as store:
        summary = _find(store, text)
        add_review(store, summary.attempt_id, verdict, note)  # type: ignore[arg-type]
        return summary.attempt_id


# -- compare -------------------------------------------------------------------------------
def compare_page(request: Request) -> Response:
    ids = [v for v in (request.query_params.get("a"), request.query_params.get("b")) if v]
    ids += [v for v in request.query_params.getlist("id") if v]
    if len(ids) != 2:
        raise BadRequest(f"pick exactly two attempts to compare (got {len(ids)}); tick two rows of a session's table")
    with _lab(request).open() as store:
        a, b = (store.get_attempt(_find(store, text).attempt_id) for text in ids)
    return _render(request, "compare.html", a=a, b=b, metrics=_metric_rows(a, b), rows=side_by_side_rows(a.code, b.code),
                   diff=diff_html(a.code, b.code, f"{a.attempt_id}/idea.py", f"{b.attempt_id}/idea.py"))


# -- findings forum ------------------------------------------------------------------------
def forum_page(request: Request) -> Response:
    page = _page(request)
    prefix = request.query_params.get("session") or None
    with _lab(request).open() as store:
        try:
            from experiments.forum import Forum
        except ImportError:
            posts, available = [], False
        else:
            posts, available = Forum(store).findings(limit=page.offset + page.per + 1, session_prefix=prefix), True
    shown = posts[page.offset:page.offset + page.per]
    return _render(request, "forum.html", posts=shown, page=page, has_next=len(posts) > page.offset + page.per,
                   available=available, prefix=prefix, bodies=[markdown_html(p.body) for p in shown])
