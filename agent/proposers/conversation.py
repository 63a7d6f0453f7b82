"""The provider-neutral research conversation: ask the model, run the tools it calls, feed the
results back, save the transcript after every round, compact it when it grows, stop cleanly.

A ``ChatBackend`` (Anthropic Messages, OpenAI chat completions) builds requests, sends them
(the transport ``tools.model_call`` records) and translates responses into ``Turn``s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agent.prompting import prompt_text, render
from agent.proposers.base import BudgetStop, ContextTooLong, ResearchTools
from agent.proposers.tooling import ToolDef, ToolOutcome, available_tools, dispatch
from agent.proposers.views import budget_view, task_intro
from sandbox.errors import HarnessError

STATE_VERSION = 1


@dataclass
class ToolCall:
    """One tool call of a model turn; ``error`` is set when its arguments did not parse."""

    id: str
    name: str
    arguments: Any
    error: str | None = None


@dataclass
class Turn:
    """A model response in provider-neutral terms."""

    text: str
    calls: list[ToolCall]
    stop: str  # tool_use | end_turn | max_tokens | refusal | context | other
    input_tokens: int  # everything the model read, cached or not (for the context policy)
    message: dict[str, Any] | None  # the assistant message to keep (None when empty)


class ChatBackend(Protocol):
    def request(self, system: str, messages: list[dict[str, Any]], tools: list[ToolDef]) -> dict[str, Any]:
        """The full, JSON-able request for one model call."""

    def send(self, request: dict[str, Any], notice: Callable[[str], None],
             abandoned: Callable[[dict[str, Any], str], None]) -> dict[str, Any]:
        """The transport: send the request (retrying as the options say, each wait announced
        through ``notice``), return the response as a dict; ModelCallError when it fails.
        Each answer given up after it started (a stream broken off, then retried, or cancelled)
        goes to ``abandoned`` with what arrived and why, so that its cost is charged."""

    def parse(self, response: dict[str, Any]) -> Turn:
        """Translate a response."""

    def calls_in(self, message: dict[str, Any]) -> list[ToolCall]:
        """The tool calls of a stored assistant message (to answer them after an interruption)."""

    def results(self, answered: list[tuple[ToolCall, ToolOutcome]]) -> list[dict[str, Any]]:
        """Messages carrying tool results back."""

    def add_user_text(self, messages: list[dict[str, Any]], text: str) -> None:
        """Append user text (merged into a trailing user message where the API needs it)."""


class ContextPolicy(BaseModel):
    """When to compact the transcript into a table of attempts."""

    max_chars: int = Field(200_000, description="Compact when the JSON transcript exceeds this many characters.")
    max_input_tokens: int = Field(120_000, description="Compact when a call read more input tokens than this.")
    keep_rounds: int = Field(2, description="Most recent model turns (with their results) kept verbatim.")


class ConversationState(BaseModel):
    """What save_state persists so --resume continues the conversation."""

    version: int = Field(STATE_VERSION, description="Version of this state form.")
    intro: str = Field(description="The first user message (task card, baselines, direction).")
    messages: list[dict[str, Any]] = Field(default_factory=list, description="The provider-format transcript.")
    attempts: list[dict[str, Any]] = Field(default_factory=list, description="One row per experiment run.")
    pending: list[dict[str, Any]] = Field(default_factory=list,
                                          description="Results of a tool round not yet in the transcript.")
    nudges: int = Field(0, description="Consecutive turns without a tool call.")
    lookups: int = Field(0, description="Consecutive tool rounds without an experiment (look-ups only).")
    stopped_by: str | None = Field(None, description="Why the session stopped inside a tool round (a budget, "
                                   "Ctrl-C): what the calls it left open are told on resume.")
    summary: str = Field("", description="The longest prose summary so far (a shorter reply does not replace it).")
    compactions: int = Field(0, description="How often the transcript was compacted.")
    last_input_tokens: int = Field(0, description="Input tokens the last call read.")
    finished: bool = Field(False, description="True once the session ended.")


@dataclass
class Conversation:
    """Drives one research conversation through a backend."""

    backend: ChatBackend
    tools: ResearchTools
    direction: str | None = None
    policy: ContextPolicy = field(default_factory=ContextPolicy)
    max_nudges: int = 1
    max_lookups: int = 8

    def run(self) -> None:
        defs = available_tools(self.tools)
        system = render("system", idea_contract=prompt_text("idea_contract"))
        state = self._start()
        while not state.finished:
            self._maybe_compact(state)
            self._deliver(state)
            request = self.backend.request(system, state.messages, defs)
            try:
                turn = self.backend.parse(self.tools.model_call(request, self._transport))
            except ContextTooLong:
                if not self._compact_to_fit(state):
                    raise
                self._save(state)  # a resume starts from the compacted transcript
                continue
            state.last_input_tokens = turn.input_tokens
            if turn.message is not None:
                state.messages.append(turn.message)
                self._save(state)  # an interruption while its tools run is repaired on resume
            if turn.calls:
                self._answer(state, defs, turn.calls)
            else:
                self._no_call(state, turn)
            self._save(state)

    def _transport(self, request: dict[str, Any]) -> dict[str, Any]:
        def abandoned(partial: dict[str, Any], error: str) -> None:
            self.tools.charge_abandoned(request, partial, error)

        return self.backend.send(request, self.tools.notice, abandoned)

    def _deliver(self, state: ConversationState) -> None:
        """Reviews and steer messages that arrived since the last turn join the next user message
        (kept in the conversation, so the model keeps them in view and a resume does not repeat them)."""
        items = self.tools.inbox()
        if items:
            self.backend.add_user_text(state.messages, render("steering", items=items).strip())

    # --- start and resume ---------------------------------------------------------------
    def _start(self) -> ConversationState:
        saved = self.tools.load_state()
        if saved and saved.get("messages"):
            state = ConversationState.model_validate(saved)
            if state.finished:
                raise HarnessError("this session's conversation already finished: start a new session")
            self._repair(state)
            return state
        intro = task_intro(self.tools.task_card, self.tools.baselines,
                           self.direction or self.tools.direction, self.tools.budget_status())
        state = ConversationState(intro=intro)
        self.backend.add_user_text(state.messages, intro)
        return state

    def _repair(self, state: ConversationState) -> None:
        """After an interruption: answer tool calls left open, then tell the model it resumed."""
        last = state.messages[-1]
        open_calls = self.backend.calls_in(last) if last.get("role") == "assistant" else []
        done = {p["id"]: ToolOutcome(**p["outcome"]) for p in state.pending}
        reason = state.stopped_by or "interrupted"
        answered = [(c, done.get(c.id) or ToolOutcome(render("interrupted", reason=reason), is_error=True))
                    for c in open_calls]
        state.stopped_by = None
        if answered:
            state.messages.extend(self.backend.results(answered))
        state.pending = []
        note = render("resumed", interrupted=bool(answered) and len(done) < len(answered),
                      budget=budget_view(self.tools.budget_status()))
        self.backend.add_user_text(state.messages, note)

    # --- one round ----------------------------------------------------------------------
    def _answer(self, state: ConversationState, defs: list[ToolDef], calls: list[ToolCall]) -> None:
        answered: list[tuple[ToolCall, ToolOutcome]] = []
        for call in calls:
            try:
                outcome = dispatch(self.tools, defs, call.name, call.arguments, call.error)
            except BudgetStop as stop:  # the calls left open hear this reason on resume
                state.stopped_by = str(stop)
                self._save(state)
                raise
            answered.append((call, outcome))
            if outcome.record is not None:
                state.attempts.append(outcome.record)
            state.pending.append({"id": call.id, "outcome": {
                "text": outcome.text, "is_error": outcome.is_error, "finished": outcome.finished}})
            self._save(state)  # a BudgetStop in the next call keeps this result for --resume
            if outcome.finished:
                break
        state.messages.extend(self.backend.results(answered))
        state.pending = []
        state.nudges = 0
        state.finished = any(o.finished for _, o in answered)
        if not state.finished:
            self._count_lookups(state, calls)

    def _count_lookups(self, state: ConversationState, calls: list[ToolCall]) -> None:
        """Look-up rounds in a row are bounded: the model is told at the cap, stopped at twice it."""
        if any(c.name == "run_experiment" for c in calls):
            state.lookups = 0
            return
        state.lookups += 1
        if state.lookups >= 2 * self.max_lookups:
            self._save(state)
            raise BudgetStop(f"the model looked things up {state.lookups} turns in a row without running "
                             "an experiment (raise the option max_lookups to allow more)")
        if state.lookups == self.max_lookups:
            self.backend.add_user_text(state.messages, render("lookups", turns=self.max_lookups))

    def _no_call(self, state: ConversationState, turn: Turn) -> None:
        if turn.stop == "context" and self._compact(state):
            return
        prose = turn.text.strip()
        # A summary written as prose is kept even if finish never comes; a shorter reply after it
        # ("as I said above…") does not replace it.
        if prose and len(prose) >= len(state.summary):
            self.tools.save_summary(prose)
            state.summary = prose
        if state.nudges >= self.max_nudges:
            reason = "refused" if turn.stop == "refusal" else "stopped calling tools"
            summary = state.summary or f"The model {reason}; the session ended without a summary."
            self.tools.finish(summary)
            state.finished = True
            return
        state.nudges += 1
        self.backend.add_user_text(state.messages, render("nudge", reason=turn.stop))

    def _save(self, state: ConversationState) -> None:
        self.tools.save_state(state.model_dump(mode="json"))

    # --- context policy -----------------------------------------------------------------
    def _maybe_compact(self, state: ConversationState) -> None:
        size = len(json.dumps(state.messages))
        if size > self.policy.max_chars or state.last_input_tokens > self.policy.max_input_tokens:
            self._compact(state)

    def _compact_to_fit(self, state: ConversationState) -> bool:
        """After a prompt-too-long refusal: compact, keeping fewer rounds each time it recurs."""
        return any(self._compact(state, keep) for keep in range(self.policy.keep_rounds, -1, -1))

    def _compact(self, state: ConversationState, keep_rounds: int | None = None) -> bool:
        """Replace all but the last rounds by the intro plus a table of attempts."""
        keep = self.policy.keep_rounds if keep_rounds is None else keep_rounds
        starts = [i for i, m in enumerate(state.messages) if m.get("role") == "assistant"]
        if len(starts) <= keep:
            return False
        cut = starts[-keep] if keep > 0 else len(state.messages)
        dropped = state.messages[:cut]
        notes = _last_text(dropped)
        kept = state.messages[cut:]
        state.messages = []
        # The intro again, but with today's budget (the saved one says "0 attempts used").
        intro = task_intro(self.tools.task_card, self.tools.baselines, self.direction or self.tools.direction,
                           self.tools.budget_status(), compacted=True)
        self.backend.add_user_text(state.messages, render(
            "compaction", intro=intro.strip(), attempts=state.attempts, dropped=len(dropped), notes=notes))
        state.messages.extend(kept)
        if kept and kept[-1].get("role") == "assistant" and not kept[-1].get("tool_calls") \
                and not _has_tool_use(kept[-1]):
            self.backend.add_user_text(state.messages, render("nudge", reason="compacted"))
        state.compactions += 1
        state.last_input_tokens = 0
        return True


def _has_tool_use(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_use" for b in content if isinstance(b, dict))


def _last_text(messages: list[dict[str, Any]], limit: int = 1500) -> str:
    """The model's last prose before a cut, so its plan survives compaction."""
    for message in reversed(messages):
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str) and content.strip():
            return content.strip()[-limit:]
        if isinstance(content, list):
            text = "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
            if text.strip():
                return text.strip()[-limit:]
    return ""
