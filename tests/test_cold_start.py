"""A cold start: research begins once scoring has what it needs (the vanilla reference); the other
built-in baselines are computed after the research, and resume and replay show the proposer
exactly what the original session was shown."""

from __future__ import annotations

import json
import re

from agent.budget import Budgets
from agent.replay_llm import replay_llm
from agent.research import run_research
from agent.session_setup import ResearchConfig, open_session
from experiments.report import best_baseline
from experiments.schemas import RunConfig
from experiments.store import LabStore
from sandbox.baseline_ideas import baseline_files
from sandbox.cache.task_cache import baseline_summary_name
from tests.conftest import SMALL

SEEDS = [0]


def _config(lab, **kw) -> ResearchConfig:
    return ResearchConfig(task="wordnet-10", seeds=len(SEEDS), lab=lab,
                          run=RunConfig(split_sizes=SMALL, budgets=Budgets(max_attempts=kw.pop("max_attempts", 1))),
                          **kw)


def _shown(store: LabStore, session_id: str) -> list:
    """The built-in baselines the offline proposer's first request carried."""
    return store.attempts(session_id)[0].transcript[0]["request"]["baselines"]


def test_a_cold_start_defers_the_baselines_and_resume_and_replay_repeat_it(small_cache, tmp_path, capsys):
    summary = small_cache.private_dir / baseline_summary_name(SEEDS)
    summary.unlink(missing_ok=True)  # no baselines computed yet for these seeds: a cold start
    store_lab = tmp_path / "lab"
    first = run_research(_config(store_lab), install_signals=False)
    store = LabStore.open(store_lab)
    manifest = store.manifest(first.session_id)
    assert manifest.baselines_deferred and first.attempts == 1
    err = capsys.readouterr().err  # piped: a line when each step starts and one when it ends
    vanilla, baselines = "wordnet-10: vanilla reference (1 seeds)", "wordnet-10: built-in baselines (1 seeds each)"
    assert f"aar: {vanilla} (1) ..." in err and f"aar: {vanilla} done in " in err
    assert f"aar: {baselines} (10) ..." in err and f"aar: {baselines} done in " in err
    assert err.index(f"aar: {vanilla} done") < err.index("attempt 1") < err.index(f"aar: {baselines} (10)")
    assert _shown(store, first.session_id) == []
    attempt = store.attempts(first.session_id)[0]
    assert attempt.result.status == "ok" and attempt.result.vs_vanilla is not None  # vanilla existed
    rows = json.loads(summary.read_text())  # computed after the research, for the report
    assert sorted(r["name"] for r in rows) == sorted(p.stem for p in baseline_files())
    assert best_baseline(manifest)["pgr"] == max(r["pgr"] for r in rows)
    took = float(re.search(rf"aar: {re.escape(baselines)} done in ([0-9.]+)s", err).group(1))
    assert manifest.setup_s >= took - 0.1, "the deferred baselines count as setup"

    resumed = open_session(_config(store_lab, resume=first.session_id), show_progress=False)
    assert resumed.baseline_summary == []  # shown none again, though they exist now
    report = replay_llm(first.session_id, store_lab, isolation=resumed.config.run.isolation)
    assert report.reproduced and report.request_mismatches == 0
    assert store.manifest(report.replay_session).baselines_deferred

    warm = run_research(_config(store_lab), install_signals=False)  # the next session sees them all
    assert not store.manifest(warm.session_id).baselines_deferred
    assert {b["name"] for b in _shown(store, warm.session_id)} == {r["name"] for r in rows}
