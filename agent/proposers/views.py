"""What the model is shown: the typed results of the research tools turned into prompt text
through prompts/ templates.

Inputs are the models of the proposer contract (agent/proposers/base.py) and
``sandbox.results.ResultView``, which has no held-out field: held-out figures cannot reach a
prompt. Each function below builds one template's view, field by field.
"""

from __future__ import annotations

from typing import Any

from agent.prompting import render
from agent.proposers.base import (
    AnalysisReply,
    AttemptView,
    BaselineRow,
    BudgetStatus,
    Feedback,
    ImportReply,
    LeaderboardRow,
)
from sandbox.results import ResultView, SeedView, Stat

TRACEBACK_CHARS = 4000
LOG_TAIL_CHARS = 2000
MAX_DIAGNOSTICS = 16


def _cell(text: Any) -> str:
    """Text safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "/")[:200]


def _tail(text: str | None, limit: int) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else "…" + text[-limit:]


def _mean(stat: Stat | None) -> float | None:
    return stat.mean if stat is not None else None


def _seed_row(seed: SeedView) -> dict[str, Any]:
    note = seed.error or "; ".join(seed.warnings)
    return {"seed": seed.seed, "status": seed.status, "pgr": seed.pgr, "dev_acc": seed.dev_acc,
            "runtime_s": seed.runtime_s, "note": _cell(note)}


def _failure_view(seed: str | int, error: str | None, traceback: str | None, log_tail: str | None) -> dict[str, Any]:
    return {"seed": seed, "error": _cell(error), "traceback": _tail(traceback, TRACEBACK_CHARS),
            "log_tail": _tail(log_tail, LOG_TAIL_CHARS)}


def _failure(result: ResultView) -> dict[str, Any] | None:
    for seed in result.seeds:
        if seed.status != "ok":
            return _failure_view(seed.seed, seed.error or seed.status, seed.traceback, seed.log_tail)
    return None


def _diagnostics(seeds: list[SeedView]) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for seed in seeds:
        for key, value in seed.diagnostics.items():
            text = f"{value:.4g}" if isinstance(value, float) else _cell(value)[:40]
            merged.setdefault(_cell(key)[:40], []).append(text)
    return {k: " / ".join(v) for k, v in list(merged.items())[:MAX_DIAGNOSTICS]}


def result_view(result: ResultView | None, attempt_id: str | None, name: str, status: str,
                error: str | None = None) -> dict[str, Any]:
    """The feedback template's view of one experiment (proposer-visible figures only); without a
    result (a refused repeat, code rejected before any seed ran) ``error`` says why."""
    view: dict[str, Any] = {
        "attempt_id": attempt_id, "name": _cell(name), "status": status, "pgr": None, "ci95": None,
        "pgr_values": [], "n_seeds": 0, "dev_acc": None, "dev_acc_values": [], "weak_acc": None,
        "ceiling_acc": None, "vs_vanilla": None, "runtime_s": 0.0, "warnings": [], "diagnostics": {},
        "seeds": [], "failure": _failure_view("-", error or status, None, None) if status != "ok" else None}
    if result is None:
        return view
    pgr, dev = result.pgr, result.dev_acc
    view.update(
        pgr=_mean(pgr), ci95=result.pgr_ci95, pgr_values=pgr.values if pgr else [],
        n_seeds=pgr.n if pgr else len(result.seeds), dev_acc=_mean(dev), dev_acc_values=dev.values if dev else [],
        weak_acc=result.weak_acc_dev, ceiling_acc=result.ceiling_acc_dev,
        vs_vanilla=result.vs_vanilla.model_dump() if result.vs_vanilla else None, runtime_s=result.runtime_s,
        warnings=[_cell(w) for w in result.warnings], diagnostics=_diagnostics(result.seeds),
        seeds=[_seed_row(s) for s in result.seeds],
        failure=_failure(result) or (view["failure"] if result.status != "ok" else None))
    return view


def feedback_view(feedback: Feedback) -> dict[str, Any]:
    return result_view(feedback.result, feedback.attempt_id, feedback.name, feedback.status, feedback.error)


def budget_view(status: BudgetStatus | None) -> dict[str, Any]:
    return (status or BudgetStatus()).model_dump()


def attempt_record(feedback: Feedback) -> dict[str, Any]:
    """One row of the compaction table (JSON-able, kept in the proposer state)."""
    result = feedback.result
    return {"attempt_id": feedback.attempt_id, "name": feedback.name, "status": feedback.status,
            "pgr": _mean(result.pgr) if result else None, "ci95": result.pgr_ci95 if result else None}


def leaderboard_row(row: LeaderboardRow) -> dict[str, Any]:
    return {"attempt_id": row.attempt_id, "name": _cell(row.name), "status": row.status, "pgr": row.pgr,
            "ci95": row.pgr_ci95, "lower": row.pgr_lower, "vs_vanilla": row.vs_vanilla, "p_value": row.vs_vanilla_p,
            "review": row.review, "review_note": _cell(row.review_note or "")[:200]}


def baseline_row(row: BaselineRow) -> dict[str, Any]:
    return {"name": _cell(row.name), "pgr": row.pgr, "ci95": row.pgr_ci95}


def feedback_text(feedback: Feedback, budget: BudgetStatus | None) -> str:
    return render("feedback", result=feedback_view(feedback), budget=budget_view(budget))


def import_text(reply: ImportReply) -> str:
    """The imported attempt (its code and dev result) and where its files now are."""
    a = reply.attempt
    view = {"attempt_id": a.attempt_id, "name": _cell(a.name), "parent_id": a.parent_id, "hypothesis": a.hypothesis,
            "code": "", "result": result_view(a.result, a.attempt_id, a.name, a.status) if a.result else None}
    return render("imported", reply={**reply.model_dump(), "attempt_view": view})


def analysis_text(reply: AnalysisReply) -> str:
    """An analysis run's result as text (its figures travel beside it, as the backend allows)."""
    return render("analysis", run=reply.model_dump(exclude={"output": {"figures": {"__all__": {"png"}}}}),
                  budget=budget_view(reply.budget))


def leaderboard_text(rows: list[LeaderboardRow]) -> str:
    return render("leaderboard", rows=[leaderboard_row(r) for r in rows])


def attempt_text(attempt: AttemptView) -> str:
    view = {"attempt_id": attempt.attempt_id, "name": _cell(attempt.name), "parent_id": attempt.parent_id,
            "hypothesis": attempt.hypothesis, "code": attempt.code,
            "result": result_view(attempt.result, attempt.attempt_id, attempt.name, attempt.status)
            if attempt.result else None}
    return render("attempt", attempt=view)


def task_intro(card: dict[str, Any], baselines: list[BaselineRow], direction: str | None,
               budget: BudgetStatus | None, compacted: bool = False) -> str:
    """The first user message; ``compacted``: as it heads a compacted transcript (no "begin")."""
    return render("task_card", card=card, baselines=[baseline_row(b) for b in baselines],
                  direction=direction, budget=budget_view(budget), compacted=compacted)
