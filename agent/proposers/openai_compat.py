"""An OpenAI-compatible chat-completions back end (vLLM, Ollama, llama.cpp, gateways).

Same tools as Claude, through function calling, chosen by base URL (``--base-url`` or
``OPENAI_BASE_URL``) and model name, through the official ``openai`` SDK (typed errors,
timeouts). Retries are agent/proposers/retries.py's, as for Claude (the SDK's are off). Calls
do not stream: local servers differ in whether they report usage on a stream
(``stream_options``), and the cost budget needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import openai
from pydantic import Field

from agent.prompting import render
from agent.proposers.base import (
    ContextTooLong,
    ModelCallError,
    Proposer,
    ProposerConfig,
    ResearchTools,
    register_proposer,
)
from agent.proposers.conversation import ChatBackend, ContextPolicy, Conversation, ToolCall, Turn
from agent.proposers.options import ChatOptions, parse_options
from agent.proposers.retries import Notice, call_with_retries, status_wait_hint
from agent.proposers.tooling import ToolDef, ToolOutcome, openai_tools
from sandbox.errors import HarnessError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
STOPS = {"tool_calls": "tool_use", "function_call": "tool_use", "stop": "end_turn", "length": "max_tokens",
         "content_filter": "refusal"}
# How OpenAI, vLLM and llama.cpp servers word a prompt longer than the context (in a 400).
CONTEXT_ERRORS = ("maximum context length", "context_length_exceeded", "context length", "prompt is too long",
                  "exceeds the available context")
INVALID_ARGUMENTS = "{}"  # what stands in the transcript for arguments that are not JSON


class BodyError(Exception):
    """A 200 whose body is an error object (``{"error": {...}}``, as some proxies and routers
    answer); ``status`` is its code when it names an HTTP status (its retry policy), else 400."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


RETRYABLE = (openai.APIStatusError, openai.APIConnectionError, BodyError)


class OpenAIOptions(ChatOptions):
    """OpenAI-compatible options (``ProposerConfig.options``)."""

    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    send_max_tokens: bool = Field(False, description="Send max_tokens (some local servers cap output without it).")


def _wait_hint(exc: Exception) -> float | None:
    if isinstance(exc, openai.APIStatusError):
        return status_wait_hint(exc.status_code, exc.response.headers)
    if isinstance(exc, BodyError):
        return status_wait_hint(exc.status, {})
    return status_wait_hint(None, {})


def _body_error(answer: dict[str, Any]) -> BodyError | None:
    """The error object of a 200 body that carries one instead of choices."""
    err = answer.get("error")
    if not err or answer.get("choices"):
        return None
    inner: dict[str, Any] = err if isinstance(err, dict) else {"message": str(err)}
    code = inner.get("code")
    status = int(code) if isinstance(code, int | str) and str(code).isdigit() and 400 <= int(code) < 600 else 400
    return BodyError(" ".join(f"{status}: {inner.get('message') or inner}".split()), status)


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    message = err.get("message") or exc.message
    return " ".join(f"{exc.status_code}: {message}".split())


def _short(exc: Exception) -> str:
    if isinstance(exc, BodyError):
        return f"an error in a 200 answer ({exc.message})"
    return _error_text(exc) if isinstance(exc, openai.APIStatusError) else type(exc).__name__


class OpenAIBackend(ChatBackend):
    """Chat-completions requests; the transcript is stored in OpenAI message format."""

    def __init__(self, model: str, base_url: str, api_key: str | None, options: OpenAIOptions) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.api_key = api_key
        self.options = options
        self._client: openai.OpenAI | None = None

    def request(self, system: str, messages: list[dict[str, Any]], tools: list[ToolDef]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model,
                                   "messages": [{"role": "system", "content": system}, *messages],
                                   "tools": openai_tools(tools), "tool_choice": "auto"}
        if self.options.send_max_tokens:
            request["max_tokens"] = self.options.max_tokens
        return request

    def send(self, request: dict[str, Any], notice: Notice,
             abandoned: Callable[[dict[str, Any], str], None]) -> dict[str, Any]:
        """Not streamed: an answer either arrives whole or is not billed, so ``abandoned`` is unused."""
        o = self.options
        try:
            return call_with_retries(lambda: self._create(request), RETRYABLE, _wait_hint, max_retries=o.max_retries,
                                     base_s=o.retry_base_s, max_wait_s=o.retry_max_wait_s, notice=notice,
                                     what=_short)
        except openai.APIConnectionError as exc:
            raise ModelCallError(f"could not reach {self.url} after {o.max_retries} retries "
                                 f"({type(exc).__name__}: {exc}): is the server running?") from exc
        except openai.APIStatusError as exc:
            line = self._failed(exc)
            if exc.status_code == 400 and any(k in line.lower() for k in CONTEXT_ERRORS):
                raise ContextTooLong(line) from exc
            raise ModelCallError(line) from exc
        except BodyError as exc:
            retried = f" after {o.max_retries} retries" if _wait_hint(exc) is not None else ""
            raise ModelCallError(f"{self.url} answered 200 with an error{retried} ({exc.message})") from exc

    def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:  # a local server needs no key: send no Authorization header at all
            self._client = openai.OpenAI(api_key=self.api_key or "unused", base_url=self.base_url,
                                         max_retries=0, timeout=self.options.timeout_s)
        headers = {} if self.api_key else {"Authorization": openai.Omit()}
        try:
            answer = self._client.chat.completions.create(**request, extra_headers=headers)
        except json.JSONDecodeError as exc:
            raise ModelCallError(f"{self.url} answered with a body that is not JSON ({exc.msg}): "
                                 "is a proxy in the way? Check --base-url") from exc
        if isinstance(answer, str):  # the SDK hands back a body that is not JSON as text
            raise ModelCallError(f"{self.url} answered with {answer[:60]!r}…, not a chat completion: "
                                 "is a proxy in the way? Check --base-url")
        dumped: dict[str, Any] = answer.model_dump(mode="json")
        fault = _body_error(dumped)
        if fault is not None:
            raise fault
        return dumped

    def _failed(self, exc: openai.APIStatusError) -> str:
        if exc.status_code in (401, 403):
            return f"{self.url} rejected the credentials ({_error_text(exc)}): set a valid {self.options.api_key_env}"
        if exc.status_code == 404:
            return f"{self.url} or model {self.model!r} not found ({_error_text(exc)}): check --base-url and --model"
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            return (f"{self.url} still failed after {self.options.max_retries} retries ({_error_text(exc)}): "
                    "try again later or raise max_retries")
        return f"{self.url} rejected the request ({_error_text(exc)})"

    def parse(self, response: dict[str, Any]) -> Turn:
        choices = response.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        text = message.get("content") or ""
        calls = self.calls_in(message)
        unparsed = [c.error is not None for c in calls]  # before a length cut names its own error
        stop = STOPS.get(choice.get("finish_reason") or "", "other")
        if message.get("refusal"):
            stop, text = "refusal", text or str(message["refusal"])
        if stop == "max_tokens" and calls:
            calls[-1].error = "your output hit the length limit, so this call's arguments are incomplete"
        kept: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            # Arguments that are not JSON are kept as a valid placeholder: servers that parse the
            # history (vLLM) would answer 400 to every later request; the model gets the error.
            kept["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": INVALID_ARGUMENTS if unparsed[i] else _raw_arguments(message, i)}}
                for i, c in enumerate(calls)]
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
                 "content": ("ERROR: " if outcome.is_error else "") + outcome.text + _figures_note(outcome)}
                for call, outcome in answered]

    def add_user_text(self, messages: list[dict[str, Any]], text: str) -> None:
        messages.append({"role": "user", "content": text})


def _figures_note(outcome: ToolOutcome) -> str:
    """Tool messages of chat completions carry text only: say what was saved instead."""
    return "\n" + render("figures_not_shown", names=[n for n, _ in outcome.images]) if outcome.images else ""


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
                     max_nudges=self.options.max_nudges, max_lookups=self.options.max_lookups).run()
