"""The research loop with the offline proposer: commits, budgets, resume, replay, Ctrl-C
(signalled, and typed at a terminal: for eval, replay and the other proposers see
test_ctrl_c_terminal.py)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agent.budget import Budgets, parse_duration
from agent.research import run_research
from agent.session_setup import ResearchConfig
from experiments.schemas import RunConfig
from experiments.store import LabStore
from tests.conftest import SMALL
from tests.pty_terminal import aar_at_a_terminal

SEEDS = 2


def config(lab, **kw):
    budgets = Budgets(**{k: kw.pop(k) for k in list(kw) if k in Budgets.model_fields})
    return ResearchConfig(task="wordnet-10", seeds=SEEDS, lab=lab, run=RunConfig(split_sizes=SMALL, budgets=budgets),
                          **kw)


@pytest.fixture(scope="module")
def session(small_cache, tmp_path_factory):
    lab = tmp_path_factory.mktemp("lab")
    outcome = run_research(config(lab, max_attempts=3))
    return lab, outcome


def test_every_attempt_is_a_commit_with_code_result_and_transcript(session):
    lab, outcome = session
    assert outcome.attempts == 3 and outcome.stop_reason.startswith("attempt budget")
    store = LabStore.open(lab)
    attempts = store.attempts(outcome.session_id)
    assert [a.index for a in attempts] == [1, 2, 3]
    for a in attempts:
        assert "def run(ctx" in a.code and a.rationale
        assert a.result is not None and a.result.status == "ok" and len(a.result.seeds) == SEEDS
        assert a.transcript and a.transcript[0]["request"]["kind"] == "offline-search"
        assert "genome" in a.transcript[0]["response"]
    manifest = store.manifest(outcome.session_id)
    assert manifest.proposer == "offline" and manifest.seeds == [0, 1]
    assert manifest.run.split_sizes == SMALL
    assert store.manifest(outcome.session_id).status == "finished"


def test_feedback_never_carries_held_out_figures(session, small_cache):
    lab, outcome = session
    attempt = LabStore.open(lab).attempts(outcome.session_id)[0]
    view = attempt.result.for_proposer().model_dump_json()
    assert "heldout" not in view


def test_no_feedback_path_exposes_confirmation_part_scores(session, small_cache):
    """Dev's confirmation part is scored and stored with every attempt, and reaches no proposer:
    not the result view (every proposer's feedback, leaderboard and show_attempt go through it),
    not the offline search's saved state, not the baseline table sessions are shown."""
    from agent.session_setup import open_session

    lab, outcome = session
    store = LabStore.open(lab)
    for attempt in store.attempts(outcome.session_id):
        confirm = attempt.result.confirm_pgr
        assert confirm is not None and len(confirm.values) == SEEDS  # scored and kept
        shown = attempt.result.for_proposer().model_dump_json() + json.dumps(attempt.transcript)
        assert "confirm" not in shown
        assert not any(repr(value) in shown for value in confirm.values)  # nor its figures under another key
    ctx = open_session(config(lab, max_attempts=1), show_progress=False)
    assert ctx.baseline_summary and "confirm" not in json.dumps(ctx.baseline_summary)


def test_resume_continues_the_search(small_cache, tmp_path):
    first = run_research(config(tmp_path, max_attempts=2))
    resumed = run_research(config(tmp_path, max_attempts=4, resume=first.session_id))
    assert resumed.session_id == first.session_id and resumed.attempts == 4
    attempts = LabStore.open(tmp_path).attempts(first.session_id)
    assert len({a.code for a in attempts}) == 4  # no idea was proposed twice
    # the resumed proposer saw the first two results in its state
    assert len(attempts[2].transcript[0]["request"]["results"]) == 2


def test_target_and_time_budgets_stop_the_session(small_cache, tmp_path):
    hit = run_research(config(tmp_path, target_pgr=-10.0, max_attempts=5))
    assert hit.attempts == 1 and "target PGR" in hit.stop_reason
    timed = run_research(config(tmp_path, max_time_s=0.0))
    assert timed.attempts == 0 and "time budget" in timed.stop_reason


def test_scoring_budget_stops_the_session(small_cache, tmp_path):
    out = run_research(config(tmp_path, max_scoring_calls=SEEDS * 2, max_attempts=5))
    assert out.attempts == 2 and "scoring budget" in out.stop_reason


def test_parse_duration():
    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_ctrl_c_finishes_the_attempt_and_prints_resume(small_cache, tmp_path):
    env = {**os.environ, "AAR_CACHE_DIR": str(small_cache.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "research", "--split-sizes", SMALL, "--seeds", str(SEEDS),
         "--max-attempts", "50", "--lab", str(tmp_path), "--plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    lab_ready = False
    while time.monotonic() < deadline and not lab_ready:
        time.sleep(1)
        store = LabStore.open(tmp_path, create=False) if (tmp_path / ".git").exists() else None
        lab_ready = bool(store and any(s.attempts >= 1 for s in store.sessions()))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err  # fault 6: interrupted is not success
    assert "resume with: aar research --resume" in out
    assert "Ctrl-C: finishing the attempt in flight" in err or "Ctrl-C: stopping before the next step" in err
    session_id = out.split("--resume")[1].split()[0]
    store = LabStore.open(tmp_path)
    assert store.manifest(session_id).status == "interrupted"
    attempts = store.attempts(session_id)
    assert attempts and all(a.status in ("ok", "abandoned") for a in attempts)


def test_llm_replay_reconstructs_the_session_without_the_proposer_deciding(session):
    from agent.replay_llm import replay_llm

    lab, outcome = session
    report = replay_llm(outcome.session_id, lab)
    assert report.reproduced and len(report.steps) == 3
    assert report.request_mismatches == 0
    store = LabStore.open(lab)
    assert store.manifest(report.replay_session).parent_session == outcome.session_id


def test_report_says_whether_the_gain_holds_and_proposers_never_see_held_out(session):
    from agent.session_setup import open_session
    from experiments.report import render

    lab, outcome = session
    text, _ = render(LabStore.open(lab), outcome.session_id, "md")
    assert "Does the gain hold on the held-out split?" in text and "held-out PGR" in text
    assert "dev selection part" in text and "dev-only: the search chose on these rows" in text
    assert "dev confirmation part (rows whose scores no proposer saw)" in text
    # a session started now (the baselines computed by the first one's end) is shown them, dev only
    ctx = open_session(config(lab, max_attempts=1), show_progress=False)
    assert not ctx.manifest.baselines_deferred
    assert ctx.baseline_summary and "heldout" not in json.dumps(ctx.baseline_summary)


@pytest.mark.slow
def test_ctrl_c_typed_at_a_terminal_during_an_attempt_commits_it(small_cache, tmp_path):
    """The terminal sends SIGINT to the whole foreground process group, the lab's git helpers
    included: they must survive it, so the attempt in flight is committed and the session marked."""
    env = {**os.environ, "AAR_CACHE_DIR": str(small_cache.root)}
    term = aar_at_a_terminal(["research", "--split-sizes", SMALL, "--seeds", str(SEEDS), "--max-attempts", "50",
                              "--lab", str(tmp_path), "--plain"], env)
    term.read_until("attempt 2")  # attempt 1 committed, 2 in flight
    term.press_ctrl_c()  # Ctrl-C, as typed
    code = term.wait()
    assert code == 130, term.text[-3000:]
    assert term.said("resume with: aar research --resume")
    session_id = term.text.split("--resume")[1].split()[0]
    store = LabStore.open(tmp_path)
    assert store.manifest(session_id).status == "interrupted"
    attempts = store.attempts(session_id)
    assert len(attempts) >= 2 and all(a.status in ("ok", "abandoned") for a in attempts)
