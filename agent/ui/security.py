"""Who may talk to the dashboard: loopback by default; a token on every request when bound
elsewhere (or when one is given); same-origin form posts with a per-server CSRF token."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "aar_ui_token"
TOKEN_PARAM = "token"
LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Access:
    """The access rules of one running dashboard."""

    host: str = "127.0.0.1"
    token: str | None = None
    csrf: str = field(default_factory=new_token)

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ValueError(f"binding {self.host} exposes the lab to the network: pass --token "
                             f"(for example --token {new_token()}) or bind 127.0.0.1")

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or (given is not None and hmac.compare_digest(given, self.token))

    def host_ok(self, header_host: str) -> bool:
        """On loopback the Host header must name loopback too (no DNS-rebinding pages)."""
        if not is_loopback(self.host):
            return True
        name = header_host.rsplit(":", 1)[0] if not header_host.endswith("]") else header_host
        return is_loopback(name)

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf)


class AccessMiddleware:
    """Refuse requests without the token (query ``?token=``, ``Authorization: Bearer``, or the
    cookie set after the first visit) and requests whose Host header is not loopback."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = refuse_framing(send)
        request = Request(scope)
        if not self.access.host_ok(request.headers.get("host", "")):
            await _refuse(400, "this dashboard answers only on localhost; open it at http://127.0.0.1:PORT/")(
                scope, receive, send)
            return
        if self.access.token is None:
            await self.app(scope, receive, send)
            return
        in_query = request.query_params.get(TOKEN_PARAM)
        bearer = request.headers.get("authorization", "")
        given = in_query or (bearer[7:] if bearer.lower().startswith("bearer ") else None) \
            or request.cookies.get(TOKEN_COOKIE)
        if not self.access.token_ok(given):
            await _refuse(401, "a token is required: open the address `aar ui` printed (it ends in ?token=...)")(
                scope, receive, send)
            return
        if in_query and request.method == "GET":
            await _strip_token(request.url, self.access.token)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# No page may be shown inside another page: a framed review or steer form could be clicked
# through by another local origin (clickjacking).
FRAME_HEADERS = ((b"content-security-policy", b"frame-ancestors 'none'"), (b"x-frame-options", b"DENY"))


def refuse_framing(send: Send) -> Send:
    """``send`` with the anti-framing headers added to every response's start."""
    async def guarded(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []),
                                              *(h for h in FRAME_HEADERS if h[0] not in names)]}
        await send(message)
    return guarded


def write_allowed(request: Request, csrf: str | None) -> bool:
    """A form post from this dashboard's own page: the CSRF token matches and the Origin (when
    the browser sends one) is this host."""
    origin = request.headers.get("origin")
    same = origin is None or urlsplit(origin).netloc == request.headers.get("host")
    return same and request.app.state.access.csrf_ok(csrf)


def _refuse(status: int, message: str) -> Response:
    html = (f"<!doctype html><meta charset='utf-8'><title>aar ui: {status}</title>"
            f"<body style='font-family:sans-serif;margin:3em'><h1>{status}</h1><p>{message}</p></body>")
    return Response(html, status_code=status, media_type="text/html")


def _strip_token(url: URL, token: str) -> Response:
    """Move the token from the address bar into an HttpOnly cookie."""
    rest = url.remove_query_params(TOKEN_PARAM)
    response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response
