"""The dashboard's pages. Every handler opens the lab, reads through the history store and its
index, and renders a server-side template; a missing session or attempt is a 404 page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent.ui import chart
from agent.ui.baselines import BaselineRow, place_baselines
from agent.ui.compare import LETTERS, MAX_COMPARED, compare_ids, compare_rows
from agent.ui.findings import finding_html, round_floats
from agent.ui.lab import BadRequest, Lab, NotFound
from agent.ui.live import live_state
from agent.ui.queries import Page, Rows, attempt_rows, chart_points, groups, neighbours
from agent.ui.references import baseline_summary, references
from agent.ui.render import diff_html, markdown_html, python_html, transcript_views
from agent.ui.security import write_allowed
from agent.ui.session_charts import MAX_STRIPS, scatter_html, strips_html
from agent.ui.tables import (
    SESSION_SORTS,
    Sort,
    attempt_order,
    filter_sessions,
    parse_sort,
    search_text,
    sort_sessions,
    sort_url,
)
from agent.ui.workspace_view import workspace_section
from experiments.layout import ATTEMPT_FILES, StoreError, group_of
from experiments.ranking import RULE
from experiments.records import attempt_files
from experiments.reviews import add_review
from experiments.schemas import ATTEMPT_STATUSES, SESSION_STATUSES, AttemptSummary
from experiments.store import LabStore
from experiments.tags import STAR, TAG_PATTERN, parse_tags, set_tags
from experiments.views import LOG_TAIL_LINES, side_by_side_rows
from sandbox.tasks.spec import readable_name

MAX_NOTE_CHARS = 4000
MAX_TAGS_CHARS = 500
VERDICTS = ("accept", "reject")
# The columns each table sorts by (experiments/index.py COLUMN_SORTS; sessions: tables.SESSION_SORTS).
ATTEMPT_COLUMNS = ("step", "name", "researcher", "status", "dev_pgr", "vs_vanilla", "dev_acc", "heldout_acc",
                   "heldout_pgr", "cost", "finished")
LEADERBOARD_COLUMNS = ("name", "dev_pgr", "lower", "vs_vanilla", "seeds", "dev_acc", "heldout_acc", "heldout_pgr",
                       "session")


def _render(request: Request, name: str, status: int = 200, sort: Sort | None = None, **values: Any) -> Response:
    state = request.app.state
    sort = sort or Sort()

    def page_url(number: int) -> str:
        url = request.url.include_query_params(page=number)
        return f"{url.path}?{url.query}"

    base = {"lab_path": str(state.lab.path), "csrf": state.access.csrf, "page_url": page_url, "rank_rule": RULE,
            "statuses_all": ATTEMPT_STATUSES, "q": request.query_params, "sort": sort,
            "sort_url": sort_url(request, sort), "search": request.query_params.get("q", "")}
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
def _tag(request: Request) -> str | None:
    """The ``?tag=`` filter (tables of attempts), checked like a tag being set."""
    text = (request.query_params.get("tag") or "").strip().lower()
    if text and not TAG_PATTERN.fullmatch(text):
        raise BadRequest(f"tag {text[:40]!r} is not a tag: tags are 1-32 of a-z, 0-9, '_', '.', '-'")
    return text or None


def _choice(request: Request, name: str, allowed: list[str] | tuple[str, ...]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in allowed:
        raise BadRequest(f"unknown {name} {value!r}: use one of {', '.join(allowed) or '(none in this lab)'}")
    return value


def sessions_page(request: Request) -> Response:
    page = _page(request)
    sort = parse_sort(request, tuple(SESSION_SORTS))
    with _lab(request).open() as store:
        everything = store.index.sessions()
        tasks = store.index.tasks()
    session_tasks = sorted({s.task for s in everything})
    chosen = {"status": _choice(request, "status", SESSION_STATUSES), "task": _choice(request, "task", session_tasks)}
    sessions = sort_sessions(filter_sessions(everything, text=search_text(request), **chosen), sort)
    shown = sessions[page.offset:page.offset + page.per]
    pages = max(1, -(-len(sessions) // page.per))
    return _render(request, "sessions.html", sort=sort, sessions=shown, total=len(sessions), page=page, pages=pages,
                   tasks=tasks, groups=groups([s.session_id for s in everything]), group_of=group_of,
                   all_total=len(everything), session_tasks=session_tasks, session_statuses=SESSION_STATUSES,
                   chosen=chosen)


def session_page(request: Request) -> Response:
    page = _page(request)
    statuses = _statuses(request)
    sort = parse_sort(request, ATTEMPT_COLUMNS)
    with _lab(request).open() as store:
        sid = _session_id(store, request.path_params["sid"])
        manifest = store.manifest(sid)
        rows = attempt_rows(store.index, page, sessions=[sid], statuses=statuses, order=attempt_order(sort, "index"),
                            search=search_text(request), tag=_tag(request))
        points = chart_points(store.index, [sid])
        refs = references(manifest, store.index)
        strips = strips_html(store, points)
        summary = next((s for s in store.index.sessions() if s.session_id == sid), None)
        head = store.repo.commit(store.session_heads()[sid])
        state = live_state(store, [sid])
    last = {"sha": head.hexsha, "when": head.committed_datetime.isoformat(), "subject": head.summary}
    return _render(request, "session.html", sort=sort, sid=sid, manifest=manifest, rows=rows, statuses=statuses or [],
                   figure=chart.figure(points, refs), refs=refs, summary=summary, last=last,
                   live=manifest.status == "running", attempts_total=len(points), group=group_of(sid),
                   scatter=scatter_html(points), strips=strips, max_strips=MAX_STRIPS, state=state)


def group_page(request: Request) -> Response:
    """Parallel researchers (sessions <group>-r<k>): one chart, one table, their findings."""
    page = _page(request)
    statuses = _statuses(request)
    group = request.path_params["group"]
    sort = parse_sort(request, (*ATTEMPT_COLUMNS, "session"))
    with _lab(request).open() as store:
        members = groups(list(store.session_heads())).get(group)
        if not members:
            raise NotFound(f"no researcher sessions {group}-r<k> in this lab; see the sessions list")
        summaries = [s for s in store.index.sessions() if s.session_id in members]
        manifest = store.manifest(members[0])
        rows = attempt_rows(store.index, page, sessions=members, statuses=statuses,
                            order=attempt_order(sort, "index"), search=search_text(request), tag=_tag(request))
        points = chart_points(store.index, members)
        refs = references(manifest, store.index, sessions=members)
        directions = {sid: store.manifest(sid).direction for sid in members}
        state = live_state(store, members)
    return _render(request, "group.html", sort=sort, group=group, sessions=summaries, directions=directions, rows=rows,
                   statuses=statuses or [], figure=chart.figure(points, refs), refs=refs, manifest=manifest,
                   state=state, live=state.status == "running", attempts_total=len(points))


# -- leaderboard ---------------------------------------------------------------------------
def _baselines(store: LabStore, task: str, rows: Rows, search: str | None) -> list[BaselineRow]:
    """The built-in baselines of the task's newest session (its cache and seeds)."""
    sessions = [s for s in store.index.sessions() if s.task == task or readable_name(task) == s.task]
    sid = sessions[0].session_id if sessions else (rows.rows[0].session_id if rows.rows else None)
    if sid is None:
        return []
    found, where = baseline_summary(store.manifest(sid))
    out = [BaselineRow.from_summary(r, where) for r in found]
    return [b for b in out if not search or search.lower() in b.name.lower()]


def leaderboard_page(request: Request) -> Response:
    page = _page(request)
    statuses = _statuses(request, ["ok"])
    replays = request.query_params.get("replays") == "1"
    sort = parse_sort(request, LEADERBOARD_COLUMNS)
    search = search_text(request)
    show_baselines = request.query_params.get("baselines") != "0"
    with _lab(request).open() as store:
        tasks = store.index.tasks()
        task = request.query_params.get("task") or next(iter(tasks), None)
        if task is not None and task not in tasks:
            raise NotFound(f"no attempts on task {task!r} in this lab; tasks here: {', '.join(tasks) or 'none'}")
        rows = None if task is None else attempt_rows(
            store.index, page, task=task, statuses=statuses, order=attempt_order(sort, "pgr"),
            include_replays=replays, search=search, tag=_tag(request))
        wanted = task is not None and rows is not None and show_baselines and not _tag(request)
        baselines = _baselines(store, task, rows, search) if wanted and task and rows else []
        previous = [] if not baselines or page.offset == 0 else store.index.page(
            page.offset - 1, 1, task=task, statuses=statuses, order=attempt_order(sort, "pgr"),
            include_replays=replays, search=search, tag=_tag(request))[0]
    before = previous[0] if previous else None
    entries = None if rows is None else place_baselines(rows.rows, baselines, sort, before=before,
                                                        last_page=rows.page.number >= rows.pages)
    return _render(request, "leaderboard.html", sort=sort, tasks=tasks, task=task, rows=rows, statuses=statuses or [],
                   replays=replays, entries=entries, baselines=baselines, show_baselines=show_baselines)


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
        log_tail="\n".join(log_lines[-LOG_TAIL_LINES:]), log_lines=len(log_lines), log_tail_n=LOG_TAIL_LINES,
        log_full=attempt.log,
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


async def tags_post(request: Request) -> Response:
    """Set the attempt's tags (``tags``: comma-separated), or star/unstar it (``star``: 1 or 0)."""
    form = await request.form()
    if not write_allowed(request, str(form.get("csrf", ""))):
        raise BadRequest("the tags form is stale or came from another site; reload the attempt page and resubmit")
    star = form.get("star")
    text = None if star is not None else str(form.get("tags", ""))
    if text is not None and len(text) > MAX_TAGS_CHARS:
        raise BadRequest(f"the tags are {len(text)} characters; keep them under {MAX_TAGS_CHARS}")
    try:
        tags = None if text is None else parse_tags(text)
    except StoreError as exc:
        raise BadRequest(str(exc)) from exc
    attempt_id = await run_in_threadpool(_tag_attempt, _lab(request), request.path_params["aid"], tags,
                                         None if star is None else str(star) == "1")
    return RedirectResponse(f"/attempts/{quote(attempt_id)}?tagged=1#tags", status_code=303)


def _tag_attempt(lab: Lab, text: str, given: list[str] | None, star: bool | None) -> str:
    """Set the tags ``given`` (the star kept as it was), or only star or unstar."""
    with lab.open() as store:
        summary = _find(store, text)
        if star is None:
            keep = [STAR] if STAR in summary.tags else []
            tags = keep + [t for t in given or [] if t != STAR]
        else:
            tags = ([STAR] if star else []) + [t for t in summary.tags if t != STAR]
        set_tags(store, summary.attempt_id, tags)
        return summary.attempt_id


# -- compare -------------------------------------------------------------------------------
def compare_page(request: Request) -> Response:
    params = request.query_params
    ids = compare_ids([v for v in (params.get("a"), params.get("b")) if v] + params.getlist("id")
                      + params.getlist("ids"))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise BadRequest(f"pick two to {MAX_COMPARED} attempts to compare (got {len(ids)}): tick rows of a "
                         "session's table, or pass ?ids=<id>,<id>,...")
    with _lab(request).open() as store:
        attempts = [store.get_attempt(_find(store, text).attempt_id) for text in ids]
    a, b = attempts[0], attempts[1]
    diffs = [(other, diff_html(a.code, other.code, f"{a.attempt_id}/idea.py", f"{other.attempt_id}/idea.py"))
             for other in attempts[1:]]
    return _render(request, "compare.html", attempts=attempts, letters=LETTERS, metrics=compare_rows(attempts),
                   a=a, b=b, rows=side_by_side_rows(a.code, b.code) if len(attempts) == 2 else [],
                   diff=diffs[0][1], diffs=diffs)


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
                   available=available, prefix=prefix, bodies=[finding_html(p.body) for p in shown],
                   titles=[round_floats(p.title) for p in shown])
