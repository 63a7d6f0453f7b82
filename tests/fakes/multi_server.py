"""One scripted Messages server for several conversations at once (parallel researchers).

Each conversation has its own script, chosen by a marker: a request goes to the script whose
marker appears in the text of its first user message (for researchers, their starting
direction, which the task introduction carries). A step can be gated on another conversation's
progress (``after``), so tests can order what parallel researchers see without sleeping.
A request that matches no marker, or more than one, gets a non-retryable 400.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.fakes.messages_server import MessagesServer, Step

GATE_TIMEOUT_S = 180.0


def first_user_text(body: dict[str, Any]) -> str:
    """The text of the first message of a Messages request (the conversation's introduction)."""
    messages = body.get("messages") or [{}]
    content = messages[0].get("content")
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


def _refusal(message: str) -> dict[str, Any]:
    return {"status": 400, "headers": {"x-should-retry": "false"}, "error": {"message": message}}


class RoutedMessagesServer(MessagesServer):
    """``routes`` maps a marker to the scripted steps of the conversation it identifies."""

    def __init__(self, routes: dict[str, list[Step]], port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__([], port=port, host=host)
        self.routes = {marker: list(steps) for marker, steps in routes.items()}
        self.routed: dict[str, list[dict[str, Any]]] = {marker: [] for marker in routes}
        self._arrived = threading.Condition(self._lock)

    @property
    def remaining(self) -> int:
        with self._lock:
            return sum(len(steps) for steps in self.routes.values())

    def route_of(self, body: dict[str, Any]) -> str | None:
        text = first_user_text(body)
        matches = [marker for marker in self.routes if marker in text]
        return matches[0] if len(matches) == 1 else None

    def bodies_for(self, marker: str) -> list[dict[str, Any]]:
        """The request bodies one conversation sent, in order."""
        with self._lock:
            return [r["body"] for r in self.routed[marker]]

    def next_step(self, record: dict[str, Any]) -> dict[str, Any] | None:
        marker = self.route_of(record["body"])
        with self._arrived:
            self.requests.append(record)
            self.answered_at.append(time.monotonic())
            if marker is None:
                step: Step | None = _refusal("multi server: the request matches no single conversation marker")
            else:
                self.routed[marker].append(record)
                script = self.routes[marker]
                step = script.pop(0) if script else None
            self._arrived.notify_all()
        return step(record["body"]) if callable(step) else step

    def wait_for(self, marker: str, count: int, timeout_s: float = GATE_TIMEOUT_S) -> bool:
        """Block until conversation ``marker`` has sent ``count`` requests; False on timeout."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.routed[marker]) >= count, timeout_s)

    def after(self, marker: str, count: int, step: Step) -> Step:
        """``step``, answered only once conversation ``marker`` has sent ``count`` requests
        (a request is sent after the tool results of the turn before it are in)."""

        def gated(body: dict[str, Any]) -> dict[str, Any]:
            if not self.wait_for(marker, count):
                return _refusal(f"multi server: gave up waiting for {count} requests of {marker[:40]!r}")
            return step(body) if callable(step) else step

        return gated
