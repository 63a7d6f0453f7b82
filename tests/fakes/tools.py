"""An in-memory ResearchTools for proposer tests: records every call, scores nothing.

Results are real ``IdeaResult`` models with canned figures (held-out ones included, so a test
can check they never reach the model). Model calls go through the real transport and are
charged with ``agent.costs.cost_of``, or answered from a recording (replay).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

from agent.costs import cost_of
from agent.proposers.base import (
    AttemptView,
    BaselineRow,
    BudgetStatus,
    BudgetStop,
    ExperimentSpec,
    Feedback,
    LeaderboardRow,
    Transport,
)
from experiments.steering import Delivery
from experiments.workspace import Workspace
from sandbox.errors import HarnessError
from sandbox.results import IdeaResult, PairedDiff, ResultView, SeedResult, Stat

CARD = {"name": "wordnet-10", "description": "WordNet noun supersense of a word and its gloss.",
        "classes": ["artifact", "person", "act", "communication", "state", "attribute", "cognition",
                    "group", "location", "food"],
        "n_unlabeled": 600, "n_test": 400, "weak_model": "tfidf-logreg", "strong_model": "all-MiniLM-L6-v2",
        "layers": ["layer_2", "layer_4", "final"], "feature_dim": 384, "weak_seeds": [0, 1, 2],
        "cache_key": "abc123", "kind": "features"}
HELDOUT_MARK = 0.777  # a held-out figure no prompt may contain
CONFIRM_MARK = 0.6543  # a figure of dev's confirmation part, which no prompt may contain either


def _stat(values: list[float]) -> Stat:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return Stat(mean=statistics.fmean(values), sd=sd, n=len(values), values=values)


def canned_result(name: str, pgrs: list[float], *, status: str = "ok", error: str | None = None,
                  traceback: str | None = None, warnings: list[str] | None = None) -> IdeaResult:
    """An IdeaResult with the given per-seed dev PGRs (or a failure on every seed)."""
    weak, ceiling = 0.40, 0.70
    if status != "ok":
        seeds = [SeedResult(seed=s, status=status, error=error, traceback=traceback, runtime_s=1.5,
                            log_tail="loading features\nepoch 1") for s in range(len(pgrs))]
        return IdeaResult(idea=name, task="wordnet-10", cache_key="abc123", status=status, seeds=seeds,
                          weak_acc_dev=weak, ceiling_acc_dev=ceiling, runtime_s=4.5, isolation="process")
    seeds = [SeedResult(seed=s, status="ok", pgr=p, dev_acc=weak + p * (ceiling - weak), heldout_pgr=HELDOUT_MARK,
                        heldout_acc=HELDOUT_MARK, confirm_pgr=CONFIRM_MARK, confirm_acc=CONFIRM_MARK, runtime_s=2.0,
                        warnings=warnings or [],
                        diagnostics={"kept_fraction": 0.61}) for s, p in enumerate(pgrs)]
    half = 1.96 * statistics.stdev(pgrs) / len(pgrs) ** 0.5 if len(pgrs) > 1 else None
    return IdeaResult(
        idea=name, task="wordnet-10", cache_key="abc123", status="ok", seeds=seeds, pgr=_stat(pgrs),
        pgr_ci95=half, dev_acc=_stat([s.dev_acc or 0.0 for s in seeds]), heldout_acc=_stat([HELDOUT_MARK]),
        heldout_pgr=_stat([HELDOUT_MARK]), confirm_pgr=_stat([CONFIRM_MARK]), confirm_acc=_stat([CONFIRM_MARK]),
        vs_vanilla=PairedDiff(mean=statistics.fmean(pgrs) - 0.2, ci95=0.05,
                                                               p_value=0.031, n=len(pgrs)),
        weak_acc_dev=weak, ceiling_acc_dev=ceiling, runtime_s=2.0 * len(pgrs), warnings=warnings or [],
        isolation="process")


class RecordingTools:
    """ResearchTools for tests. ``results`` maps an idea name to its canned IdeaResult
    (default: a fixed PGR); ``leak_heldout`` builds the proposer's view from the full model dump,
    held-out figures included, instead of ``for_proposer`` (the view's type must drop them)."""

    def __init__(self, *, max_attempts: int | None = None, max_cost: float | None = None,
                 results: Callable[[ExperimentSpec], IdeaResult] | None = None, direction: str | None = None,
                 state: dict[str, Any] | None = None, replay: list[dict[str, Any]] | None = None,
                 leak_heldout: bool = False, workspace: Workspace | None = None) -> None:
        self.task_card = dict(CARD)
        self.workspace = workspace  # None: the session offers no file tools
        self.baselines = [BaselineRow(name="vanilla_soft", pgr=0.2, pgr_ci95=0.06),
                          BaselineRow(name="confident_only", pgr=0.28, pgr_ci95=0.02)]
        self.direction = direction
        self.max_attempts, self.max_cost = max_attempts, max_cost
        self.results = results or (lambda spec: canned_result(spec.name, [0.4, 0.5, 0.45]))
        self.leak_heldout = leak_heldout
        self.replay = list(replay) if replay is not None else None
        self.initial_state = state
        self.calls: list[dict[str, Any]] = []
        self.experiments: list[ExperimentSpec] = []
        self.attempts: dict[str, AttemptView] = {}
        self.finished: list[str] = []
        self.summaries: list[str] = []
        self.notices: list[str] = []
        self.findings: list[dict[str, Any]] = []
        self.saved: list[dict[str, Any]] = []
        self.cost = 0.0
        self.waiting: list[Delivery] = []  # reviews and messages handed over at the next turn

    def inbox(self) -> list[Delivery]:
        items, self.waiting = self.waiting, []
        return items

    # --- model calls --------------------------------------------------------------------
    def model_call(self, request: dict[str, Any], transport: Transport) -> dict[str, Any]:
        if self.max_cost is not None and self.cost >= self.max_cost:
            raise BudgetStop(f"cost budget reached (${self.cost:.4f})")
        json.dumps(request)  # the request must be JSON-able to be recorded
        response = self.replay.pop(0) if self.replay is not None else transport(request)
        usage = cost_of(request["model"], response)
        self.cost += usage.cost_usd
        self.calls.append({"request": request, "response": response, "usage": usage.model_dump(),
                           "cost": usage.cost_usd})
        return response

    def charge_abandoned(self, request: dict[str, Any], partial: dict[str, Any], error: str) -> None:
        usage = cost_of(request["model"], partial)
        self.cost += usage.cost_usd
        self.calls.append({"request": request, "response": partial, "usage": usage.model_dump(),
                           "cost": usage.cost_usd, "error": error})

    # --- research tools -----------------------------------------------------------------
    def run_experiment(self, spec: ExperimentSpec) -> Feedback:
        if self.max_attempts is not None and len(self.experiments) >= self.max_attempts:
            raise BudgetStop(f"attempt budget reached ({len(self.experiments)}/{self.max_attempts})")
        self.experiments.append(spec)
        attempt_id = f"a{len(self.experiments):03d}"
        result = self.results(spec)
        view = (ResultView.model_validate(result.model_dump(mode="json")) if self.leak_heldout
                else result.for_proposer())
        self.attempts[attempt_id] = AttemptView(attempt_id=attempt_id, name=spec.name, hypothesis=spec.hypothesis,
                                                code=spec.code, parent_id=spec.parent_id, status=result.status,
                                                result=view)
        return Feedback(attempt_id=attempt_id, name=spec.name, status=result.status, result=view,
                        budget=self.budget_status())

    def leaderboard(self, limit: int = 10) -> list[LeaderboardRow]:
        rows = [a for a in self.attempts.values() if a.result and a.result.status == "ok" and a.result.pgr]
        rows.sort(key=lambda a: -a.result.pgr.mean)  # type: ignore[union-attr]
        return [LeaderboardRow(attempt_id=a.attempt_id, name=a.name, status=a.status,
                               pgr=a.result.pgr.mean, pgr_ci95=a.result.pgr_ci95,  # type: ignore[union-attr]
                               vs_vanilla=a.result.vs_vanilla.mean if a.result.vs_vanilla else None,  # type: ignore[union-attr]
                               vs_vanilla_p=a.result.vs_vanilla.p_value if a.result.vs_vanilla else None)  # type: ignore[union-attr]
                for a in rows[:limit]]

    def show_attempt(self, attempt_id: str) -> AttemptView:
        if attempt_id not in self.attempts:
            raise HarnessError(f"no attempt {attempt_id!r} in this session: see show_leaderboard")
        return self.attempts[attempt_id]

    def finish(self, summary: str) -> None:
        self.finished.append(summary)

    def save_summary(self, summary: str) -> None:
        self.summaries.append(summary)

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def post_finding(self, title: str, body: str = "", attempt_id: str | None = None) -> dict[str, Any]:
        finding = {"id": f"f{len(self.findings) + 1}", "title": title, "body": body, "attempt_id": attempt_id}
        self.findings.append(finding)
        return finding

    def read_findings(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.findings[-limit:]

    def save_state(self, state: dict[str, Any]) -> None:
        self.saved.append(json.loads(json.dumps(state)))  # must survive a JSON round trip

    def load_state(self) -> dict[str, Any] | None:
        return self.initial_state

    def budget_status(self) -> BudgetStatus:
        used = len(self.experiments)
        return BudgetStatus(attempts_used=used,
                            attempts_left=None if self.max_attempts is None else self.max_attempts - used,
                            cost_usd=round(self.cost, 4),
                            cost_left_usd=None if self.max_cost is None else max(0.0, self.max_cost - self.cost),
                            elapsed_s=12.0)
