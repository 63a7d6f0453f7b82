"""The research loop: a proposer drives tools that score ideas in the sandbox and commit
every attempt to the lab repository as it happens.

    run_research(config) -> SessionOutcome
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from agent import prior_work
from agent.analysis_runs import AnalysisRuns
from agent.budget import BudgetTracker
from agent.confirmation import TransferWatch
from agent.costs import cost_of
from agent.interrupts import graceful_interrupts
from agent.novelty import Duplicate, NoveltyGate
from agent.outcome import close_session
from agent.progress import Reporter
from agent.proposers.base import (
    AnalysisReply,
    AttemptView,
    BaselineRow,
    BudgetStatus,
    BudgetStop,
    Ending,
    ExperimentSpec,
    Feedback,
    ImportReply,
    LeaderboardRow,
    ModelCallError,
    Proposer,
    Transport,
)
from agent.racing import make_racer
from agent.session_setup import SessionContext, seed_runs
from experiments.forum import Forum
from experiments.layout import PENDING_CALLS_FILE, UNATTACHED_USAGE_FILE, LabDiskFull
from experiments.live_status import Running, clear_running, now_iso, publish_running
from experiments.schemas import Attempt, TokenUsage
from experiments.steering import Delivery
from experiments.steering import inbox as steering_inbox
from experiments.workspace import Workspace
from sandbox.errors import BudgetExhaustedError, HarnessError
from sandbox.execution.analysis import write_idea
from sandbox.results import IdeaResult

STATE_FILE = "proposer_state.json"
SUMMARY_FILE = "summary.md"
MAX_CODE_CHARS = 200_000  # stated in prompts/idea_contract.md
MAX_REFUSALS = 20  # repeats in a row before the session stops (a proposer stuck on one idea)
STEERING_KEY = "steering"  # a transcript entry holding what reached the researcher (reviews, messages)


class ReplayExhausted(BudgetStop):
    """All recorded model responses have been replayed."""


class LoopTools:
    """The ResearchTools a proposer drives (see agent/proposers/base.py)."""

    def __init__(self, ctx: SessionContext, reporter: Reporter,
                 recorded: list[dict[str, Any]] | None = None, recorded_ids: list[str] | None = None) -> None:
        self.ctx = ctx
        self.reporter = reporter
        self.task_card = ctx.card.model_dump()
        self.baselines = [BaselineRow.model_validate(row) for row in ctx.baseline_summary]
        self.direction = ctx.manifest.direction
        self.tracker: BudgetTracker = ctx.tracker
        self._pending = self._left_over_calls()
        self._pending_file = bool(self._pending)  # state/pending_calls.json holds calls to clear
        self.tracker.cost_usd += self._pending_usage().cost_usd
        self._recorded = recorded
        self._recorded_ids = list(recorded_ids or [])  # a replay: the original attempt ids, in order
        self.replayed_ids: dict[str, str] = {}  # original attempt id -> the replay's
        self.replay_mismatches = 0
        self.call_in_flight = False
        self.novelty = NoveltyGate.of(ctx.attempts)
        self.racer = make_racer(ctx)
        self.transfer = TransferWatch(ctx, ctx.config.run.transfer_task) if ctx.config.run.transfer_task else None
        self.refusals = 0
        self.delivered = {d["id"] for e in [*(e for a in ctx.attempts for e in a.transcript), *self._pending]
                          for d in e.get(STEERING_KEY, [])}  # what earlier runs delivered: never twice
        # The researcher's files: what the session's branch holds (a resumed session's), else empty.
        self.workspace = Workspace.from_tree(ctx.store.objects, ctx.store.workspace_tree(ctx.session_id))
        self.analyses = AnalysisRuns(ctx, reporter, self.workspace, self.workspace_tree)

    def workspace_tree(self) -> bytes | None:
        """The workspace's git tree, written once per change (None while it is empty)."""
        return self.workspace.to_tree(self.ctx.store.objects)

    def _left_over_calls(self) -> list[dict[str, Any]]:
        """Calls an earlier run made after its last attempt (on resume): spent, and held by the
        next attempt."""
        text = self.ctx.store.read_session_file(self.ctx.session_id, PENDING_CALLS_FILE)
        return json.loads(text) if text else []

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def _pending_usage(self) -> TokenUsage:
        # Older labs kept a call's cost beside its usage; it lives in the TokenUsage now.
        return sum((TokenUsage.model_validate({"cost_usd": c.get("cost_usd", 0.0), **c["usage"]})
                    for c in self._pending), TokenUsage())

    def pending_files(self) -> dict[str, str]:
        """The state files that hold the calls no attempt holds yet (written in one commit)."""
        self._pending_file = bool(self._pending)
        return {PENDING_CALLS_FILE: json.dumps(self._pending),
                UNATTACHED_USAGE_FILE: self._pending_usage().model_dump_json()}

    # --- model calls -------------------------------------------------------------------
    def model_call(self, request: dict[str, Any], transport: Transport) -> dict[str, Any]:
        self.tracker.check()
        if self._recorded is not None:
            response = self._replayed(request)
        else:
            self.call_in_flight = True  # a Ctrl-C now cancels the call (see agent/interrupts.py)
            try:
                response = transport(request)
            except ModelCallError as exc:
                if exc.partial is not None:  # a cut-off answer was billed for what it carried
                    self._charge(request, exc.partial, error=str(exc))
                raise
            finally:
                self.call_in_flight = False
        self._charge(request, response)
        return response

    def charge_abandoned(self, request: dict[str, Any], partial: dict[str, Any], error: str) -> None:
        if self._recorded is None:  # a replay calls no model
            self._charge(request, partial, error=error)

    def _charge(self, request: dict[str, Any], response: dict[str, Any], error: str | None = None) -> None:
        """Record one call for the next attempt and count its cost. Replayed responses cost
        nothing now; the offline proposer's carry no usage at all."""
        usage = TokenUsage() if self._recorded is not None or "usage" not in response else cost_of(
            request.get("model") or self.ctx.manifest.model or "", response)
        self.tracker.cost_usd += usage.cost_usd
        call = {"request": request, "response": response, "usage": usage.model_dump()}
        self._pending.append({**call, "error": error} if error else call)
        self.reporter.model_call(usage.total_tokens, usage.cost_usd)

    def _replayed(self, request: dict[str, Any]) -> dict[str, Any]:
        self._recorded_steering()  # a proposer that did not ask still gets what the original got
        if not self._recorded:
            raise ReplayExhausted("replay complete: every recorded response was used", "finished")
        entry = self._recorded.pop(0)
        while entry.get("error") and self._recorded and self._recorded[0].get("request") == entry.get("request"):
            entry = self._recorded.pop(0)  # an answer given up and retried: the retry answered
        if entry.get("request") != self._as_recorded(request):
            self.replay_mismatches += 1
        if entry.get("error"):  # the call failed for good in the original: so it does here
            raise ModelCallError(f"replayed a call that failed in the original: {entry['error']}")
        return self._as_replayed(entry["response"])

    def _as_recorded(self, value: dict[str, Any]) -> dict[str, Any]:
        """``value`` with the replay's attempt ids written as the original's (to compare requests)."""
        return _renamed(value, {new: old for old, new in self.replayed_ids.items()})

    def _as_replayed(self, value: dict[str, Any]) -> dict[str, Any]:
        """A recorded response naming the original's attempt ids, naming the replay's instead."""
        return _renamed(value, self.replayed_ids)

    def notice(self, text: str) -> None:
        self.reporter.step(text)

    # --- steering: reviews and messages from people, between turns ------------------------
    def inbox(self) -> list[Delivery]:
        """What people said since the last turn (reviews of this session's attempts, messages to
        this researcher), read from the lab, so another process's review arrives; each item once,
        across resumes, recorded in the transcript so a replay delivers the same at the same turn."""
        self.tracker.check()  # a turn the budgets forbid delivers nothing: it stays for a resume
        if self._recorded is not None:
            new = self._recorded_steering()
        else:
            new = [d for d in steering_inbox(self.ctx.store, self.ctx.session_id, self.ctx.researcher)
                   if d.id not in self.delivered]
            if new:
                self._pending.append({STEERING_KEY: [d.model_dump() for d in new], "usage": {}})
                self._apply(new)
        return new

    def _recorded_steering(self) -> list[Delivery]:
        """In a replay: the deliveries recorded before the next call, with attempt ids of this session."""
        new: list[Delivery] = []
        while self._recorded and STEERING_KEY in self._recorded[0]:
            entry = self._recorded.pop(0)
            self._pending.append(entry)
            original = self.ctx.manifest.parent_session or ""
            new += [Delivery.model_validate({**d,
                                             "attempt_id": d["attempt_id"].replace(original, self.ctx.session_id, 1)
                                             if d.get("attempt_id") else None}) for d in entry[STEERING_KEY]]
        self._apply(new)
        return new

    def _apply(self, new: list[Delivery]) -> None:
        """Reviews take effect at once: a rejected attempt leaves the best, the racer's bar and
        the leaderboard tool."""
        for d in new:
            self.delivered.add(d.id)
            if d.kind == "review" and d.attempt_id and d.verdict:
                self.ctx.reviews[d.attempt_id] = (d.verdict, d.text)
                self.reporter.line(f"review of {d.attempt_id}: {d.verdict} ({d.author}: {d.text[:80]})")
            else:
                self.reporter.line(f"message from {d.author}: {d.text[:100]}")
        if any(d.kind == "review" for d in new):
            self.ctx.update_best()
            if self.racer is not None:
                self.racer.rebase(a.result for a in self.ctx.attempts if a.attempt_id not in self.ctx.rejected)

    # --- experiments -----------------------------------------------------------------
    def run_experiment(self, spec: ExperimentSpec) -> Feedback:
        self.tracker.check()
        self._refuse_before_running(spec)
        duplicate = self.novelty.check(spec.code, self.workspace.identity())
        if duplicate is not None:
            return self._refuse(spec, duplicate)
        self.refusals = 0
        index = self.ctx.store.next_attempt_index(self.ctx.session_id)
        self.reporter.step(f"attempt {index}: running {spec.name[:60]}")
        self.ctx.in_flight = spec
        self._announce(index, spec)  # the dashboard's live view shows what is being scored
        try:
            result, log = self._score(spec)
        finally:
            clear_running(self.ctx.store.git_dir, self.ctx.session_id, self.ctx.researcher)
        attempt = self._record(index, spec, result, result.status, log)
        self.ctx.in_flight = None
        self.tracker.attempts += 1
        self.tracker.seed_runs += seed_runs(result)
        self.ctx.update_best()
        # the stored figures, as the best beside them (the model gets the rounded feedback)
        self.reporter.attempt_done(self.tracker.attempts, attempt.attempt_id, spec.name, result.model_dump(mode="json"),
                                   result.status, self.ctx.best, self.tracker.status())
        if self.transfer is not None:  # a new leader is scored on the transfer task at once
            with self.tracker.off_the_clock():
                self.transfer.after_attempt(self.reporter)
        return self._feedback(attempt, result)

    def _announce(self, index: int, spec: ExperimentSpec) -> None:
        seeds = self.ctx.manifest.seeds[:self.tracker.seed_runs_left()]
        publish_running(self.ctx.store.git_dir, Running(
            session_id=self.ctx.session_id, researcher=self.ctx.researcher, index=index, idea=spec.name,
            seeds=seeds, started_at=now_iso()))

    def _refuse_before_running(self, spec: ExperimentSpec) -> None:
        """Mistakes the model can fix cost no attempt: it hears why and tries again."""
        if len(spec.code) > MAX_CODE_CHARS:
            raise HarnessError(f"the idea's code is {len(spec.code):,} characters; the limit is "
                               f"{MAX_CODE_CHARS:,}: write a shorter idea file (no attempt was spent)")
        if spec.parent_id is not None and not any(a.attempt_id == spec.parent_id for a in self.ctx.attempts):
            raise HarnessError(f"parent_id {spec.parent_id!r} is no attempt of this session: give an "
                               "attempt_id from show_leaderboard, or none (no attempt was spent)")

    def _score(self, spec: ExperimentSpec) -> tuple[IdeaResult, str]:
        with tempfile.TemporaryDirectory(prefix="aar-idea-") as tmp:
            path = Path(tmp) / "idea.py"
            if self.workspace.files:  # a multi-file idea: the workspace on its import path, read-only
                name = f"workspace/{self.workspace.check_path(spec.path)}" if spec.path else "idea.py"
                path = write_idea(spec.code, name, Path(tmp), self.workspace.text_files())
            else:
                path.write_text(spec.code, encoding="utf-8")
            try:
                left = self.tracker.seed_runs_left()  # the last attempt may run on fewer seeds
                result = (self.racer.evaluate(path, spec.name, max_seeds=left) if self.racer else
                          self.ctx.evaluator.evaluate(path, self.ctx.manifest.seeds[:left], name=spec.name))
            except BudgetExhaustedError as exc:
                self.tracker.request_stop(str(exc))
                raise BudgetStop(str(exc)) from exc
        return result, "\n\n".join(f"--- seed {s.seed} ({s.status}) ---\n{s.log_tail}" for s in result.seeds)

    def _record(self, index: int, spec: ExperimentSpec, result: IdeaResult | None, status: str,
                log: str) -> Attempt:
        attempt = self.ctx.new_attempt(index, spec, result, status, log, self._pending, self._pending_usage())
        if self.workspace.files:  # what it ran with: the snapshot itself is in its folder
            attempt.extra["workspace"] = {"entry": spec.path, "files": sorted(self.workspace.files),
                                          "modules": bool(self.workspace.identity())}
        if self._recorded_ids:  # a replay: this attempt stands for the original's next one
            self.replayed_ids[self._recorded_ids.pop(0)] = attempt.attempt_id
        self._pending = []
        files = {**(self.pending_files() if self._pending_file else {}),
                 **self.analyses.predictions_file(attempt.attempt_id, result)}  # for later analyses
        try:
            self.ctx.store.record_attempt(attempt, files or None, self.workspace_tree())
        except LabDiskFull as full:  # the session stops; an attempt written from the lab's reserve counts
            if full.recorded:
                self.ctx.attempts.append(attempt)
                self.ctx.in_flight = None
            raise
        self.ctx.attempts.append(attempt)
        self.novelty.add(attempt, self.workspace.identity())
        return attempt

    def _refuse(self, spec: ExperimentSpec, duplicate: Duplicate) -> Feedback:
        """A repeat of an earlier attempt: not run, not recorded, no attempt spent."""
        self.refusals += 1
        if self.refusals > MAX_REFUSALS:
            raise BudgetStop(f"the proposer repeated earlier attempts {MAX_REFUSALS} times in a row")
        self.reporter.line(f"refused a repeat of {duplicate.attempt_id}: {spec.name[:60]}")
        return Feedback(attempt_id=None, name=spec.name, status="duplicate", duplicate_of=duplicate.attempt_id,
                        error=duplicate.message(), budget=self.budget_status())

    def record_abandoned(self, spec: ExperimentSpec, reason: str) -> Attempt:
        index = self.ctx.store.next_attempt_index(self.ctx.session_id)
        self.ctx.in_flight = None
        return self._record(index, spec, None, "abandoned", reason)

    def _feedback(self, attempt: Attempt, result: IdeaResult) -> Feedback:
        return Feedback(attempt_id=attempt.attempt_id, name=attempt.name, status=attempt.status,
                        result=result.for_proposer(), budget=self.budget_status())

    # --- analysis runs (agent/analysis_runs.py) --------------------------------------------
    def run_analysis(self, name: str, code: str | None, path: str | None) -> AnalysisReply:
        return self.analyses.run(name, code, path, self.budget_status)

    # --- looking around: the leaderboard and prior work (agent/prior_work.py) ----------------
    def leaderboard(self, limit: int = 10) -> list[LeaderboardRow]:
        return prior_work.leaderboard(self.ctx, limit)

    def import_attempt(self, attempt_id: str) -> ImportReply:
        return prior_work.import_attempt(self.ctx, self.workspace, self.reporter, attempt_id)

    def show_attempt(self, attempt_id: str) -> AttemptView:
        return prior_work.attempt_view(prior_work.find_attempt(self.ctx, attempt_id))

    def save_summary(self, summary: str) -> None:
        """Keep the model's summary (a later one replaces it)."""
        self.ctx.store.write_session_file(self.ctx.session_id, SUMMARY_FILE, summary)

    def finish(self, summary: str) -> None:
        self.save_summary(summary)
        self.tracker.request_stop("the proposer finished", "finished")

    def save_state(self, state: dict[str, Any]) -> None:
        # The calls made so far travel with the state: a crash loses at most the call in flight.
        # ... and so do the workspace's files, so an edit is never lost to an interruption.
        self.ctx.store.write_session_files(self.ctx.session_id, {STATE_FILE: json.dumps(state),
                                                                 **(self.pending_files() if self.has_pending else {})},
                                           self.workspace_tree())

    def load_state(self) -> dict[str, Any] | None:
        text = self.ctx.store.read_session_file(self.ctx.session_id, STATE_FILE)
        return json.loads(text) if text else None

    def budget_status(self) -> BudgetStatus:
        return BudgetStatus.model_validate(self.tracker.status())

    # --- the findings forum (shared by every researcher of the lab) ----------------------
    def post_finding(self, title: str, body: str = "", attempt_id: str | None = None) -> dict[str, Any]:
        finding = Forum(self.ctx.store).post(self.ctx.session_id, self.ctx.researcher, title, body,
                                             attempt_id, self.ctx.manifest.direction)
        self.reporter.line(f"{self.ctx.researcher} posted a finding: {finding.title[:80]}")
        return finding.model_dump()

    def read_findings(self, limit: int = 20) -> list[dict[str, Any]]:
        group, replayed = self.ctx.manifest.run.group, self.ctx.manifest.parent_session
        # A replay re-lives its original's past: what the original posted later is not shown to it.
        return [f.model_dump() for f in Forum(self.ctx.store).findings(None, session_prefix=group)
                if f.session_id != replayed][:limit]


def drive(proposer: Proposer, tools: LoopTools, reporter: Reporter,
          install_signals: bool = True) -> tuple[str, Ending]:
    """Run the proposer until it stops; returns why and how it ended. Commits as it goes; an
    unexpected error still commits the calls made and marks the session failed, then propagates."""
    tools.tracker.start_clock()  # the time budget counts the research, not the setup before it
    with graceful_interrupts(tools, reporter, install_signals):
        try:
            proposer.run(tools)
            reason, ending = tools.tracker.stop_reason or "the proposer stopped", tools.tracker.stop_ending
            if tools.tracker.stop_reason is None:
                ending = "finished"
        except BudgetStop as stop:
            reason, ending = str(stop), stop.ending
        except KeyboardInterrupt:
            reason, ending = _interrupted(tools), "interrupted"
        except HarnessError as exc:  # e.g. the model API failed for good: stop, keep what we have
            reason, ending = f"failed: {exc}", "failed"
        except BaseException:  # a bug: keep what was spent, mark the session, keep the traceback
            close_session(tools.ctx, "failed", tools.pending_files() if tools.has_pending else None)
            raise
    close_session(tools.ctx, ending, tools.pending_files() if tools.has_pending else None)
    reporter.stop(reason)
    return reason, ending


def _renamed(value: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """``value`` (JSON-able) with every occurrence of each key of ``names`` replaced by its value
    (attempt ids are unique within the lab, so a plain text replacement hits nothing else)."""
    if not names:
        return value
    text = json.dumps(value)
    for old, new in names.items():
        text = text.replace(old, new)
    return json.loads(text)


def _interrupted(tools: LoopTools) -> str:
    if tools.ctx.in_flight is not None:
        reason = "interrupted (Ctrl-C twice): the attempt in flight was abandoned"
        tools.record_abandoned(tools.ctx.in_flight, reason)
        return reason
    return tools.tracker.stop_reason or "interrupted (Ctrl-C)"


__all__ = ["LoopTools", "drive"]
