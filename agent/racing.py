"""Racing over seeds: an idea earns more seeds only while it looks like it could lead.

Every idea runs on the first rung of the ladder (e.g. 1 seed). It climbs to the next rung
(3, then 8 seeds) when its mean so far reaches the bar: the current leader's lower 95% bound
(or, before any leader, always). Leaders are ranked by experiments/ranking.py (that lower bound;
rejected attempts never lead), so a lucky one-seed result can never lead; seed-runs, not ideas,
are what the scoring budget counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.session_setup import parse_ladder
from experiments.ranking import UNTESTED_PENALTY
from experiments.ranking import result_bound as lower_bound
from sandbox.results import IdeaResult

__all__ = ["DEFAULT_LADDER", "UNTESTED_PENALTY", "Racer", "lower_bound", "make_racer", "parse_ladder"]

if TYPE_CHECKING:
    from agent.session_setup import SessionContext
    from sandbox.scoring.evaluator import Evaluator

DEFAULT_LADDER = (1, 3, 8)


@dataclass
class Racer:
    """Runs ideas up the seed ladder against the best lower bound seen so far."""

    evaluator: Evaluator
    ladder: list[int]
    leader: float | None = None
    climbs: list[int] = field(default_factory=list)

    def observe(self, results: Iterable[IdeaResult | None]) -> None:
        for result in results:
            bound = None if result is None else lower_bound(result)
            if bound is not None and (self.leader is None or bound > self.leader):
                self.leader = bound

    def rebase(self, results: Iterable[IdeaResult | None]) -> None:
        """Forget the leader and take the best of ``results`` (after a review rejected one)."""
        self.leader = None
        self.observe(results)

    def promising(self, result: IdeaResult) -> bool:
        return result.status == "ok" and result.pgr is not None and (
            self.leader is None or result.pgr.mean >= self.leader)

    def evaluate(self, idea: Path, name: str, max_seeds: int | None = None) -> IdeaResult:
        """Score ``idea`` up the ladder; ``max_seeds`` (what the seed-run budget has left) caps the climb."""
        cap = self.ladder[-1] if max_seeds is None else max(1, max_seeds)
        result = self.evaluator.evaluate(idea, list(range(min(self.ladder[0], cap))), name=name)
        for rung in self.ladder[1:]:
            if not self.promising(result) or len(result.seeds) >= cap:
                break
            result = self.evaluator.extend(result, idea, list(range(len(result.seeds), min(rung, cap))))
        self.climbs.append(len(result.seeds))
        self.observe([result])
        return result


def make_racer(ctx: SessionContext) -> Racer | None:
    """The session's racer (its ladder is stored with the budgets), or None without racing."""
    ladder = ctx.manifest.run.racing
    if not ladder:
        return None
    racer = Racer(ctx.evaluator, ladder)
    racer.observe(a.result for a in ctx.attempts if a.attempt_id not in ctx.rejected)
    return racer
