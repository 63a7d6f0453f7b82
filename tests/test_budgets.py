"""Session budgets: the clock counts research (not setup or integrity checks), seed-runs are a
budget of their own, and resume restores every run setting (racing, confirm, transfer)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from agent.budget import BudgetTracker
from agent.proposers.base import BudgetStop
from experiments.schemas import Budgets


def test_the_clock_starts_with_the_research_and_stops_for_checks():
    tracker = BudgetTracker(Budgets(max_time_s=0.5), elapsed_s=0.05)  # 0.05 s spent before a resume
    time.sleep(0.6)  # setup: not counted
    assert tracker.elapsed() == 0.05
    tracker.check()
    tracker.start_clock()
    before = tracker.elapsed()
    with tracker.off_the_clock():
        time.sleep(1.0)  # a transfer check: not counted either, but kept apart
    assert tracker.elapsed() - before < 0.5 and tracker.off_clock_s >= 1.0  # (bounds loose for a busy machine)
    time.sleep(0.5)
    with pytest.raises(BudgetStop, match="time budget"):
        tracker.check()


def test_seed_runs_are_a_budget_shown_in_the_status():
    tracker = BudgetTracker(Budgets(max_seed_runs=5), seed_runs=3)  # 3 spent before a resume
    assert tracker.seed_runs_left() == 2
    assert tracker.status()["seed_runs_used"] == 3 and tracker.status()["seed_runs_left"] == 2
    tracker.seed_runs += 2
    with pytest.raises(BudgetStop, match=r"seed-run budget reached \(5/5\)"):
        tracker.check()
    assert BudgetTracker(Budgets()).seed_runs_left() is None


def test_the_budget_prompt_shows_seed_runs():
    from agent.prompting import render
    from agent.proposers.base import BudgetStatus
    from agent.proposers.views import budget_view

    text = render("budget", budget=budget_view(BudgetStatus.model_validate(
        BudgetTracker(Budgets(max_seed_runs=9), seed_runs=4).status())))
    assert "seed-runs used 4 (5 left)" in text


def test_run_settings_round_trip_exactly_through_the_manifest():
    from agent.session_setup import ResearchConfig, config_from_manifest, run_config
    from experiments.schemas import RunConfig, SessionManifest

    asked = ResearchConfig(task="wordnet-10", run=RunConfig(
        racing=[1, 3, 8], confirm_top=2, confirm_seeds=5, transfer_task="rt-mpnet",
        budgets=Budgets(max_attempts=7, max_seed_runs=30), split_sizes="200,600,200,200", time_budget_s=99.0,
        options={"x": 1}))
    run = run_config(asked, "cpu")
    manifest = SessionManifest(session_id="s", task="wordnet-10", cache_key="k", proposer="offline", model=None,
                               prompt_versions={}, seeds=[0, 1, 2], package_versions={}, direction=None,
                               run=run, created_at="now")
    stored = SessionManifest.model_validate_json(manifest.model_dump_json())
    back = config_from_manifest(stored)
    assert run_config(back, "cpu") == run  # every setting, not a chosen few
    assert (back.run.racing, back.run.confirm_top, back.run.confirm_seeds, back.run.transfer_task) == (
        [1, 3, 8], 2, 5, "rt-mpnet")


def sampled_task(folder: Path, every: int, offset: int = 0, salt: str = "") -> str:
    """A small real task (with a weak-to-strong gap): every n-th Debian package description
    (``salt`` in one row makes new content, so its cache is built anew)."""
    rows = (Path(__file__).parents[1] / "benchmarks/tasks/debian-sections/rows.jsonl").read_text().splitlines()
    rows = rows[offset::every]
    if salt:
        rows[0] = json.dumps({**json.loads(rows[0]), "text": f"{json.loads(rows[0])['text']} {salt}"})
    folder.mkdir(parents=True)
    (folder / "rows.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "task.json").write_text('{"weak_model": "tfidf", "strong_model": "minilm-l6"}')
    return str(folder)


@pytest.mark.slow
def test_setup_is_not_charged_and_seed_runs_are_budgeted_across_a_resume(tmp_path, cache_dir, capsys, monkeypatch):
    """A fresh task's setup (cache, teachers, ceilings, baselines) takes longer than the whole
    time budget, yet the session gets its attempt; a seed-run budget caps racing and survives a
    resume in which racing, confirm and transfer settings are not named again."""
    from agent.research import run_research
    from agent.session_setup import ResearchConfig
    from experiments.report import load, to_markdown
    from experiments.schemas import RunConfig
    from experiments.store import LabStore
    task = sampled_task(tmp_path / "fresh", 24, salt=uuid.uuid4().hex)  # a cold cache: real setup
    timed = run_research(ResearchConfig(task=task, seeds=1, lab=tmp_path / "lab", run=RunConfig(
        isolation="process", budgets=Budgets(max_time_s=1.0))), install_signals=False)
    store = LabStore.open(tmp_path / "lab")
    manifest = store.manifest(timed.session_id)
    assert manifest.setup_s > 1.0 and timed.attempts >= 1 and "time budget" in timed.stop_reason
    assert store.attempts(timed.session_id)[0].session_elapsed_s < manifest.setup_s

    other = sampled_task(tmp_path / "other", 24, offset=7)
    raced = run_research(ResearchConfig(task=task, seeds=1, lab=tmp_path / "lab", run=RunConfig(
        isolation="process", racing=[1, 2], confirm_top=1, confirm_seeds=1, transfer_task=other,
        budgets=Budgets(max_seed_runs=3))), install_signals=False)
    attempts = store.attempts(raced.session_id)
    assert [len(a.result.seeds) for a in attempts] == [2, 1]  # the second was capped by the budget
    assert "seed-run budget reached (3/3)" in raced.stop_reason
    resumed = run_research(ResearchConfig(resume=raced.session_id, lab=tmp_path / "lab", run=RunConfig(
        isolation="process", budgets=Budgets(max_seed_runs=4))), install_signals=False)
    run = store.manifest(raced.session_id).run
    assert (run.racing, run.confirm_top, run.confirm_seeds, run.transfer_task) == ([1, 2], 1, 1, other)
    assert run.budgets.max_seed_runs == 4 and resumed.attempts == 3
    report = to_markdown(load(store, raced.session_id))
    assert "4 seed-runs" in report and "not charged" in report
