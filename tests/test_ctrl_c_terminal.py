"""Ctrl-C typed at a terminal (a pseudo-terminal: SIGINT to the whole foreground process group)
for ``aar eval``, ``aar replay`` and ``aar research`` with the OpenAI and Claude proposers: the
first press finishes (or, during a model call, cancels) what is in flight, the second kills the
seeds; the exit code is 130, the lab's session is marked interrupted and the next command printed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agent.research import run_research
from experiments.store import LabStore
from tests.conftest import SMALL
from tests.fakes.messages_server import CHAT_PATH, MessagesServer
from tests.fakes.scripts import chat_tool_call, tool_use
from tests.pty_terminal import aar_at_a_terminal
from tests.test_e2e_claude import SEEDS, anthropic_env, child_env, config, run_step  # noqa: F401
from tests.test_loop_faults import billed

SLEEP_S = 4  # long enough to press Ctrl-C during the seeds, short enough to let them finish
NAPPING = f"import time\n\nimport numpy as np\n\n\ndef run(ctx):\n    time.sleep({SLEEP_S})\n" \
          "    return np.asarray(ctx.weak_test_probs)\n"
ENDLESS_S = 110  # far past any wait below: a run that ends sooner was killed
ENDLESS = f"import time\n\n\ndef run(ctx):\n    time.sleep({ENDLESS_S})\n"
KILLED_WITHIN_S = 60
ANSWER_AFTER_S = 120  # a model call that would still be running when a cancelled one has long stopped


def env_for(cache) -> dict[str, str]:
    return child_env(AAR_CACHE_DIR=str(cache.root))


def session_of(text: str) -> str:
    found = re.search(r"session (\S+) marked interrupted", text) or re.search(r"--resume (\S+)", text)
    assert found, text[-3000:]
    return found.group(1)


# --- aar eval -------------------------------------------------------------------------------
@pytest.mark.slow
def test_eval_ctrl_c_lets_the_seeds_finish_then_exits_130(small_cache, tmp_path):
    idea = tmp_path / "napping.py"
    idea.write_text(NAPPING)
    term = aar_at_a_terminal(["eval", str(idea), "--split-sizes", SMALL, "--seeds", str(SEEDS)], env_for(small_cache))
    term.read_until(f"running {SEEDS} seeds of napping.py")
    term.press_ctrl_c()
    code = term.wait()
    assert code == 130, term.text[-3000:]
    assert term.said("Ctrl-C: finishing the seeds in flight (napping.py)")
    assert term.said("interrupted (Ctrl-C): the seeds of napping.py finished and were scored")
    assert term.said("run it again with: aar eval")
    assert re.search(r"napping\s+│\s+ok", term.text), term.text[-3000:]  # the result table, scored


@pytest.mark.slow
def test_eval_ctrl_c_twice_kills_the_seeds(small_cache, tmp_path):
    idea = tmp_path / "endless.py"
    idea.write_text(ENDLESS)
    term = aar_at_a_terminal(["eval", str(idea), "--split-sizes", SMALL, "--seeds", str(SEEDS),
                              "--time-budget", str(ENDLESS_S * 2)], env_for(small_cache))
    term.read_until(f"running {SEEDS} seeds of endless.py")
    started = time.monotonic()
    term.press_ctrl_c()
    term.read_until("press again to kill them")
    term.press_ctrl_c()
    code = term.wait()
    assert code == 130, term.text[-3000:]
    assert time.monotonic() - started < KILLED_WITHIN_S, term.text[-3000:]
    assert term.said("Ctrl-C again: killing the seeds in flight (endless.py)")
    assert term.said("the seeds in flight were killed, nothing was scored")


# --- aar replay -----------------------------------------------------------------------------
def recorded_session(lab: Path, codes: list[str], time_budget_s: float) -> str:
    """A session that ran each of ``codes``, recorded through the Claude proposer."""
    script = [run_step(f"idea {k}", "waits", code, k) for k, code in enumerate(codes)]
    script.append(tool_use("finish", {"summary": "done"}))
    with MessagesServer(script) as server:
        cfg = config(lab, server, max_attempts=len(codes))
        cfg.run.time_budget_s = time_budget_s
        out = run_research(cfg)
    assert out.attempts == len(codes), out.stop_reason
    return out.session_id


@pytest.mark.slow
def test_replay_ctrl_c_finishes_the_attempt_and_marks_the_replay_interrupted(small_cache, tmp_path):
    lab = tmp_path / "lab"
    sid = recorded_session(lab, [NAPPING, NAPPING.replace(f"sleep({SLEEP_S})", f"sleep({SLEEP_S + 1})")], 120)
    term = aar_at_a_terminal(["replay", sid, "--lab", str(lab)], env_for(small_cache))
    term.read_until(f"#1 idea 0: running {SEEDS} seeds")
    term.press_ctrl_c()
    code = term.wait()
    assert code == 130, term.text[-3000:]
    assert term.said("Ctrl-C: finishing the seeds in flight (#1 idea 0)")
    assert term.said(f"run the replay again with: aar replay {sid} --lab")
    replay = session_of(term.text)
    store = LabStore.open(lab)
    assert store.manifest(replay).status == "interrupted"
    assert [a.status for a in store.attempts(replay)] == ["ok"]  # the first finished; the second never started
    assert not term.said("#2 idea 1: running")


@pytest.mark.slow
def test_replay_ctrl_c_twice_kills_the_seeds_and_marks_the_replay_interrupted(small_cache, tmp_path):
    lab = tmp_path / "lab"
    sid = recorded_session(lab, [ENDLESS], 3)  # recorded as a timeout; replayed with time to run
    term = aar_at_a_terminal(["replay", sid, "--lab", str(lab), "--time-budget", str(ENDLESS_S * 2)],
                             env_for(small_cache))
    term.read_until(f"#1 idea 0: running {SEEDS} seeds")
    started = time.monotonic()
    term.press_ctrl_c()
    term.read_until("press again to kill them")
    term.press_ctrl_c()
    code = term.wait()
    assert code == 130, term.text[-3000:]
    assert time.monotonic() - started < KILLED_WITHIN_S, term.text[-3000:]
    assert term.said("interrupted (Ctrl-C twice: the seeds in flight were killed); 0 attempt(s) replayed")
    replay = session_of(term.text)
    store = LabStore.open(lab)
    assert store.manifest(replay).status == "interrupted" and store.attempts(replay) == []


# --- aar research: the OpenAI-compatible proposer, the Claude proposer mid-stream ----------
def openai_args(server: MessagesServer, lab: Path) -> list[str]:
    return ["research", "--proposer", "openai", "--model", "qwen2.5-coder:7b", "--base-url", server.url + "/v1",
            "--split-sizes", SMALL, "--seeds", str(SEEDS), "--lab", str(lab), "--plain", "--max-attempts", "3"]


@pytest.fixture
def baselines_ready(evaluator):
    """The baselines computed beforehand, so that a session gets to its model calls quickly."""
    from agent.session_setup import baseline_summary

    baseline_summary(evaluator, list(range(SEEDS)))


@pytest.mark.slow
def test_openai_research_ctrl_c_during_a_model_call_cancels_it(small_cache, baselines_ready, tmp_path):
    lab = tmp_path / "lab"
    waits = {**chat_tool_call("finish", {"summary": "s"}), "delay_s": ANSWER_AFTER_S}
    with MessagesServer([waits]) as server:
        term = aar_at_a_terminal(openai_args(server, lab), env_for(small_cache))
        term.read_until("session ")
        deadline = time.monotonic() + 120
        while not server.bodies(CHAT_PATH) and time.monotonic() < deadline:
            term.pump(0.2)
        assert server.bodies(CHAT_PATH), term.text[-3000:]
        started = time.monotonic()
        term.press_ctrl_c()
        code = term.wait()
    assert code == 130, term.text[-3000:]
    assert time.monotonic() - started < KILLED_WITHIN_S  # cancelled, not waited for (the answer comes later)
    assert term.said("Ctrl-C: cancelling the model call in flight and stopping")
    sid = session_of(term.text)
    assert term.said(f"resume with: aar research --resume {sid} --lab")
    assert LabStore.open(lab).manifest(sid).status == "interrupted"


@pytest.mark.slow
def test_openai_research_ctrl_c_during_an_attempt_commits_it(small_cache, baselines_ready, tmp_path):
    lab = tmp_path / "lab"
    script = [chat_tool_call("run_experiment", {"name": "napping", "hypothesis": "h", "code": NAPPING}),
              chat_tool_call("finish", {"summary": "s"})]
    with MessagesServer(script) as server:
        term = aar_at_a_terminal(openai_args(server, lab), env_for(small_cache))
        term.read_until("attempt 1: running napping")
        term.press_ctrl_c()
        code = term.wait()
    assert code == 130, term.text[-3000:]
    assert term.said("Ctrl-C: finishing the attempt in flight (napping)")
    sid = session_of(term.text)
    store = LabStore.open(lab)
    assert store.manifest(sid).status == "interrupted"
    assert [a.status for a in store.attempts(sid)] == ["ok"]
    assert len(server.bodies(CHAT_PATH)) == 1  # stopped after the attempt: no further model call


@pytest.mark.slow
def test_claude_ctrl_c_mid_stream_charges_the_started_call(small_cache, baselines_ready, tmp_path):
    """The API bills a stream once it has started: the session's recorded cost equals what the
    server billed, to the cent, the call abandoned mid-stream included."""
    lab = tmp_path / "lab"
    first = run_step("plain", "floor", "def run(ctx):\n    return ctx.weak_test_probs\n", 0)
    writing = {**tool_use("finish", {"summary": "s" * 400}), "stall_after_events": 3, "stall_s": 60}
    with MessagesServer([first, writing]) as server:
        args = ["research", "--proposer", "claude", "--split-sizes", SMALL, "--seeds", str(SEEDS), "--lab", str(lab),
                "--plain", "--max-attempts", "3"]
        term = aar_at_a_terminal(args, env_for(small_cache) | {"ANTHROPIC_API_KEY": "dummy-key",
                                                               "ANTHROPIC_BASE_URL": server.url})
        deadline = time.monotonic() + 300
        while not server.stalled.is_set() and time.monotonic() < deadline:
            term.pump(0.2)
        assert server.stalled.is_set(), term.text[-3000:]
        term.press_ctrl_c()
        code = term.wait()
        deadline = time.monotonic() + 60
        while len(server.billed) < 2 and time.monotonic() < deadline:  # the server bills once it sees the hang-up
            time.sleep(0.05)
    assert code == 130, term.text[-3000:]
    assert len(server.billed) == 2, server.billed  # the finished call and the abandoned one
    sid = session_of(term.text)
    recorded = next(s for s in LabStore.open(lab).sessions() if s.session_id == sid).cost_usd
    cost, _ = billed([server])
    assert cost > 0 and round(recorded, 2) == round(cost, 2) and recorded == pytest.approx(cost, abs=1e-9)
    assert LabStore.open(lab).manifest(sid).status == "interrupted"


@pytest.mark.slow
def test_claude_research_ctrl_c_twice_abandons_the_attempt_and_kills_its_seeds(small_cache, baselines_ready, tmp_path):
    lab = tmp_path / "lab"
    with MessagesServer([run_step("endless", "waits", ENDLESS, 0), tool_use("finish", {"summary": "s"})]) as server:
        args = ["research", "--proposer", "claude", "--split-sizes", SMALL, "--seeds", str(SEEDS), "--lab", str(lab),
                "--plain", "--max-attempts", "3", "--time-budget", str(ENDLESS_S * 2)]
        term = aar_at_a_terminal(args, env_for(small_cache) | {"ANTHROPIC_API_KEY": "dummy-key",
                                                               "ANTHROPIC_BASE_URL": server.url})
        term.read_until("attempt 1: running endless")
        started = time.monotonic()
        term.press_ctrl_c()
        term.read_until("press again to abandon it")
        term.press_ctrl_c()
        code = term.wait()
    assert code == 130, term.text[-3000:]
    assert time.monotonic() - started < KILLED_WITHIN_S, term.text[-3000:]
    assert term.said("Ctrl-C again: abandoning the attempt in flight (endless)")
    sid = session_of(term.text)
    store = LabStore.open(lab)
    assert store.manifest(sid).status == "interrupted"
    assert [a.status for a in store.attempts(sid)] == ["abandoned"]


@pytest.mark.slow
def test_llm_replay_ctrl_c_marks_the_replay_interrupted_and_exits_130(small_cache, tmp_path):
    lab = tmp_path / "lab"
    sid = recorded_session(lab, [NAPPING, NAPPING.replace(f"sleep({SLEEP_S})", f"sleep({SLEEP_S + 1})")], 120)
    term = aar_at_a_terminal(["replay", sid, "--llm", "--lab", str(lab)], env_for(small_cache))
    term.read_until("attempt 1: running idea 0")
    term.press_ctrl_c()
    code = term.wait()
    assert code == 130, term.text[-3000:]
    assert term.said("Ctrl-C: finishing the attempt in flight (idea 0)")
    assert term.said(f"run the replay again with: aar replay {sid} --llm --lab")
    replay = session_of(term.text)
    store = LabStore.open(lab)
    assert store.manifest(replay).status == "interrupted"
    assert [a.status for a in store.attempts(replay)] == ["ok"]
