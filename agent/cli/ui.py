"""``aar ui``: the web dashboard over a lab repository."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import FrameType

import typer

from agent.cli import app
from agent.cli.common import console, fail

TOKEN_ENV = "AAR_UI_TOKEN"


@app.command("ui")
def ui_cmd(
    lab: Path | None = typer.Option(None, "--lab", help="Lab repository (default: $AAR_LAB, else ./aar-lab)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs --token."),
    token: str | None = typer.Option(None, "--token", help=f"Require this token on every request (or ${TOKEN_ENV})."),
) -> None:
    """Serve the dashboard: sessions, timelines, leaderboards, attempts, reviews, forum, live progress."""
    import uvicorn

    from agent.ui import create_app
    from agent.ui.security import TOKEN_PARAM

    token = token or os.environ.get(TOKEN_ENV) or None
    try:
        application = create_app(lab, host=host, token=token)
    except ValueError as exc:
        fail(str(exc))
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?{TOKEN_PARAM}={token}" if token else "")
    console.print(f"aar ui: {url}  (lab {application.state.lab.path}; Ctrl-C stops)", highlight=False,
                  soft_wrap=True)
    config = uvicorn.Config(application, log_level="warning", access_log=False, timeout_graceful_shutdown=5)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            application.state.stopping.set()  # live-event streams end at their next poll
            super().handle_exit(sig, frame)

    Server(config).run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), so the printed address is real."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host")
    sock.set_inheritable(True)
    return sock
