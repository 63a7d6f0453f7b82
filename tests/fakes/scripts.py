"""Building blocks for scripted model conversations (steps for MessagesServer)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

Idea = tuple[str, str, str]  # (name, hypothesis, code)
DEFAULT_USAGE = {"input_tokens": 1200, "output_tokens": 400, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 3000}


def tool_use(name: str, tool_input: dict[str, Any], *, text: str = "", call_id: str | None = None,
             usage: dict[str, int] | None = None, stop_reason: str = "tool_use") -> dict[str, Any]:
    """A Messages step: optional prose, then one tool call."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    digest = hashlib.sha256(json.dumps(tool_input, sort_keys=True).encode()).hexdigest()[:10]
    content.append({"type": "tool_use", "id": call_id or f"toolu_{name}_{digest}", "name": name,
                    "input": tool_input})
    return {"message": {"content": content, "stop_reason": stop_reason, "usage": dict(usage or DEFAULT_USAGE)}}


def text_turn(text: str, *, stop_reason: str = "end_turn", usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A Messages step with prose only (no tool call)."""
    content = [{"type": "text", "text": text}] if text else []
    return {"message": {"content": content, "stop_reason": stop_reason, "usage": dict(usage or DEFAULT_USAGE)}}


def error_step(status: int, *, retry_after: float | None = None, message: str | None = None,
               delay_s: float = 0.0) -> dict[str, Any]:
    """An error answer (429 rate limit, 500, 529 overloaded, 401 ...), optionally with Retry-After."""
    step: dict[str, Any] = {"status": status}
    if retry_after is not None:
        step["headers"] = {"retry-after": f"{retry_after:g}"}
    if message:
        step["error"] = {"message": message}
    if delay_s:
        step["delay_s"] = delay_s
    return step


def scripted_claude_session(ideas: list[Idea], *, leaderboard: bool = True,
                            summary: str = "Tried the scripted ideas; see the leaderboard.") -> list[dict[str, Any]]:
    """Claude runs each idea in turn, optionally looks at the leaderboard, then finishes."""
    steps = [tool_use("run_experiment", {"name": name, "hypothesis": hypothesis, "code": code},
                      text=f"Next I will test {name}: {hypothesis}", call_id=f"toolu_run_{i}")
             for i, (name, hypothesis, code) in enumerate(ideas)]
    if leaderboard:
        steps.append(tool_use("show_leaderboard", {}, text="Let me compare.", call_id="toolu_board"))
    steps.append(tool_use("finish", {"summary": summary}, call_id="toolu_finish"))
    return steps


def chat_tool_call(name: str, arguments: dict[str, Any] | str, *, text: str = "", call_id: str | None = None,
                   usage: dict[str, int] | None = None, finish_reason: str = "tool_calls") -> dict[str, Any]:
    """A chat-completions step with one function call (arguments as an object or raw string)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": call_id or f"call_{name}", "type": "function", "function": {"name": name, "arguments": raw}}
    message = {"role": "assistant", "content": text or None, "tool_calls": [call]}
    return {"completion": {"choices": [{"message": message, "finish_reason": finish_reason}],
                           "usage": usage or {"prompt_tokens": 1500, "completion_tokens": 300,
                                              "total_tokens": 1800}}}


def chat_text(text: str, *, finish_reason: str = "stop", refusal: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if refusal:
        message["refusal"] = refusal
    return {"completion": {"choices": [{"message": message, "finish_reason": finish_reason}]}}


def scripted_openai_session(ideas: list[Idea], *, summary: str = "Done.") -> list[dict[str, Any]]:
    steps = [chat_tool_call("run_experiment", {"name": n, "hypothesis": h, "code": c}, call_id=f"call_run_{i}")
             for i, (n, h, c) in enumerate(ideas)]
    steps.append(chat_tool_call("finish", {"summary": summary}, call_id="call_finish"))
    return steps


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message of a recorded Messages request."""
    last = body["messages"][-1]
    content = last["content"] if isinstance(last["content"], list) else []
    return [b for b in content if b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content)
    return str(content)
