"""What the model is shown: tool results turned into prompt text through prompts/ templates.

Everything passes through ``scrub`` first, so held-out figures never reach a prompt even if a
caller hands over a full result. Inputs are the plain dicts the research tools return; the
normalisers accept both nested statistics (``{"mean": ..}``) and flat numbers.
"""

from __future__ import annotations

from typing import Any

from agent.prompting import render
from sandbox.results import hide_heldout

scrub = hide_heldout  # held-out figures are hidden in one place: sandbox/results.py
TRACEBACK_CHARS = 4000
LOG_TAIL_CHARS = 2000
MAX_DIAGNOSTICS = 16


def _mean(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("mean")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _values(value: Any) -> list[float]:
    return [float(v) for v in value.get("values", [])] if isinstance(value, dict) else []


def _cell(text: Any) -> str:
    """Text safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "/")[:200]


def _tail(text: str | None, limit: int) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else "…" + text[-limit:]


def _attempt_id(d: dict[str, Any]) -> str | None:
    for key in ("attempt_id", "id", "attempt"):
        if isinstance(d.get(key), str) and d[key]:
            return d[key]
    return None


def _paired(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or _mean(value) is None:
        return None
    return {"mean": _mean(value), "ci95": value.get("ci95"), "p_value": value.get("p_value"),
            "n": value.get("n", "?")}


def _seed_row(seed: dict[str, Any]) -> dict[str, Any]:
    note = seed.get("error") or "; ".join(seed.get("warnings") or [])
    return {"seed": seed.get("seed", "?"), "status": seed.get("status", "?"), "pgr": _mean(seed.get("pgr")),
            "dev_acc": _mean(seed.get("dev_acc")), "runtime_s": _mean(seed.get("runtime_s")),
            "note": _cell(note)}


def _failure(seeds: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any] | None:
    for seed in seeds:
        if seed.get("status", "ok") != "ok":
            return {"seed": seed.get("seed", "?"), "error": _cell(seed.get("error") or seed.get("status")),
                    "traceback": _tail(seed.get("traceback"), TRACEBACK_CHARS),
                    "log_tail": _tail(seed.get("log_tail"), LOG_TAIL_CHARS)}
    if result.get("status", "ok") != "ok":  # failed before any seed ran (e.g. rejected code)
        return {"seed": "-", "error": _cell(result.get("error") or result.get("status")),
                "traceback": _tail(result.get("traceback"), TRACEBACK_CHARS),
                "log_tail": _tail(result.get("log_tail"), LOG_TAIL_CHARS)}
    return None


def _diagnostics(seeds: list[dict[str, Any]]) -> dict[str, str]:
    merged: dict[str, list[str]] = {}
    for seed in seeds:
        for key, value in (seed.get("diagnostics") or {}).items():
            text = f"{value:.4g}" if isinstance(value, float) else _cell(value)[:40]
            merged.setdefault(_cell(key)[:40], []).append(text)
    return {k: " / ".join(v) for k, v in list(merged.items())[:MAX_DIAGNOSTICS]}


def result_view(result: dict[str, Any]) -> dict[str, Any]:
    """The feedback template's view of one experiment result (proposer-visible figures only)."""
    r = scrub(result)
    seeds = [s for s in r.get("seeds") or [] if isinstance(s, dict)]
    pgr = r.get("pgr")
    return {
        "attempt_id": _attempt_id(r), "name": _cell(r.get("name") or r.get("idea") or "idea"),
        "status": r.get("status", "?"), "pgr": _mean(pgr), "ci95": r.get("pgr_ci95", r.get("ci95")),
        "pgr_values": _values(pgr), "n_seeds": pgr.get("n", len(seeds)) if isinstance(pgr, dict) else len(seeds),
        "dev_acc": _mean(r.get("dev_acc")), "dev_acc_values": _values(r.get("dev_acc")),
        "weak_acc": _mean(r.get("weak_acc_dev")), "ceiling_acc": _mean(r.get("ceiling_acc_dev")),
        "vs_vanilla": _paired(r.get("vs_vanilla")), "runtime_s": _mean(r.get("runtime_s")) or 0.0,
        "warnings": [_cell(w) for w in r.get("warnings") or []], "diagnostics": _diagnostics(seeds),
        "seeds": [_seed_row(s) for s in seeds], "failure": _failure(seeds, r),
    }


def budget_view(status: dict[str, Any] | None) -> dict[str, Any]:
    s = status or {}
    return {"attempts_used": s.get("attempts_used", 0), "attempts_left": s.get("attempts_left"),
            "seed_runs_used": s.get("seed_runs_used", 0), "seed_runs_left": s.get("seed_runs_left"),
            "cost_usd": float(s.get("cost_usd") or 0.0), "cost_left_usd": s.get("cost_left_usd"),
            "elapsed_s": float(s.get("elapsed_s") or 0.0), "time_left_s": s.get("time_left_s")}


def attempt_record(result: dict[str, Any], name: str) -> dict[str, Any]:
    """One row of the compaction table (JSON-able, kept in the proposer state)."""
    view = result_view(result)
    return {"attempt_id": view["attempt_id"], "name": name, "status": view["status"],
            "pgr": view["pgr"], "ci95": view["ci95"]}


def leaderboard_row(row: dict[str, Any]) -> dict[str, Any]:
    r = scrub(row)
    vs = r.get("vs_vanilla")
    return {"attempt_id": _attempt_id(r) or "-", "name": _cell(r.get("name") or r.get("idea") or "?"),
            "status": r.get("status", "ok"), "pgr": _mean(r.get("pgr", r.get("pgr_mean"))),
            "ci95": r.get("pgr_ci95", r.get("ci95")), "vs_vanilla": _mean(vs),
            "p_value": vs.get("p_value") if isinstance(vs, dict) else r.get("vs_vanilla_p")}


def baseline_row(row: dict[str, Any]) -> dict[str, Any]:
    r = scrub(row)
    vs = r.get("vs_vanilla")
    return {"name": _cell(r.get("name") or r.get("idea") or "?"), "pgr": _mean(r.get("pgr", r.get("pgr_mean"))),
            "ci95": r.get("pgr_ci95", r.get("ci95")), "vs_vanilla": _mean(vs),
            "p_value": vs.get("p_value") if isinstance(vs, dict) else r.get("p_value")}


def feedback_text(result: dict[str, Any], budget: dict[str, Any] | None) -> str:
    return render("feedback", result=result_view(result), budget=budget_view(budget))


def leaderboard_text(rows: list[dict[str, Any]]) -> str:
    return render("leaderboard", rows=[leaderboard_row(r) for r in rows])


def attempt_text(attempt: dict[str, Any]) -> str:
    a = scrub(attempt)
    nested = a.get("result") if isinstance(a.get("result"), dict) else None
    view = {"attempt_id": _attempt_id(a) or "?", "name": _cell(a.get("name") or a.get("idea") or "?"),
            "parent_id": a.get("parent_id"), "hypothesis": a.get("hypothesis") or a.get("rationale"),
            "code": a.get("code"), "result": result_view(nested if nested is not None else a)}
    if nested is None and "status" not in a:
        view["result"] = None
    return render("attempt", attempt=view)


def task_intro(card: dict[str, Any], baselines: list[dict[str, Any]], direction: str | None,
               budget: dict[str, Any] | None) -> str:
    return render("task_card", card=scrub(card), baselines=[baseline_row(b) for b in baselines],
                  direction=direction, budget=budget_view(budget))
