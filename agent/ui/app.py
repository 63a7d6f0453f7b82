"""The dashboard application: Starlette routes, Jinja2 templates, static files, error pages."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import jinja2
import plotly
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agent.ui import live, routes, steering, workspace_view
from agent.ui.lab import Lab, PageError
from agent.ui.render import pygments_css
from agent.ui.security import Access, AccessMiddleware
from experiments.views import num, pgr_ci, vs_text

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
log = logging.getLogger("aar.ui")


def _when(iso: str | None) -> str:
    return (iso or "").replace("T", " ")[:19] or "—"


def templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=num, pgr_ci=pgr_ci, vs_text=vs_text, when=_when)
    return Jinja2Templates(env=env)


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return _error_page(request, exc.status, exc.title, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = "not found" if exc.status_code == 404 else f"error {exc.status_code}"
    message = "no such page; start from the sessions list" if exc.status_code == 404 else str(exc.detail)
    return _error_page(request, exc.status_code, title, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    lab = request.app.state.lab.path
    return _error_page(request, 500, "unexpected error",
                       f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]} (details in the server log); "
                       f"if it persists, run `aar check --lab {lab}`")


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "title": title, "message": message,
                                "lab_path": str(request.app.state.lab.path)}, status_code=status)


def _plotly_js(_: Request) -> Response:
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def _pygments_css(_: Request) -> Response:
    return Response(pygments_css(), media_type="text/css", headers={"Cache-Control": "max-age=86400"})


def create_app(lab: Path | str | None = None, *, host: str = "127.0.0.1", token: str | None = None,
               live_poll_s: float = 2.0, live_max_s: float = 300.0) -> Starlette:
    """The dashboard for the lab at ``lab`` (default: $AAR_LAB, else ./aar-lab).

    ``host`` is where the server binds; anything but loopback needs ``token``, which every
    request must then carry."""
    access = Access(host=host, token=token)
    app = Starlette(
        routes=[
            Route("/", routes.sessions_page, name="sessions"),
            Route("/sessions/{sid}", routes.session_page, name="session"),
            Route("/events/sessions", live.sessions_events, name="sessions_events"),
            Route("/sessions/{sid}/events", live.session_events, name="session_events"),
            Route("/groups/{group}", routes.group_page, name="group"),
            Route("/groups/{group}/events", live.group_events, name="group_events"),
            Route("/leaderboard", routes.leaderboard_page, name="leaderboard"),
            Route("/attempts/{aid}", routes.attempt_page, name="attempt"),
            Route("/attempts/{aid}/review", routes.review_post, methods=["POST"], name="review"),
            Route("/attempts/{aid}/tags", routes.tags_post, methods=["POST"], name="tags"),
            Route("/attempts/{aid}/files/{name}", routes.attempt_file, name="attempt_file"),
            *workspace_view.ROUTES,
            Route("/compare", routes.compare_page, name="compare"),
            Route("/sessions/{sid}/steer", steering.steer_post, methods=["POST"], name="steer"),
            Route("/queue", steering.queue_page, name="queue"),
            Route("/queue", steering.queue_post, methods=["POST"], name="queue_add"),
            Route("/queue/{qid}/drop", steering.queue_drop_post, methods=["POST"], name="queue_drop"),
            Route("/forum", routes.forum_page, name="forum"),
            Route("/static/plotly.min.js", _plotly_js),
            Route("/static/pygments.css", _pygments_css),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(AccessMiddleware, access=access), Middleware(GZipMiddleware, minimum_size=1024)],
        exception_handlers={PageError: _page_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.lab = Lab(lab)
    app.state.access = access
    app.state.templates = templates()
    # the session page's steer box lists what was sent (read when the page renders)
    app.state.templates.env.globals["steer_messages_of"] = lambda sid: steering.messages_of(app.state.lab, sid)
    app.state.live = {"poll_s": live_poll_s, "max_s": live_max_s}
    app.state.stopping = threading.Event()  # set when the server shuts down
    return app

