"""The offline proposer shares a "new best" only by the one ranking (experiments/ranking.py: the
lower 95% bound, then the mean): a higher mean with a wider interval is no new best, as in the
closing line and the leaderboard."""

from __future__ import annotations

from agent.proposers.base import Feedback
from agent.proposers.offline import OfflineProposer
from sandbox.results import ResultView


class Posts:
    def __init__(self) -> None:
        self.posted: list[str] = []

    def post_finding(self, title: str, body: str, attempt_id: str | None) -> None:
        self.posted.append(title)


def _after(earlier: list[tuple[float, float]], pgr: float, ci: float) -> list[str]:
    state = {"step": 5, "results": [{"pgr": p, "ci95": c} for p, c in [*earlier, (pgr, ci)]]}
    feedback = Feedback(attempt_id="s-0005", name="idea", status="ok",
                        result=ResultView(idea="idea", status="ok", seeds=[], pgr_ci95=ci, weak_acc_dev=0.6,
                                          ceiling_acc_dev=0.8, runtime_s=1.0))
    tools = Posts()
    OfflineProposer._maybe_post(tools, state, "idea", feedback, {"loss": "aux"}, pgr)  # type: ignore[arg-type]
    return tools.posted


def test_a_higher_mean_with_a_lower_bound_below_the_best_is_no_new_best():
    assert _after([(0.862, 0.020)], 0.871, 0.040) == []  # lower bound 0.831 < 0.842


def test_a_higher_lower_bound_is_a_new_best():
    assert _after([(0.862, 0.020)], 0.870, 0.010) == ["new best: idea (PGR +0.870)"]
