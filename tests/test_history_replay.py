"""Replay: a deterministic idea's recorded PGR comes back exactly, and the replay is recorded."""

from __future__ import annotations

import json
import random
import sys

import pytest

import agent.cli.history  # noqa: F401 - registers the commands on the app
from agent.cli import app
from agent.cli.common import run_app
from experiments.layout import StoreError
from experiments.replay import compare, replay_seeds, session_sizes
from experiments.schemas import Attempt, SessionManifest, TokenUsage, new_attempt_id, utc_now
from experiments.store import LabStore
from sandbox.baseline_ideas import baseline_path
from tests.conftest import SMALL
from tests.test_history_support import manifest


def _session(store: LabStore, small_cache, session_id: str, cache_key: str | None = None) -> SessionManifest:
    m = SessionManifest(
        session_id=session_id, task="wordnet-10", cache_key=cache_key or small_cache.key, proposer="offline",
        model=None, prompt_versions={}, seeds=[0, 1], package_versions={}, direction=None,
        budgets={"split_sizes": SMALL, "isolation": "process", "time_budget_s": 120}, created_at=utc_now())
    store.create_session(m)
    return m


def _record(store: LabStore, session_id: str, index: int, code: str, result) -> Attempt:  # noqa: ANN001
    a = Attempt(attempt_id=new_attempt_id(), session_id=session_id, index=index, name=result.idea,
                rationale="the vanilla recipe", code=code, parent_id=None, result=result, status=result.status,
                log="", transcript=[], usage=TokenUsage(), created_at=utc_now())
    store.record_attempt(a)
    return a


def test_replaying_a_deterministic_idea_reproduces_its_pgr_exactly(tmp_path, evaluator, small_cache,
                                                                   capsys, monkeypatch):
    vanilla = baseline_path("vanilla_soft")
    recorded = evaluator.evaluate(vanilla, [0, 1], name="vanilla_soft")
    assert recorded.status == "ok" and recorded.pgr is not None
    store = LabStore.open(tmp_path / "lab")
    _session(store, small_cache, "det")
    genuine = _record(store, "det", 1, vanilla.read_text(), recorded)

    monkeypatch.setattr(sys, "argv", ["aar", "replay", "det", "--tolerance", "0", "--json", "--lab", str(store.path)])
    assert run_app(app) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["rows"]
    assert row["replayed_pgr"] == recorded.pgr.mean  # exactly, not approximately
    assert row["max_seed_diff"] == 0.0 and row["reproduced"] is True

    replay_id = report["replay_session"]
    replay_manifest = store.manifest(replay_id)
    assert replay_manifest.proposer == "replay" and replay_manifest.parent_session == "det"
    assert replay_manifest.status == "finished" and replay_manifest.cache_key == small_cache.key
    replayed = store.attempts(replay_id)
    assert [a.extra["replay_of"] for a in replayed][0] == genuine.attempt_id
    assert [s.pgr for s in replayed[0].result.seeds] == [s.pgr for s in recorded.seeds]
    assert json.loads(store.read_session_file(replay_id, "replay.json"))["rows"][0]["reproduced"] is True
    assert store.check().ok
    ids = {r.attempt_id for r in store.index.leaderboard("wordnet-10", include_replays=False)}
    assert ids.isdisjoint({a.attempt_id for a in replayed})  # replays do not crowd the leaderboard


def test_replay_refuses_a_cache_it_cannot_rebuild(tmp_path, small_cache):
    from experiments.replay import replay_session

    store = LabStore.open(tmp_path / "lab")
    _session(store, small_cache, "moved", cache_key="0123456789abcdef")
    vanilla = baseline_path("vanilla_soft").read_text()
    store.record_attempt(Attempt(
        attempt_id=new_attempt_id(), session_id="moved", index=1, name="v", rationale="", code=vanilla,
        parent_id=None, result=None, status="error", log="", transcript=[], usage=TokenUsage(),
        created_at=utc_now()))
    with pytest.raises(StoreError, match="pass the session's --split-sizes"):
        replay_session(store, "moved")
    assert list(store.session_heads()) == ["moved"]  # nothing recorded for a replay that did not run


def test_seed_selection_sizes_and_comparison():
    m = manifest("m")
    assert session_sizes(m) == "200,600,200,200"
    legacy = {k: v for k, v in m.model_dump().items() if k != "run"}  # format-1 manifests
    assert session_sizes(SessionManifest.model_validate({**legacy, "split_sizes": "1,2,3,4"})) == "1,2,3,4"
    sizes = {"weak_train": 1, "unlabeled": 2, "dev": 3, "heldout": 5}
    assert session_sizes(SessionManifest.model_validate({**legacy, "budgets": sizes})) == "1,2,3,5"
    assert session_sizes(SessionManifest.model_validate(legacy)) is None
    from tests.test_history_support import attempt

    a = attempt("m", 1, pgr=0.3)
    assert replay_seeds(a, m, None) == [0, 1, 2]
    assert replay_seeds(a, m, 2) == [0, 1] and replay_seeds(a, m, 5) == [0, 1, 2, 3, 4]
    worse = a.result.model_copy(deep=True)
    worse.seeds[0].status = "error"
    worse.seeds[0].pgr = None
    assert compare(a.result, a.result, 0.0) == (0.0, True, "")
    tampered = a.result.model_copy(deep=True)
    tampered.seeds[1].pgr += 0.05  # a recording that does not match what its code does
    worst, ok, _ = compare(tampered, a.result, 0.01)
    assert ok is False and worst == pytest.approx(0.05)
    assert compare(tampered, a.result, 0.06)[1] is True
    assert compare(a.result, worse, 1.0)[1] is False
    assert compare(None, a.result, 0.0) == (None, None, "no recorded result")


@pytest.mark.slow
def test_replay_on_another_task_reports_transfer(tmp_path, evaluator, small_cache, cache_dir):
    """The same ideas on another task: replayed PGR is reported, reproduction is not judged."""
    from experiments.replay import replay_session
    from sandbox.tasks.wordnet import load_wordnet_supersenses

    data = load_wordnet_supersenses(4)
    other = tmp_path / "nouns-4"
    other.mkdir()
    rows = [json.dumps({"text": t, "label": data.classes[y]}) for t, y in zip(data.texts, data.labels, strict=True)]
    random.Random(0).shuffle(rows)
    (other / "rows.jsonl").write_text("\n".join(rows[:3000]) + "\n")
    vanilla = baseline_path("vanilla_soft")
    store = LabStore.open(tmp_path / "lab")
    _session(store, small_cache, "src")
    _record(store, "src", 1, vanilla.read_text(), evaluator.evaluate(vanilla, [0, 1], name="vanilla_soft"))
    report = replay_session(store, "src", task=str(other), split_sizes="100,300,100,100")
    (row,) = report.rows
    assert not report.same_task and row.reproduced is None and row.replayed_status == "ok"
    assert row.replayed_pgr is not None and row.recorded_pgr is not None
    assert store.manifest(report.replay_session).task == str(other)
