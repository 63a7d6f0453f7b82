"""The one definition of "best" (experiments/ranking.py): the rule itself, the index's SQL and
every place that names a best (leaderboard, sessions, report, dashboard pages) agree, and a
rejected attempt leaves them all while staying listed, marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import ranking
from experiments.report import load
from experiments.reviews import add_review
from experiments.schemas import Attempt
from experiments.store import LabStore
from tests.test_history_support import attempt, manifest

SID = "20260101-wordnet-rank"


def scored(index: int, name: str, pgrs: list[float], ci95: float | None) -> Attempt:
    """An attempt whose result has the given per-seed PGRs and interval half-width."""
    a = attempt(SID, index, name, pgr=pgrs[0])
    assert a.result is not None and a.result.pgr is not None
    stat = a.result.pgr.model_copy(update={"mean": sum(pgrs) / len(pgrs), "values": pgrs, "n": len(pgrs)})
    return a.model_copy(update={"result": a.result.model_copy(update={"pgr": stat, "pgr_ci95": ci95})})


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabStore:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = LabStore.open(tmp_path / "lab")
    store.create_session(manifest(SID))
    # by mean: lucky > wide > tie_high > steady > tie_low; by the rule: steady, wide (0.4), then
    # tie_high and tie_low (both 0.375: the higher mean first), lucky (one seed)
    for a in (scored(1, "lucky", [0.95], None), scored(2, "wide", [0.7, 0.7, 0.7], 0.3),
              scored(3, "steady", [0.6, 0.6, 0.6], 0.05), scored(4, "tie_low", [0.5, 0.5, 0.5], 0.125),
              scored(5, "tie_high", [0.625, 0.625, 0.625], 0.25)):
        store.record_attempt(a)
    return store


def test_the_rule_lower_bound_then_mean():
    rows = [("lucky", 0.9, None), ("steady", 0.6, 0.05), ("wide", 0.7, 0.3), ("a", 0.5, 0.25), ("b", 0.75, 0.5)]
    order = [r[0] for r in ranking.ranked(rows, lambda r: ranking.rank_key(r[1], r[2]))]
    assert order == ["steady", "wide", "b", "a", "lucky"]  # a and b tie on the bound (0.25): b's mean is higher
    assert ranking.lower_bound(0.9, None) == pytest.approx(0.9 - ranking.UNTESTED_PENALTY)
    assert ranking.rank_key(None, 0.1) is None and ranking.best([], lambda r: None) is None


def test_index_sql_ranks_as_the_rule_does(lab: LabStore):
    board = lab.index.leaderboard("wordnet-10")
    expected = ranking.ranked(lab.attempts(SID), lambda a: ranking.result_key(a.result))
    assert [r.name for r in board] == [a.name for a in expected] == ["steady", "wide", "tie_high", "tie_low", "lucky"]
    assert [r.pgr_lower for r in board] == pytest.approx([ranking.result_bound(a.result) for a in expected])
    summary = next(s for s in lab.sessions() if s.session_id == SID)
    assert summary.best_attempt == board[0].attempt_id and summary.best_lower == pytest.approx(0.55)
    assert load(lab, SID).best.attempt_id == board[0].attempt_id  # type: ignore[union-attr]
    rows, total, _ = lab.index.page(0, 10, task="wordnet-10", order="pgr")
    assert [r.name for r in rows] == [r.name for r in board] and total == 5


def test_a_rejected_attempt_leaves_every_ranking_but_stays_listed(lab: LabStore):
    steady = next(a for a in lab.attempts(SID) if a.name == "steady")
    add_review(lab, steady.attempt_id, "reject", "reward hack: forces the class balance")
    board = lab.index.leaderboard("wordnet-10")
    assert [r.name for r in board] == ["wide", "tie_high", "tie_low", "lucky", "steady"]
    assert board[-1].rejected and board[-1].review_note == "reward hack: forces the class balance"
    summary = next(s for s in lab.sessions() if s.session_id == SID)
    assert summary.best_attempt == board[0].attempt_id  # the session's best changed
    assert load(lab, SID).best.name == "wide"  # type: ignore[union-attr]
    rows, _, _ = lab.index.page(0, 10, task="wordnet-10", order="lcb")
    assert [r.name for r in rows] == [r.name for r in board]  # the dashboard's order: rejected last
    add_review(lab, steady.attempt_id, "accept", "on a second look, fine")  # the latest review counts
    assert lab.index.leaderboard("wordnet-10")[0].name == "steady"
