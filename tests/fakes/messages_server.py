"""A local HTTP server that speaks the subset of the Anthropic Messages API (and of OpenAI chat
completions) the proposers use, answering from a scripted conversation.

Each request takes the next step of the script. A step is a dict:
  {"message": {...}}      answer POST /v1/messages with this (partial) Message; id, type, role,
                          model, stop_reason and usage are filled in when missing;
  {"completion": {...}}   answer POST /v1/chat/completions with this (partial) chat completion;
  {"status": 429, "headers": {"retry-after": "1"}, "error": {"type": ..., "message": ...}}
                          answer with an error status (429 / 500 / 529 / 401 ...);
  {"raw": "<html>...", "content_type": "text/html"}
                          answer 200 with this body as it is (a proxy's page, truncated JSON);
  optional "delay_s": seconds to wait before answering (to provoke client timeouts);
  optional "cut_after_events": with a streamed answer, close the connection after this many
                          server-sent events (a stream cut off mid-way; all but the last:
                          no message_stop);
  optional "error_event": with a streamed answer, after ``cut_after_events`` events (default 1)
                          send ``event: error`` with this error ({"type": "overloaded_error", ...});
  optional "garbled": with a streamed answer, after ``cut_after_events`` events (default 1) send
                          a data line that is not JSON (a proxy that cut a line short).
  optional "stall_after_events" (with "stall_s"): with a streamed answer, send this many events,
                          then wait up to ``stall_s`` before the rest (a model still writing); a
                          client that hangs up meanwhile (Ctrl-C) is billed what was sent.
A streamed answer that broke off is billed as the API bills it: the usage its sent events carry
(message_start's, updated by message_delta's when that was sent).
A request with ``"stream": true`` gets the Message as server-sent events, as the API sends them.
or, in process, a callable ``step(request_body) -> dict`` returning such a dict.
Every request is recorded (method, path, headers, JSON body). When the script is used up the
server answers 400 with ``x-should-retry: false`` so a test fails fast instead of hanging.

By hand:  python -m tests.fakes.messages_server --script script.json --port 8765
          python -m tests.fakes.messages_server --ideas a.py b.py --port 8765
then      ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=test aar research --proposer claude
"""

from __future__ import annotations

import argparse
import copy
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Step = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
MESSAGES_PATH = "/v1/messages"
CHAT_PATH = "/v1/chat/completions"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def complete_message(partial: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A full Messages API response from a partial one."""
    message = copy.deepcopy(partial)
    content = message.setdefault("content", [])
    has_tool = any(b.get("type") == "tool_use" for b in content)
    message.setdefault("id", f"msg_{uuid.uuid4().hex[:20]}")
    message.setdefault("type", "message")
    message.setdefault("role", "assistant")
    message.setdefault("model", request.get("model", "claude-test"))
    message.setdefault("stop_reason", "tool_use" if has_tool else "end_turn")
    message.setdefault("stop_sequence", None)
    usage = message.setdefault("usage", {})
    usage.setdefault("input_tokens", 100)
    usage.setdefault("output_tokens", 50)
    usage.setdefault("cache_creation_input_tokens", 0)
    usage.setdefault("cache_read_input_tokens", 0)
    return message


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    """A content block as start, delta(s), stop events (the deltas rebuild it)."""
    kind = block.get("type")
    start: dict[str, Any] = dict(block)
    deltas: list[dict[str, Any]] = []
    if kind == "text":
        start["text"] = ""
        deltas = [{"type": "text_delta", "text": block.get("text", "")}]
    elif kind == "tool_use":
        start["input"] = {}
        raw = json.dumps(block.get("input", {}))
        half = len(raw) // 2  # two pieces, as a real stream splits partial JSON anywhere
        deltas = [{"type": "input_json_delta", "partial_json": raw[:half]},
                  {"type": "input_json_delta", "partial_json": raw[half:]}]
    elif kind == "thinking":
        start.update(thinking="", signature="")
        deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")},
                  {"type": "signature_delta", "signature": block.get("signature", "")}]
    return [{"type": "content_block_start", "index": index, "content_block": start},
            *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
            {"type": "content_block_stop", "index": index}]


def message_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A full Message as the server-sent events of a streamed response."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(message["content"]):
        events.extend(_block_events(i, block))
    events.append({"type": "message_delta", "usage": {"output_tokens": usage["output_tokens"]},
                   "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}})
    events.append({"type": "message_stop"})
    return events


def billed_usage(sent: list[dict[str, Any]]) -> dict[str, Any]:
    """The usage of a (possibly broken-off) stream: message_start's, then message_delta's counts."""
    usage: dict[str, Any] = {}
    for event in sent:
        if event["type"] == "message_start":
            usage = dict(event["message"]["usage"])
        elif event["type"] == "message_delta":
            usage.update(event.get("usage") or {})
    return usage


def complete_chat(partial: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A full chat.completion response from a partial one."""
    body = copy.deepcopy(partial)
    body.setdefault("id", f"chatcmpl-{uuid.uuid4().hex[:20]}")
    body.setdefault("object", "chat.completion")
    body.setdefault("created", int(time.time()))
    body.setdefault("model", request.get("model", "local-test"))
    for i, choice in enumerate(body.setdefault("choices", [])):
        choice.setdefault("index", i)
        msg = choice.setdefault("message", {})
        msg.setdefault("role", "assistant")
        msg.setdefault("content", None)
        choice.setdefault("finish_reason", "tool_calls" if msg.get("tool_calls") else "stop")
    body.setdefault("usage", {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150})
    return body


def error_body(path: str, status: int, error: dict[str, Any] | None) -> dict[str, Any]:
    kind = (error or {}).get("type", ERROR_TYPES.get(status, "api_error"))
    message = (error or {}).get("message", f"scripted {status}")
    if path == CHAT_PATH:
        return {"error": {"message": message, "type": kind, "code": status}}
    return {"type": "error", "error": {"type": kind, "message": message}}


class MessagesServer:
    """The scripted server on 127.0.0.1 (an ephemeral port unless one is given)."""

    def __init__(self, script: list[Step], port: int = 0, host: str = "127.0.0.1") -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.answered_at: list[float] = []
        self.billed: list[dict[str, Any]] = []  # (model, usage) of every message sent: what an API bills
        self.stalled = threading.Event()  # a stream is waiting mid-way ("stall_after_events")
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True  # stop() never waits for a client that went away
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.script)

    def bodies(self, path: str = MESSAGES_PATH) -> list[dict[str, Any]]:
        """The JSON bodies received on ``path``, in order."""
        return [r["body"] for r in self.requests if r["path"] == path]

    def start(self) -> MessagesServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> MessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_step(self, record: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            self.requests.append(record)
            self.answered_at.append(time.monotonic())
            step = self.script.pop(0) if self.script else None
        return step(record["body"]) if callable(step) else step

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
                pass

            def do_GET(self) -> None:
                self._send(404, error_body(self.path, 404, {"message": f"no GET {self.path} here"}), {})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode(errors="replace")}
                path = self.path.split("?")[0]
                record = {"method": "POST", "path": path, "headers": dict(self.headers.items()), "body": body}
                step = server.next_step(record)
                self._answer(path, body, step)

            def _answer(self, path: str, body: dict[str, Any], step: dict[str, Any] | None) -> None:
                if path not in (MESSAGES_PATH, CHAT_PATH):
                    self._send(404, error_body(path, 404, {"message": f"unknown path {path}"}), {})
                    return
                if step is None:
                    self._send(400, error_body(path, 400, {"message": "fake server: the script is used up"}),
                               {"x-should-retry": "false"})
                    return
                time.sleep(float(step.get("delay_s", 0)))
                if self._client_gone():  # cancelled (Ctrl-C) or killed meanwhile: nothing sent, nothing billed
                    return
                if "raw" in step:
                    self._send_bytes(200, str(step["raw"]).encode(), step.get("content_type", "text/html"), {})
                elif "status" in step:
                    self._send(int(step["status"]), error_body(path, int(step["status"]), step.get("error")),
                               step.get("headers", {}))
                elif path == MESSAGES_PATH and "message" in step:
                    message = complete_message(step["message"], body)
                    if body.get("stream"):
                        usage = self._stream(message, step)
                    else:
                        self._send(200, message, step.get("headers", {}))
                        usage = message["usage"]
                    if usage:  # a stream cut before message_start is not billed
                        server.billed.append({"model": message["model"], "usage": dict(usage)})
                elif path == CHAT_PATH and "completion" in step:
                    self._send(200, complete_chat(step["completion"], body), step.get("headers", {}))
                else:
                    wrong = f"fake server: step {sorted(step)} does not answer {path}"
                    self._send(400, error_body(path, 400, {"message": wrong}), {"x-should-retry": "false"})

            def _stream(self, message: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
                """Send the Message as events, broken off as the step says; the usage billed."""
                events = message_events(message)
                faulty = "error_event" in step or step.get("garbled")
                cut = step.get("cut_after_events", 1 if faulty else None)
                sent = events if cut is None else events[:cut]
                if "stall_after_events" in step:
                    return self._stream_stalled(events, step)
                tail = ""
                if "error_event" in step:
                    tail = f"event: error\ndata: {json.dumps({'type': 'error', 'error': step['error_event']})}\n\n"
                elif step.get("garbled"):
                    tail = 'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta\n\n'
                self._send_events(sent, step.get("headers", {}), tail)
                return billed_usage(sent)

            def _stream_stalled(self, events: list[dict[str, Any]], step: dict[str, Any]) -> dict[str, Any]:
                """The first events, a wait, then the rest, unless the client hung up during the wait."""
                split = int(step["stall_after_events"])
                parts = ["".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in chunk).encode()
                         for chunk in (events[:split], events[split:])]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(sum(map(len, parts))))
                self.end_headers()
                self.wfile.write(parts[0])
                self.wfile.flush()
                server.stalled.set()
                deadline = time.monotonic() + float(step.get("stall_s", 30))
                while time.monotonic() < deadline:
                    if self._client_gone():
                        self.close_connection = True
                        return billed_usage(events[:split])
                    time.sleep(0.05)
                try:
                    self.wfile.write(parts[1])
                except (BrokenPipeError, ConnectionResetError):
                    return billed_usage(events[:split])
                return billed_usage(events)

            def _client_gone(self) -> bool:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _send_events(self, events: list[dict[str, Any]], headers: dict[str, str], tail: str = "") -> None:
                data = ("".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events) + tail).encode()
                self._send_bytes(200, data, "text/event-stream", headers)
                self.close_connection = True  # a cut stream ends with the connection

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

            def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", content_type)
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
                    for key, value in headers.items():
                        self.send_header(key, str(value))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted Anthropic Messages / OpenAI chat server.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--script", type=Path, help="JSON file: a list of steps")
    source.add_argument("--ideas", type=Path, nargs="+", help="idea files: a session that runs each, then finishes")
    parser.add_argument("--openai", action="store_true", help="with --ideas: script chat completions instead")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--exit-when-done", action="store_true", help="stop once every step was answered")
    parser.add_argument("--log", type=Path, help="write every request received to this JSON-lines file at exit")
    args = parser.parse_args(argv)
    if args.script:
        script = json.loads(args.script.read_text())
    else:
        from .scripts import scripted_claude_session, scripted_openai_session

        ideas = [(p.stem, f"Run the idea in {p.name}.", p.read_text()) for p in args.ideas]
        script = scripted_openai_session(ideas) if args.openai else scripted_claude_session(ideas)
    server = MessagesServer(script, port=args.port).start()
    print(f"serving {len(script)} scripted steps on {server.url}", flush=True)
    print(f"  export ANTHROPIC_BASE_URL={server.url} ANTHROPIC_API_KEY=test-key")
    print(f"  (OpenAI-compatible: --base-url {server.url}/v1)", flush=True)
    announced = False
    try:
        while True:  # serve until Ctrl-C (or until the script is used up, with --exit-when-done)
            time.sleep(0.2)
            if not server.remaining and not announced:
                announced = True
                print("script used up; further requests get 400", flush=True)
                if args.exit_when_done:
                    time.sleep(0.5)
                    break
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        server.stop()
        if args.log:
            args.log.write_text("".join(json.dumps(r) + "\n" for r in server.requests))


if __name__ == "__main__":
    main()
