"""Claude as the researcher: the Anthropic Messages API with tool use, through the official SDK.

The direct API, Amazon Bedrock and Google Vertex are reached with the SDK's own clients
(``Anthropic``, ``AnthropicBedrock``, ``AnthropicVertex``). Every call streams (so ``max_tokens``
may pass the non-streaming limit) and goes through ``tools.model_call`` with the full
``messages.stream`` kwargs as the recorded request and the final Message as the response.
408/409/429/5xx/529 and timeouts are retried by agent/proposers/retries.py (exponential
backoff with jitter, Retry-After honoured), and so is a stream that breaks off mid-way (an
``event: error`` such as overloaded_error, a data line that is not JSON, an end before
``message_stop``; one that already brought ``message_delta`` is complete enough and accepted).
Every stream that started is charged through the ``abandoned`` hook, since the API bills it. A
call that still fails, or an answer that is no message stream (a proxy's HTML page), becomes a
one-line ``ModelCallError``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
from collections.abc import Callable
from typing import Any, Literal

import anthropic
from pydantic import Field

from agent.costs import normalize_usage, price_for, prices_path
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
from agent.proposers.tooling import ToolDef, ToolOutcome, anthropic_tools
from sandbox.errors import HarnessError

DEFAULT_MODEL = "claude-opus-4-6"
EPHEMERAL = {"type": "ephemeral"}
STOPS = {"tool_use": "tool_use", "end_turn": "end_turn", "stop_sequence": "end_turn",
         "max_tokens": "max_tokens", "refusal": "refusal", "model_context_window_exceeded": "context"}
Provider = Literal["anthropic", "bedrock", "vertex"]


class ClaudeOptions(ChatOptions):
    """Claude-specific options (``ProposerConfig.options``)."""

    provider: Provider | None = Field(None, description="anthropic, bedrock or vertex; default from the environment.")
    region: str | None = Field(None, description="Bedrock AWS region or Vertex region.")
    project_id: str | None = Field(None, description="Vertex project (default ANTHROPIC_VERTEX_PROJECT_ID).")
    thinking: Literal["off", "adaptive"] = Field("off", description="'adaptive' lets Claude decide when to think.")
    thinking_budget: int | None = Field(None, ge=1024,
                                        description="Fixed extended-thinking budget "
                                                    "(older models; overrides 'thinking').")


def resolve_provider(options: ClaudeOptions, env: dict[str, str] | os._Environ[str] = os.environ) -> Provider:
    """Explicit option first, then the environment conventions of Claude Code."""
    if options.provider:
        return options.provider
    if env.get("CLAUDE_CODE_USE_BEDROCK", "").lower() in ("1", "true", "yes"):
        return "bedrock"
    if env.get("CLAUDE_CODE_USE_VERTEX", "").lower() in ("1", "true", "yes") or env.get("ANTHROPIC_VERTEX_PROJECT_ID"):
        return "vertex"
    return "anthropic"


def _credentials_problem(provider: Provider, options: ClaudeOptions) -> str | None:
    env = os.environ
    if provider == "anthropic":
        if any(env.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE")):
            return None
        return ("ANTHROPIC_API_KEY is not set: export it, or configure Bedrock (CLAUDE_CODE_USE_BEDROCK=1) "
                "or Vertex (ANTHROPIC_VERTEX_PROJECT_ID), or run with --proposer offline")
    if provider == "bedrock":
        if env.get("AWS_BEARER_TOKEN_BEDROCK") or importlib.util.find_spec("boto3") is not None:
            return None
        return "Bedrock needs AWS credentials through boto3 (pip install boto3) or AWS_BEARER_TOKEN_BEDROCK"
    if not (options.region or env.get("CLOUD_ML_REGION")):
        return "Vertex needs a region: set CLOUD_ML_REGION (e.g. us-east5) or options.region"
    if not (options.project_id or env.get("ANTHROPIC_VERTEX_PROJECT_ID")):
        return "Vertex needs a project: set ANTHROPIC_VERTEX_PROJECT_ID"
    if importlib.util.find_spec("google.auth") is None:
        return "Vertex needs Google credentials through google-auth: pip install google-auth"
    return None


def make_client(provider: Provider, options: ClaudeOptions, base_url: str | None) -> anthropic.Anthropic:
    """The SDK client for the provider, with our retry and timeout settings."""
    common: dict[str, Any] = {"max_retries": 0, "timeout": options.timeout_s}  # retries: ours
    if base_url:
        common["base_url"] = base_url
    try:
        if provider == "bedrock":
            from anthropic import AnthropicBedrock

            return AnthropicBedrock(aws_region=options.region, **common)  # type: ignore[return-value]
        if provider == "vertex":
            from anthropic import AnthropicVertex

            vertex: dict[str, Any] = {"region": options.region} if options.region else {}
            project = options.project_id or os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID")
            if project:
                vertex["project_id"] = project
            return AnthropicVertex(**vertex, **common)  # type: ignore[return-value]
        return anthropic.Anthropic(**common)
    except (ValueError, TypeError, anthropic.AnthropicError) as exc:
        raise HarnessError(f"cannot set up the {provider} client: {' '.join(str(exc).split())}") from exc


# The HTTP status an error event's type would have had as a whole answer (its retry policy).
EVENT_STATUS = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429, "timeout_error": 504,
                "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                "not_found_error": 404, "request_too_large": 413, "billing_error": 402}
Abandoned = Callable[[dict[str, Any], str], None]  # (the message so far, why it was given up)


class StreamFault(Exception):
    """A streamed answer that broke off after it started; ``status`` is the HTTP status that
    decides whether it is retried (None: like a lost connection, always retried)."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


RETRYABLE = (anthropic.APIStatusError, anthropic.APIConnectionError, StreamFault)


def _wait_hint(exc: Exception) -> float | None:
    if isinstance(exc, anthropic.APIStatusError):
        return status_wait_hint(exc.status_code, exc.response.headers)
    if isinstance(exc, StreamFault):
        return status_wait_hint(exc.status, {})
    return status_wait_hint(None, {})


def _short(exc: Exception) -> str:
    if isinstance(exc, StreamFault):
        return exc.detail
    return _error_detail(exc) if isinstance(exc, anthropic.APIStatusError) else type(exc).__name__


def _event_fault(exc: anthropic.APIStatusError) -> StreamFault:
    """An ``event: error`` inside a 200 stream, as the fault its type stands for."""
    body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error")
    err: dict[str, Any] = inner if isinstance(inner, dict) else body
    kind = str(err.get("type") or "api_error")
    message = " ".join(str(err.get("message") or exc.message).split())
    return StreamFault(f"error event in the stream ({kind}: {message})", EVENT_STATUS.get(kind, 500))


def _error_detail(exc: anthropic.APIStatusError) -> str:
    body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error")
    err: dict[str, Any] = inner if isinstance(inner, dict) else body
    kind, message = err.get("type", ""), err.get("message") or exc.message
    return " ".join(f"{exc.status_code} {kind}: {message}".split())


def describe_failure(exc: Exception, model: str, retries: int) -> str:
    """One line for a call that failed for good."""
    if isinstance(exc, anthropic.AuthenticationError):
        return f"the API rejected the credentials ({_error_detail(exc)}): set a valid ANTHROPIC_API_KEY"
    if isinstance(exc, anthropic.PermissionDeniedError):
        return f"the API key may not use {model} ({_error_detail(exc)}): check the key's workspace or pass --model"
    if isinstance(exc, anthropic.NotFoundError):
        return f"model {model!r} was not found ({_error_detail(exc)}): pass --model with a model your key can use"
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code < 500 and exc.status_code not in (408, 409, 429):
        return f"the API rejected the request ({_error_detail(exc)})"
    if isinstance(exc, anthropic.APIStatusError):
        return (f"the API still failed after {retries} retries ({_error_detail(exc)}): "
                "try again later or raise max_retries")
    if isinstance(exc, StreamFault) and status_wait_hint(exc.status, {}) is None:
        return f"the API rejected the request mid-stream ({exc.detail})"
    if isinstance(exc, StreamFault):
        return (f"the API's message stream still broke off after {retries} retries ({exc.detail}): "
                "try again later or raise max_retries")
    return (f"could not reach the API after {retries} retries ({' '.join(str(exc).split())}): "
            "check the network or ANTHROPIC_BASE_URL")


def _clean_block(block: dict[str, Any]) -> dict[str, Any] | None:
    """A response content block in the minimal form the API accepts back as input."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")} if block.get("text", "").strip() else None
    if kind == "tool_use":
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": block.get("input")}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data", "")}
    return {k: v for k, v in block.items() if v is not None}


class AnthropicBackend(ChatBackend):
    """Messages API requests and responses (the transcript is stored in Messages format)."""

    def __init__(self, model: str, options: ClaudeOptions, client_factory: Any) -> None:
        self.model = model
        self.options = options
        self._client_factory = client_factory
        self._client: anthropic.Anthropic | None = None

    def request(self, system: str, messages: list[dict[str, Any]], tools: list[ToolDef]) -> dict[str, Any]:
        specs = anthropic_tools(tools)
        specs[-1] = {**specs[-1], "cache_control": EPHEMERAL}
        request: dict[str, Any] = {
            "model": self.model, "max_tokens": self.options.max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": EPHEMERAL}],
            "tools": specs, "messages": _with_breakpoint(messages),
        }
        if self.options.thinking_budget:
            request["thinking"] = {"type": "enabled", "budget_tokens": self.options.thinking_budget}
        elif self.options.thinking == "adaptive":
            request["thinking"] = {"type": "adaptive"}
        return request

    def send(self, request: dict[str, Any], notice: Notice, abandoned: Abandoned) -> dict[str, Any]:
        if self._client is None:
            self._client = self._client_factory()
        o = self.options
        try:
            return call_with_retries(lambda: self._stream(request, abandoned), RETRYABLE, _wait_hint,
                                     max_retries=o.max_retries, base_s=o.retry_base_s,
                                     max_wait_s=o.retry_max_wait_s, notice=notice, what=_short)
        except (anthropic.APIStatusError, anthropic.APIConnectionError, StreamFault) as exc:
            line = describe_failure(exc, self.model, o.max_retries)
            if isinstance(exc, anthropic.BadRequestError) and "prompt is too long" in line.lower():
                raise ContextTooLong(line) from exc
            raise ModelCallError(line) from exc

    def _stream(self, request: dict[str, Any], abandoned: Abandoned) -> dict[str, Any]:
        """One streamed call; the final Message as a dict. A stream that breaks off after
        ``message_start`` is charged (``abandoned``) and raised as a StreamFault (retried); one
        that ends after ``message_delta`` without ``message_stop`` is accepted as it stands."""
        assert self._client is not None
        seen: set[str] = set()
        with self._client.messages.stream(**request) as stream:
            try:
                for event in stream:
                    seen.add(event.type)
                if "message_stop" in seen:
                    return stream.get_final_message().model_dump(mode="json")
                if "message_delta" in seen:  # every content block and the stop reason arrived
                    return _snapshot(stream) or {}
                if "message_start" in seen:
                    raise StreamFault("the stream ended before the message did (connection cut)")
            except BaseException as exc:  # Ctrl-C included: a started stream is billed
                partial = _snapshot(stream) if "message_start" in seen else None
                fault = _as_fault(exc)
                if partial is not None:
                    abandoned(partial, str(fault or exc) or type(exc).__name__)
                if fault is not None and fault is not exc:
                    raise fault from exc
                raise
            kind = stream.response.headers.get("content-type", "no content type")
        raise ModelCallError(f"the API answered {stream.response.status_code} with {kind}, not a message "
                             f"stream: is a proxy in the way? Check ANTHROPIC_BASE_URL ({self._client.base_url})")

    def parse(self, response: dict[str, Any]) -> Turn:
        blocks = [b for b in (_clean_block(b) for b in response.get("content") or []) if b is not None]
        calls = self.calls_in({"content": blocks})
        stop = STOPS.get(response.get("stop_reason") or "", "other")
        if stop == "max_tokens" and calls:  # the last tool input was cut off mid-way
            calls[-1].error = "your output hit max_tokens, so this call's input is incomplete: write shorter code"
        seen = normalize_usage(response.get("usage")).input_seen
        text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
        message = {"role": "assistant", "content": blocks} if blocks else None
        return Turn(text=text, calls=calls, stop=stop, input_tokens=seen, message=message)

    def calls_in(self, message: dict[str, Any]) -> list[ToolCall]:
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        return [ToolCall(b["id"], b["name"], b.get("input")) for b in blocks if b.get("type") == "tool_use"]

    def results(self, answered: list[tuple[ToolCall, ToolOutcome]]) -> list[dict[str, Any]]:
        blocks = []
        for call, outcome in answered:
            content: Any = outcome.text
            if outcome.images:  # the Messages API takes images inside a tool result: Claude sees its plots
                content = [{"type": "text", "text": outcome.text}, *(
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": base64.b64encode(png).decode("ascii")}}
                    for _, png in outcome.images)]
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call.id, "content": content}
            if outcome.is_error:
                block["is_error"] = True
            blocks.append(block)
        return [{"role": "user", "content": blocks}]

    def add_user_text(self, messages: list[dict[str, Any]], text: str) -> None:
        block = {"type": "text", "text": text}
        if messages and messages[-1].get("role") == "user":
            content = messages[-1]["content"]
            messages[-1]["content"] = ([{"type": "text", "text": content}] if isinstance(content, str)
                                       else list(content)) + [block]
        else:
            messages.append({"role": "user", "content": [block]})


def _snapshot(stream: Any) -> dict[str, Any] | None:
    """The message a stream has built so far (None before ``message_start``)."""
    try:
        return stream.current_message_snapshot.model_dump(mode="json")
    except AssertionError:  # the SDK's way of saying no message_start arrived
        return None


def _as_fault(exc: BaseException) -> Exception | None:
    """A mid-stream failure as the retryable error it is (None: not one, e.g. Ctrl-C)."""
    if isinstance(exc, StreamFault | anthropic.APIConnectionError):
        return exc
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code < 300:  # an ``event: error``
        return _event_fault(exc)
    if isinstance(exc, ValueError):  # json.JSONDecodeError, or tool input JSON that does not parse
        return StreamFault(f"a garbled line in the stream ({' '.join(str(exc).split())[:120]})")
    return None


def _with_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of the transcript with a cache breakpoint on its last block (incremental caching)."""
    copied = json.loads(json.dumps(messages))
    if copied and isinstance(copied[-1].get("content"), list) and copied[-1]["content"]:
        copied[-1]["content"][-1] = {**copied[-1]["content"][-1], "cache_control": EPHEMERAL}
    return copied


@register_proposer("claude")
class ClaudeProposer(Proposer):
    """Claude proposes ideas as code through tool use."""

    def __init__(self, config: ProposerConfig) -> None:
        super().__init__(config)
        self.options = parse_options(ClaudeOptions, config.options, "claude")
        self.model = config.model or DEFAULT_MODEL
        self.provider = resolve_provider(self.options)
        budget = self.options.thinking_budget
        if budget is not None and budget >= self.options.max_tokens:
            raise HarnessError(f"claude option thinking_budget ({budget}) must be below max_tokens "
                               f"({self.options.max_tokens})")

    def check_ready(self) -> None:
        problem = _credentials_problem(self.provider, self.options)
        if problem is None and self.provider == "bedrock" and not self.config.model:
            problem = ("Bedrock names models by its own ids: pass --model with the Bedrock model or "
                       "inference-profile id of the Claude model to use")
        if problem:
            raise HarnessError(problem)
        if price_for(self.model) is None:
            raise HarnessError(f"no price for model {self.model!r} in {prices_path()}: add one there "
                               "(or point AAR_PRICES at your own table) so the cost budget can be enforced")
        make_client(self.provider, self.options, self.config.base_url)

    def backend(self) -> AnthropicBackend:
        return AnthropicBackend(self.model, self.options,
                                lambda: make_client(self.provider, self.options, self.config.base_url))

    def run(self, tools: ResearchTools) -> None:
        policy = ContextPolicy(max_chars=self.options.compact_chars, max_input_tokens=self.options.compact_tokens,
                               keep_rounds=self.options.keep_rounds)
        Conversation(self.backend(), tools, direction=self.config.direction, policy=policy,
                     max_nudges=self.options.max_nudges, max_lookups=self.options.max_lookups).run()


__all__ = ["ClaudeOptions", "ClaudeProposer", "DEFAULT_MODEL", "make_client", "resolve_provider"]
