"""The scripted Messages server itself: completion of partial steps, errors, recording, CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx2
import pytest

from tests.fakes.messages_server import CHAT_PATH, MESSAGES_PATH, MessagesServer
from tests.fakes.scripts import error_step, text_turn, tool_use

ROOT = Path(__file__).resolve().parents[1]
REQUEST = {"model": "claude-opus-4-6", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def post(server: MessagesServer, path: str, body: dict) -> httpx2.Response:
    return httpx2.post(server.url + path, json=body, timeout=10)


def test_partial_steps_are_completed_and_requests_recorded():
    with MessagesServer([tool_use("finish", {"summary": "s"}), text_turn("hello")]) as server:
        first = post(server, MESSAGES_PATH, REQUEST).json()
        second = post(server, MESSAGES_PATH, {**REQUEST, "model": "claude-x"}).json()
    assert first["type"] == "message" and first["role"] == "assistant" and first["stop_reason"] == "tool_use"
    assert first["model"] == "claude-opus-4-6" and first["content"][0]["name"] == "finish"
    usage_keys = {"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}
    assert usage_keys <= set(first["usage"])
    assert second["stop_reason"] == "end_turn" and second["model"] == "claude-x"
    assert [r["body"]["model"] for r in server.requests] == ["claude-opus-4-6", "claude-x"]
    assert server.bodies() == [REQUEST, {**REQUEST, "model": "claude-x"}]


def test_errors_carry_status_headers_and_api_shaped_bodies():
    with MessagesServer([error_step(429, retry_after=3), error_step(529), error_step(500)]) as server:
        limited = post(server, MESSAGES_PATH, REQUEST)
        overloaded = post(server, MESSAGES_PATH, REQUEST)
        chat = post(server, CHAT_PATH, {"model": "m", "messages": []})
        exhausted = post(server, MESSAGES_PATH, REQUEST)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "scripted 429"}}
    assert overloaded.status_code == 529 and overloaded.json()["error"]["type"] == "overloaded_error"
    assert chat.status_code == 500 and chat.json()["error"]["code"] == 500
    assert exhausted.status_code == 400 and exhausted.headers["x-should-retry"] == "false"
    assert "script is used up" in exhausted.json()["error"]["message"]


def test_callable_steps_see_the_request_and_wrong_endpoints_are_refused():
    def echo(body: dict) -> dict:
        return text_turn(f"you sent {len(body['messages'])} messages")

    with MessagesServer([echo, text_turn("for messages only")]) as server:
        answer = post(server, MESSAGES_PATH, REQUEST).json()
        wrong = post(server, CHAT_PATH, {"model": "m", "messages": []})
        unknown = post(server, "/v1/other", {})
        got = httpx2.get(server.url + MESSAGES_PATH)
    assert answer["content"][0]["text"] == "you sent 1 messages"
    assert wrong.status_code == 400 and "does not answer" in wrong.json()["error"]["message"]
    assert unknown.status_code == 404 and got.status_code == 404


def test_the_real_sdk_parses_what_the_server_sends():
    usage = {"input_tokens": 7, "output_tokens": 3, "cache_creation_input_tokens": 11, "cache_read_input_tokens": 13}
    with MessagesServer([{"message": {"content": [{"type": "text", "text": "ok"}], "usage": usage}}]) as server:
        client = anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0)
        message = client.messages.create(**REQUEST)
    assert message.content[0].text == "ok" and message.usage.cache_read_input_tokens == 13
    assert server.requests[0]["headers"]["anthropic-version"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_started_by_hand_it_serves_a_client_using_anthropic_base_url(tmp_path, monkeypatch):
    idea = ROOT / "sandbox" / "baselines" / "vanilla_soft.py"
    port = _free_port()
    log = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.messages_server", "--ideas", str(idea), "--port", str(port),
         "--exit-when-done", "--log", str(log)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
        client = anthropic.Anthropic(api_key="test-key", max_retries=0)  # base URL from the environment
        answers = [client.messages.create(**REQUEST) for _ in range(3)]
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    run, board, finish = (a.content[-1] for a in answers)
    assert run.name == "run_experiment" and run.input["code"] == idea.read_text()
    assert (board.name, finish.name) == ("show_leaderboard", "finish")
    assert len([json.loads(line) for line in log.read_text().splitlines()]) == 3


def test_script_file_by_hand(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([error_step(401, message="invalid x-api-key")]))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.messages_server", "--script", str(script),
                             "--port", str(port), "--exit-when-done"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "serving 1 scripted steps" in proc.stdout.readline()
        client = anthropic.Anthropic(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            client.messages.create(**REQUEST)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
