"""The research loop: a proposer drives tools that score ideas in the sandbox and commit
every attempt to the lab repository as it happens.

    run_research(config) -> SessionOutcome
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.budget import BudgetTracker
from agent.novelty import Duplicate, NoveltyGate
from agent.progress import Reporter
from agent.proposers.base import BudgetStop, ExperimentSpec, Proposer, Transport
from agent.racing import lower_bound, make_racer
from agent.session_setup import SessionContext
from experiments.forum import Forum
from experiments.schemas import Attempt, TokenUsage
from sandbox.errors import BudgetExhaustedError, HarnessError
from sandbox.results import IdeaResult

STATE_FILE = "proposer_state.json"
PENDING_FILE = "pending_calls.json"
MAX_CODE_CHARS = 200_000
MAX_REFUSALS = 20  # repeats in a row before the session stops (a proposer stuck on one idea)


class SessionOutcome(BaseModel):
    """How a session ended."""

    session_id: str = Field(description="The session's id (its branch in the lab).")
    attempts: int = Field(description="Attempts recorded in this session, all runs included.")
    stop_reason: str = Field(description="Why the loop stopped.")
    best_attempt: str | None = Field(None, description="Attempt id with the best dev PGR mean.")
    best_pgr: float | None = Field(None, description="That attempt's dev PGR mean.")
    cost_usd: float = Field(0.0, description="Model cost of the session.")
    resume_command: str | None = Field(None, description="How to continue, when interrupted.")
    replay_mismatches: int = Field(0, description="In a replay: requests that differed from the recording.")


class ReplayExhausted(BudgetStop):
    """All recorded model responses have been replayed."""


class LoopTools:
    """The ResearchTools a proposer drives (see agent/proposers/base.py)."""

    def __init__(self, ctx: SessionContext, reporter: Reporter,
                 recorded: list[dict[str, Any]] | None = None) -> None:
        self.ctx = ctx
        self.reporter = reporter
        self.task_card = ctx.card.model_dump()
        self.baselines = ctx.baseline_summary
        self.direction = ctx.manifest.direction
        self.tracker: BudgetTracker = ctx.tracker
        self._pending, self._pending_usage = self._left_over_calls()
        self._clear_left_over = bool(self._pending)
        self.tracker.cost_usd += self._pending_usage.cost_usd
        self._recorded = recorded
        self.replay_mismatches = 0
        self.finished_summary: str | None = None
        self.novelty = NoveltyGate.of(ctx.attempts)
        self.racer = make_racer(ctx)
        self.refusals = 0

    def _left_over_calls(self) -> tuple[list[dict[str, Any]], TokenUsage]:
        """Calls an earlier run made after its last attempt (on resume): spent, and held by the
        next attempt."""
        text = self.ctx.store.read_session_file(self.ctx.session_id, PENDING_FILE)
        calls: list[dict[str, Any]] = json.loads(text) if text else []
        usage = sum((TokenUsage(**{**c["usage"], "cost_usd": c["cost_usd"]}) for c in calls), TokenUsage())
        return calls, usage

    # --- model calls -------------------------------------------------------------------
    def model_call(self, request: dict[str, Any], transport: Transport) -> dict[str, Any]:
        self.tracker.check()
        if self._recorded is not None:
            if not self._recorded:
                raise ReplayExhausted("replay complete: every recorded response was used")
            entry = self._recorded.pop(0)
            if entry.get("request") != request:
                self.replay_mismatches += 1
            response = entry["response"]
        else:
            response = transport(request)
        usage, cost = self._usage_of(response, request.get("model") or self.ctx.manifest.model or "")
        self.tracker.cost_usd += cost
        self._pending_usage = self._pending_usage + usage
        self._pending.append({"request": request, "response": response,
                              "usage": usage.model_dump(), "cost_usd": cost})
        self.reporter.model_call(usage.input_tokens + usage.output_tokens, cost)
        return response

    @staticmethod
    def _usage_of(response: dict[str, Any], model: str) -> tuple[TokenUsage, float]:
        if "usage" not in response:  # the offline proposer: no model, no cost
            return TokenUsage(), 0.0
        from agent.costs import cost_of

        usage, cost = cost_of(model, response)
        fields = {k: v for k, v in usage.items() if k in TokenUsage.model_fields}
        return TokenUsage(**{**fields, "cost_usd": cost}), cost

    # --- experiments -----------------------------------------------------------------
    def run_experiment(self, spec: ExperimentSpec) -> dict[str, Any]:
        self.tracker.check()
        duplicate = self.novelty.check(spec.code)
        if duplicate is not None:
            return self._refuse(spec, duplicate)
        self.refusals = 0
        index = self.ctx.store.next_attempt_index(self.ctx.session_id)
        self.reporter.step(f"attempt {index}: running {spec.name[:60]}")
        self.ctx.in_flight = spec
        result, status, log = self._score(spec)
        attempt = self._record(index, spec, result, status, log)
        self.ctx.in_flight = None
        self.tracker.attempts += 1
        if result is not None and result.pgr is not None:
            if self.tracker.best_pgr is None or result.pgr.mean > self.tracker.best_pgr:
                self.tracker.best_pgr = result.pgr.mean
                self.ctx.best = (attempt.attempt_id, result.pgr.mean)
        self.reporter.attempt_done(self.tracker.attempts, attempt.attempt_id, spec.name,
                                   result.for_proposer() if result else None, status, self.ctx.best,
                                   self.tracker.status())
        return self._feedback(attempt, result, log)

    def _score(self, spec: ExperimentSpec) -> tuple[IdeaResult | None, str, str]:
        if len(spec.code) > MAX_CODE_CHARS:
            return None, "invalid", f"idea code is {len(spec.code)} characters; the limit is {MAX_CODE_CHARS}"
        with tempfile.TemporaryDirectory(prefix="aar-idea-") as tmp:
            path = Path(tmp) / "idea.py"
            path.write_text(spec.code, encoding="utf-8")
            try:
                result = (self.racer.evaluate(path, spec.name) if self.racer else
                          self.ctx.evaluator.evaluate(path, self.ctx.manifest.seeds, name=spec.name))
            except BudgetExhaustedError as exc:
                self.tracker.request_stop(str(exc))
                raise BudgetStop(str(exc)) from exc
        return result, result.status, "\n\n".join(
            f"--- seed {s.seed} ({s.status}) ---\n{s.log_tail}" for s in result.seeds)

    def _record(self, index: int, spec: ExperimentSpec, result: IdeaResult | None, status: str,
                log: str) -> Attempt:
        attempt = self.ctx.new_attempt(index, spec, result, status, log, self._pending, self._pending_usage)
        self.ctx.store.record_attempt(attempt, {PENDING_FILE: "[]"} if self._clear_left_over else None)
        self._clear_left_over = False
        self.ctx.attempts.append(attempt)
        self.novelty.add(attempt)
        self._pending, self._pending_usage = [], TokenUsage()
        return attempt

    def _refuse(self, spec: ExperimentSpec, duplicate: Duplicate) -> dict[str, Any]:
        """A repeat of an earlier attempt: not run, not recorded, no attempt spent."""
        self.refusals += 1
        if self.refusals > MAX_REFUSALS:
            raise BudgetStop(f"the proposer repeated earlier attempts {MAX_REFUSALS} times in a row")
        self.reporter.line(f"refused a repeat of {duplicate.attempt_id}: {spec.name[:60]}")
        return {"attempt_id": None, "name": spec.name, "status": "duplicate",
                "duplicate_of": duplicate.attempt_id, "error": duplicate.message(),
                "budget": self.tracker.status()}

    def keep_pending_calls(self) -> None:
        """Model calls made after the last attempt are committed too (no attempt holds them)."""
        if self._pending:
            self.ctx.store.write_session_file(self.ctx.session_id, PENDING_FILE, json.dumps(self._pending))

    def record_abandoned(self, spec: ExperimentSpec, reason: str) -> Attempt:
        index = self.ctx.store.next_attempt_index(self.ctx.session_id)
        return self._record(index, spec, None, "abandoned", reason)

    def _feedback(self, attempt: Attempt, result: IdeaResult | None, log: str) -> dict[str, Any]:
        view: dict[str, Any] = {"attempt_id": attempt.attempt_id, "name": attempt.name,
                                "status": attempt.status, "budget": self.tracker.status()}
        if result is None:
            view["error"] = log
            return view
        view.update(result.for_proposer())
        return view

    # --- looking around ----------------------------------------------------------------
    def leaderboard(self, limit: int = 10) -> list[dict[str, Any]]:
        scored = [a for a in self.ctx.attempts if a.result is not None and lower_bound(a.result) is not None]
        scored.sort(key=lambda a: -lower_bound(a.result))  # type: ignore[arg-type,operator]  # leaders by lower bound
        return [{"attempt_id": a.attempt_id, "name": a.name, "status": a.status,
                 "pgr": a.result.pgr.mean, "pgr_ci95": a.result.pgr_ci95,  # type: ignore[union-attr]
                 "pgr_lower_bound": lower_bound(a.result), "n_seeds": len(a.result.seeds),  # type: ignore[arg-type]
                 "dev_acc": a.result.dev_acc.mean if a.result.dev_acc else None}  # type: ignore[union-attr]
                for a in scored[:limit]]

    def show_attempt(self, attempt_id: str) -> dict[str, Any]:
        match = [a for a in self.ctx.attempts if a.attempt_id.startswith(attempt_id)]
        if len(match) != 1:
            raise HarnessError(f"attempt {attempt_id!r} not found in this session" if not match
                               else f"attempt prefix {attempt_id!r} is ambiguous")
        a = match[0]
        return {"attempt_id": a.attempt_id, "name": a.name, "hypothesis": a.rationale, "code": a.code,
                "parent_id": a.parent_id, "status": a.status,
                "result": a.result.for_proposer() if a.result else None}

    def finish(self, summary: str) -> None:
        self.finished_summary = summary
        self.ctx.store.write_session_file(self.ctx.session_id, "summary.md", summary)
        self.tracker.request_stop("the proposer finished")

    def save_state(self, state: dict[str, Any]) -> None:
        self.ctx.store.write_session_file(self.ctx.session_id, STATE_FILE, json.dumps(state))

    def load_state(self) -> dict[str, Any] | None:
        text = self.ctx.store.read_session_file(self.ctx.session_id, STATE_FILE)
        return json.loads(text) if text else None

    def budget_status(self) -> dict[str, Any]:
        return self.tracker.status()

    # --- the findings forum (shared by every researcher of the lab) ----------------------
    def post_finding(self, title: str, body: str = "", attempt_id: str | None = None) -> dict[str, Any]:
        finding = Forum(self.ctx.store).post(self.ctx.session_id, self.ctx.researcher, title, body,
                                             attempt_id, self.ctx.manifest.direction)
        self.reporter.line(f"{self.ctx.researcher} posted a finding: {finding.title[:80]}")
        return finding.model_dump()

    def read_findings(self, limit: int = 20) -> list[dict[str, Any]]:
        group = self.ctx.manifest.extra.get("group")
        return [f.model_dump() for f in Forum(self.ctx.store).findings(limit, session_prefix=group)]


@contextmanager
def graceful_interrupts(tracker: BudgetTracker, reporter: Reporter, enabled: bool = True) -> Iterator[None]:
    """First Ctrl-C: finish the attempt in flight, then stop. Second: abandon it now."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = {"n": 0}

    def handler(signum: int, frame: object) -> None:
        presses["n"] += 1
        if presses["n"] == 1:
            tracker.request_stop("interrupted (Ctrl-C)")
            reporter.line("Ctrl-C: finishing the attempt in flight, then stopping "
                          "(press again to abandon it)")
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def drive(proposer: Proposer, tools: LoopTools, reporter: Reporter, install_signals: bool = True) -> str:
    """Run the proposer until it stops; returns the stop reason. Commits as it goes."""
    with graceful_interrupts(tools.tracker, reporter, install_signals):
        try:
            proposer.run(tools)
            reason = tools.tracker.stop_reason or "the proposer stopped"
        except BudgetStop as stop:
            reason = str(stop)
        except KeyboardInterrupt:
            reason = "interrupted (Ctrl-C twice): the attempt in flight was abandoned"
            if tools.ctx.in_flight is not None:
                tools.record_abandoned(tools.ctx.in_flight, reason)
        except HarnessError as exc:  # e.g. the model API failed for good: stop, keep what we have
            reason = f"failed: {exc}"
    tools.keep_pending_calls()
    reporter.stop(reason)
    return reason


def outcome(ctx: SessionContext, reason: str) -> SessionOutcome:
    interrupted = reason.startswith(("interrupted", "failed"))
    return SessionOutcome(
        session_id=ctx.session_id, attempts=len(ctx.attempts), stop_reason=reason,
        best_attempt=ctx.best[0] if ctx.best else None, best_pgr=ctx.best[1] if ctx.best else None,
        cost_usd=ctx.tracker.cost_usd,
        resume_command=f"aar research --resume {ctx.session_id}" if interrupted else None,
    )


__all__ = ["LoopTools", "SessionOutcome", "drive", "outcome"]
