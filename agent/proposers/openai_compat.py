"""An OpenAI-compatible chat-completions back end (vLLM, Ollama, llama.cpp, gateways).

Same tools as Claude, through function calling, chosen by base URL (``--base-url`` or
``OPENAI_BASE_URL``) and model name. It speaks plain HTTP with httpx2 (already installed with
the Anthropic SDK): one endpoint is all it needs, local servers differ in which optional fields
they accept, and a second SDK stack would add weight for nothing. Retries follow the same
policy as the Anthropic SDK: 408/409/429/5xx and connection errors, honouring Retry-After.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import time
from typing import Any

import httpx2
from pydantic import Field

from agent.proposers.base import Proposer, ProposerConfig, ResearchTools, register_proposer
from agent.proposers.conversation import (
    ChatBackend,
    ContextPolicy,
    Conversation,
    ModelCallError,
    ToolCall,
    Turn,
)
from agent.proposers.options import ChatOptions, parse_options
from agent.proposers.tooling import ToolDef, ToolOutcome, openai_tools
from sandbox.errors import HarnessError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
STOPS = {"tool_calls": "tool_use", "function_call": "tool_use", "stop": "end_turn", "length": "max_tokens",
         "content_filter": "refusal"}
RETRY_STATUSES = {408, 409, 429}


class OpenAIOptions(ChatOptions):
    """OpenAI-compatible options (``ProposerConfig.options``)."""

    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    max_retry_wait_s: float = Field(120.0, gt=0, description="Longest single wait a Retry-After may impose.")
    send_max_tokens: bool = Field(False, description="Send max_tokens (some local servers cap output without it).")


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, retry-after seconds or HTTP date."""
    for key, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(key)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter (0.5 s doubling, at most 8 s), as the Anthropic SDK does."""
    return min(0.5 * 2 ** attempt, 8.0) * (1 - 0.25 * random.random())


def _error_text(response: httpx2.Response) -> str:
    try:
        body = response.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        message = err.get("message", err) if isinstance(err, dict) else err
    except ValueError:
        message = response.text[:200]
    return " ".join(f"{response.status_code}: {message}".split())


class OpenAIBackend(ChatBackend):
    """Chat-completions requests; the transcript is stored in OpenAI message format."""

    def __init__(self, model: str, base_url: str, api_key: str | None, options: OpenAIOptions) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.options = options
        self._http: httpx2.Client | None = None

    def request(self, system: str, messages: list[dict[str, Any]], tools: list[ToolDef]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model,
                                   "messages": [{"role": "system", "content": system}, *messages],
                                   "tools": openai_tools(tools), "tool_choice": "auto"}
        if self.options.send_max_tokens:
            request["max_tokens"] = self.options.max_tokens
        return request

    def send(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx2.Client(timeout=self.options.timeout_s, headers=headers)
        for attempt in range(self.options.max_retries + 1):
            last = attempt == self.options.max_retries
            try:
                response = self._http.post(self.url, json=request)
            except httpx2.TransportError as exc:
                if last:
                    raise ModelCallError(f"could not reach {self.url} after {attempt} retries "
                                         f"({type(exc).__name__}: {exc}): is the server running?") from exc
                time.sleep(backoff(attempt))
                continue
            if response.is_success:
                return response.json()
            if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                if not last:
                    wait = retry_after(response.headers)
                    time.sleep(min(wait, self.options.max_retry_wait_s) if wait is not None else backoff(attempt))
                    continue
                raise ModelCallError(f"{self.url} still failed after {attempt} retries ({_error_text(response)}): "
                                     "try again later or raise max_retries")
            raise ModelCallError(self._rejected(response))
        raise AssertionError("unreachable")

    def _rejected(self, response: httpx2.Response) -> str:
        if response.status_code in (401, 403):
            return (f"{self.url} rejected the credentials ({_error_text(response)}): "
                    f"set a valid {self.options.api_key_env}")
        if response.status_code == 404:
            return f"{self.url} or model {self.model!r} not found ({_error_text(response)}): check --base-url and --model"
        return f"{self.url} rejected the request ({_error_text(response)})"

    def parse(self, response: dict[str, Any]) -> Turn:
        choices = response.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        text = message.get("content") or ""
        calls = self.calls_in(message)
        stop = STOPS.get(choice.get("finish_reason") or "", "other")
        if message.get("refusal"):
            stop, text = "refusal", text or str(message["refusal"])
        if stop == "max_tokens" and calls:
            calls[-1].error = "your output hit the length limit, so this call's arguments are incomplete"
        kept: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            kept["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": _raw_arguments(message, i)}} for i, c in enumerate(calls)]
        usage = response.get("usage") or {}
        has_content = bool(text.strip()) or bool(calls)
        return Turn(text=text, calls=calls, stop=stop, input_tokens=int(usage.get("prompt_tokens") or 0),
                    message=kept if has_content else None)

    def calls_in(self, message: dict[str, Any]) -> list[ToolCall]:
        calls = []
        for raw in message.get("tool_calls") or []:
            fn = raw.get("function") or {}
            arguments, error = fn.get("arguments"), None
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError as exc:
                    error = f"arguments are not valid JSON ({exc.msg} at character {exc.pos})"
            call_id = raw.get("id") or _derived_id(raw)
            raw["id"] = call_id  # servers that omit ids get a stable one, kept in the transcript
            calls.append(ToolCall(call_id, fn.get("name") or "", arguments, error))
        return calls

    def results(self, answered: list[tuple[ToolCall, ToolOutcome]]) -> list[dict[str, Any]]:
        return [{"role": "tool", "tool_call_id": call.id,
                 "content": ("ERROR: " if outcome.is_error else "") + outcome.text} for call, outcome in answered]

    def add_user_text(self, messages: list[dict[str, Any]], text: str) -> None:
        messages.append({"role": "user", "content": text})


def _derived_id(raw: dict[str, Any]) -> str:
    """A deterministic id for a call a server sent without one (so replays match)."""
    return "call_" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def _raw_arguments(message: dict[str, Any], index: int) -> str:
    arguments = (message["tool_calls"][index].get("function") or {}).get("arguments")
    return arguments if isinstance(arguments, str) else json.dumps(arguments or {})


@register_proposer("openai")
class OpenAIProposer(Proposer):
    """A model behind an OpenAI-compatible chat-completions endpoint proposes ideas as code."""

    def __init__(self, config: ProposerConfig) -> None:
        super().__init__(config)
        self.options = parse_options(OpenAIOptions, config.options, "openai")
        self.api_key = os.environ.get(self.options.api_key_env) or None
        self.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def check_ready(self) -> None:
        if not self.config.model:
            raise HarnessError("the openai proposer needs --model (the name the server knows the model by)")
        if self.base_url is None and self.api_key is None:
            raise HarnessError(f"set --base-url (or OPENAI_BASE_URL) for a local server, or "
                               f"{self.options.api_key_env} for {DEFAULT_BASE_URL}")
        url = self.base_url or DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            raise HarnessError(f"base URL {url!r} must start with http:// or https://")

    def backend(self) -> OpenAIBackend:
        return OpenAIBackend(self.config.model or "", self.base_url or DEFAULT_BASE_URL, self.api_key, self.options)

    def run(self, tools: ResearchTools) -> None:
        policy = ContextPolicy(max_chars=self.options.compact_chars, max_input_tokens=self.options.compact_tokens,
                               keep_rounds=self.options.keep_rounds)
        Conversation(self.backend(), tools, direction=self.config.direction, policy=policy,
                     max_nudges=self.options.max_nudges).run()
