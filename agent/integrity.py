"""End-of-session integrity checks (run after the proposer stops, never charged to its budget):
the top ideas by lower bound are re-run on fresh seeds, and the best one on a second task."""

from __future__ import annotations

import tempfile
from pathlib import Path

from agent.progress import Reporter
from agent.racing import lower_bound
from agent.session_setup import SessionContext
from experiments.checks import IdeaCheck, save_checks
from experiments.schemas import Attempt
from sandbox.cache import open_cache
from sandbox.evaluator import Evaluator
from sandbox.tasks import get_task


def top_attempts(attempts: list[Attempt], n: int) -> list[Attempt]:
    scored = [a for a in attempts if a.result is not None and lower_bound(a.result) is not None]
    return sorted(scored, key=lambda a: -lower_bound(a.result))[:n]  # type: ignore[arg-type,operator]


def _check(evaluator: Evaluator, attempt: Attempt, kind: str, seeds: list[int]) -> IdeaCheck:
    with tempfile.TemporaryDirectory(prefix="aar-check-") as tmp:
        path = Path(tmp) / "idea.py"
        path.write_text(attempt.code, encoding="utf-8")
        r = evaluator.evaluate(path, seeds, name=attempt.name, charge=False)
    return IdeaCheck(attempt_id=attempt.attempt_id, kind=kind, task=evaluator.card.name, seeds=seeds,  # type: ignore[arg-type]
                     status=r.status, pgr=r.pgr.mean if r.pgr else None,
                     heldout_pgr=r.heldout_pgr.mean if r.heldout_pgr else None,
                     search_pgr=attempt.result.pgr.mean if attempt.result and attempt.result.pgr else None)


def run_checks(ctx: SessionContext, confirm_top: int, confirm_seeds: int, transfer_task: str | None,
               reporter: Reporter) -> list[IdeaCheck]:
    """Confirm the top ideas on ``confirm_seeds`` fresh seeds; transfer the best to ``transfer_task``."""
    top = top_attempts(ctx.attempts, max(confirm_top, 1 if transfer_task else 0))
    checks: list[IdeaCheck] = []
    used = max([len(a.result.seeds) for a in ctx.attempts if a.result] + [len(ctx.manifest.seeds)])
    fresh = list(range(used, used + confirm_seeds))
    if confirm_top and top and fresh:
        cache = open_cache(ctx.cache.spec, n_weak_seeds=fresh[-1] + 1, show_progress=False)
        evaluator = Evaluator(cache, isolation=ctx.evaluator.isolation)
        for attempt in top[:confirm_top]:
            reporter.step(f"confirming {attempt.name[:50]} on fresh seeds {fresh}")
            checks.append(_check(evaluator, attempt, "confirm", fresh))
    if transfer_task and top:
        cache = open_cache(get_task(transfer_task), n_weak_seeds=len(ctx.manifest.seeds), show_progress=False)
        reporter.step(f"transfer check of {top[0].name[:50]} on {cache.spec.name}")
        checks.append(_check(Evaluator(cache, isolation=ctx.evaluator.isolation), top[0], "transfer",
                             list(ctx.manifest.seeds)))
    if checks:
        save_checks(ctx.store, ctx.session_id, checks)
    return checks
