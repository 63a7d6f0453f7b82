"""Confirmation and transfer checks, never charged to the session's budgets: each new best idea (by
experiments/ranking.py; rejected ideas are never picked) is scored on a second task as soon as it
leads (``TransferWatch``); at the end the top ideas are re-run on fresh seeds, and the final best on
the second task if not done yet."""

from __future__ import annotations

from agent.progress import Reporter
from agent.session_setup import SessionContext
from experiments.checks import IdeaCheck, add_checks, load_checks
from experiments.schemas import Attempt
from sandbox.cache.task_cache import open_cache
from sandbox.errors import HarnessError
from sandbox.scoring.evaluator import Evaluator
from sandbox.tasks import get_task


def top_attempts(ctx: SessionContext, n: int) -> list[Attempt]:
    """The session's ``n`` best attempts by the one ranking, rejected ones left out."""
    return ctx.ranked_attempts()[:n]


def _check(evaluator: Evaluator, attempt: Attempt, kind: str, seeds: list[int]) -> IdeaCheck:
    r = evaluator.evaluate_code(attempt.code, seeds, name=attempt.name, charge=False)
    return IdeaCheck(attempt_id=attempt.attempt_id, kind=kind, task=evaluator.card.name, seeds=seeds,
                     status=r.status, pgr=r.pgr.mean if r.pgr else None,
                     heldout_pgr=r.heldout_pgr.mean if r.heldout_pgr else None,
                     confirm_pgr=r.confirm_pgr.mean if r.confirm_pgr else None,
                     confirm_pgr_values=r.confirm_pgr.values if r.confirm_pgr else None,
                     search_pgr=attempt.result.pgr.mean if attempt.result and attempt.result.pgr else None)


def run_checks(ctx: SessionContext, confirm_top: int, confirm_seeds: int, transfer_task: str | None,
               reporter: Reporter) -> list[IdeaCheck]:
    """Confirm the top ideas on ``confirm_seeds`` fresh seeds, scored on dev's confirmation part
    (rows whose scores the search never saw) and held-out; transfer the best to ``transfer_task``."""
    top = top_attempts(ctx, max(confirm_top, 1 if transfer_task else 0))
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
        check = TransferWatch(ctx, transfer_task).check_best(reporter)  # unless it was checked as it led
        checks += [check] if check else []
    if checks:
        add_checks(ctx.store, ctx.session_id, checks)
    return checks


class TransferWatch:
    """Scores the session's best idea on the transfer task each time a new one leads, so the
    leaderboard shows whether a lead carries over to a task the search never saw while the
    search still runs (not only at its end). Each leader is checked once, on the session's seeds."""

    def __init__(self, ctx: SessionContext, task: str) -> None:
        self.ctx, self.task = ctx, task
        self._evaluator: Evaluator | None = None
        self.checked = {c.attempt_id for c in load_checks(ctx.store, ctx.session_id) if c.kind == "transfer"}
        self.failed: str | None = None

    def _transfer_evaluator(self) -> Evaluator:
        if self._evaluator is None:
            cache = open_cache(get_task(self.task), n_weak_seeds=len(self.ctx.manifest.seeds), show_progress=False)
            self._evaluator = Evaluator(cache, isolation=self.ctx.evaluator.isolation)
        return self._evaluator

    def check_best(self, reporter: Reporter) -> IdeaCheck | None:
        """The transfer check of the current leader, or None if it has one (or checks cannot run)."""
        top = top_attempts(self.ctx, 1)
        if not top or top[0].attempt_id in self.checked or self.failed:
            return None
        try:
            evaluator = self._transfer_evaluator()
        except HarnessError as exc:  # e.g. the transfer task has no weak-to-strong gap: say so once
            self.failed = str(exc)
            reporter.line(f"transfer checks on {self.task} cannot run: {exc}")
            return None
        reporter.step(f"transfer check of the new best {top[0].name[:50]} on {evaluator.card.name}")
        check = _check(evaluator, top[0], "transfer", list(self.ctx.manifest.seeds))
        self.checked.add(top[0].attempt_id)
        return check

    def after_attempt(self, reporter: Reporter) -> IdeaCheck | None:
        """Check a new leader and keep the check on the session branch at once."""
        check = self.check_best(reporter)
        if check is not None:
            add_checks(self.ctx.store, self.ctx.session_id, [check])
            shown = f"held-out PGR {check.heldout_pgr:+.3f}" if check.heldout_pgr is not None else check.status
            reporter.line(f"transfer of {check.attempt_id} to {check.task}: {shown}")
        return check
