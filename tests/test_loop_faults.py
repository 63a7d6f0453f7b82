"""Faults of the research loop found with an unscripted Messages API (issue 13), each shown
against the local Messages server with the real anthropic SDK, the real loop, sandbox and git
lab, and where it matters through the real ``aar`` process (signals, exit codes)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from agent.loop import MAX_CODE_CHARS, LoopTools
from agent.progress import Reporter
from agent.prompting import prompt_text
from agent.research import run_research
from agent.session_setup import ResearchConfig, open_session
from experiments.layout import PENDING_CALLS_FILE
from experiments.schemas import Budgets, RunConfig
from experiments.store import LabStore
from tests.conftest import SMALL
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import error_step, result_text, tool_results, tool_use
from tests.test_e2e_claude import (  # noqa: F401 - anthropic_env: the module's dummy key
    ISOLATION,
    PLAIN,
    SEEDS,
    anthropic_env,
    child_env,
    config,
    run_step,
)

PRICES = tomllib.loads((Path(__file__).parents[1] / "agent" / "prices.toml").read_text())["models"]
BIG = {"input_tokens": 200_000, "output_tokens": 20_000, "cache_creation_input_tokens": 300_000,
       "cache_read_input_tokens": 900_000}
ALL_BUDGETS = Budgets(max_attempts=3, max_cost_usd=50.0, max_time_s=3600.0, target_pgr=0.99, max_scoring_calls=40)
BUDGET_FLAGS = ["--max-attempts", "3", "--max-cost", "50", "--max-time", "1h", "--target-pgr", "0.99",
                "--max-scoring-calls", "40"]


def billed(servers: list[MessagesServer]) -> tuple[float, int]:
    """What the servers billed: usage × the price table (read here on its own), and tokens."""
    cost, tokens = 0.0, 0
    for server in servers:
        for bill in server.billed:
            price, u = PRICES[bill["model"]], bill["usage"]
            cost += (u["input_tokens"] * price["input"] + u["output_tokens"] * price["output"]
                     + u["cache_creation_input_tokens"] * price["cache_write"]
                     + u["cache_read_input_tokens"] * price["cache_read"]) / 1e6
            tokens += sum(u[k] for k in BIG)
    return cost, tokens


@pytest.fixture
def aar(evaluator):
    """Start ``aar`` as its own process (the session's baselines computed beforehand, so the
    process gets to the model calls quickly); any still running at the end is killed."""
    from agent.session_setup import baseline_summary

    baseline_summary(evaluator, list(range(SEEDS)))
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        started.append(subprocess.Popen([sys.executable, "-m", "agent.cli", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_for(check: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def research_args(lab: Path, *extra: str) -> list[str]:
    return ["research", "--proposer", "claude", "--split-sizes", SMALL, "--seeds", str(SEEDS), "--lab", str(lab),
            "--plain", *extra]


def capture() -> tuple[Reporter, io.StringIO]:
    out = io.StringIO()
    return Reporter(Console(file=out, width=200, highlight=False)), out


# --- faults 1, 5 (model call), 6: resume keeps every budget after Ctrl-C and after a kill -------
def test_resume_keeps_every_budget_after_ctrl_c_and_after_a_kill(small_cache, tmp_path, aar):
    lab = tmp_path / "lab"
    servers = [MessagesServer([run_step("weak copy 0", "floor", PLAIN, 0),
                               {**tool_use("show_leaderboard", {}), "delay_s": 20}]),
               MessagesServer([run_step("weak copy 1", "floor", PLAIN + "VARIANT = 1\n", 1),
                               {**tool_use("show_leaderboard", {}), "delay_s": 20}])]

    def env(server: MessagesServer) -> dict[str, str]:
        return child_env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="dummy", AAR_CACHE_DIR=str(small_cache.root))

    def reopened(sid: str) -> LoopTools:
        ctx = open_session(ResearchConfig(resume=sid, lab=lab, run=RunConfig(isolation=ISOLATION)), show_progress=False)
        return LoopTools(ctx, Reporter())

    with servers[0] as server:  # Ctrl-C while the second model call is pending: cancelled at once
        proc = aar(research_args(lab, *BUDGET_FLAGS), env(server))
        wait_for(lambda: len(server.requests) == 2)
        pressed = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert time.monotonic() - pressed < 15  # did not wait for the 20 s answer
    assert proc.returncode == 130, err
    assert "Ctrl-C: cancelling the model call in flight" in err and "finishing the attempt" not in err
    assert "Traceback" not in err
    sid = out.split("--resume ")[1].split()[0]
    tools = reopened(sid)
    assert LabStore.open(lab).manifest(sid).status == "interrupted"
    assert tools.tracker.budgets == ALL_BUDGETS  # attempts, cost, time, target PGR, scoring calls
    assert tools.tracker.attempts == 1 and tools.ctx.evaluator.budget.used == SEEDS
    assert tools.tracker.cost_usd == pytest.approx(billed(servers[:1])[0])
    first_elapsed = tools.tracker.elapsed()
    assert first_elapsed >= LabStore.open(lab).manifest(sid).elapsed_s > 0

    with servers[1] as server:  # a crash: the process is killed while a call is pending
        proc = aar(research_args(lab, "--resume", sid), env(server))
        wait_for(lambda: len(server.requests) == 2)
        proc.kill()
        proc.wait(timeout=60)
    tools = reopened(sid)
    assert tools.tracker.budgets == ALL_BUDGETS
    assert tools.tracker.attempts == 2 and tools.ctx.evaluator.budget.used == 2 * SEEDS
    assert tools.tracker.cost_usd == pytest.approx(billed(servers)[0])
    assert tools.tracker.elapsed() >= max(first_elapsed, tools.ctx.attempts[-1].session_elapsed_s or 0)

    with MessagesServer([run_step("weak copy 2", "floor", PLAIN + "VARIANT = 2\n", 2),
                         run_step("weak copy 3", "floor", PLAIN + "VARIANT = 3\n", 3)]) as server:
        last = run_research(config(lab, server, resume=sid), Reporter())  # no budget given again
    assert last.ending == "budget" and last.exit_code == 0
    assert last.stop_reason == "attempt budget reached (3/3)" and last.attempts == 3 and server.remaining == 1


# --- faults 3, 4: billed equals recorded, cache tokens included, calls after the last attempt --
def test_billed_equals_recorded_to_the_cent(small_cache, tmp_path):
    script = [error_step(429, retry_after=0.05),  # not billed: no message
              tool_use("run_experiment", {"name": "weak copy", "hypothesis": "floor", "code": PLAIN}, usage=BIG),
              tool_use("show_leaderboard", {}, usage={**BIG, "output_tokens": 777}),  # after the last attempt
              tool_use("finish", {"summary": "done"}, usage={**BIG, "cache_read_input_tokens": 12_345})]
    with MessagesServer(script) as server:
        out = run_research(config(tmp_path, server, max_attempts=5), Reporter())
    cost, tokens = billed([server])
    assert out.ending == "finished" and len(server.billed) == 3 and cost > 10
    listed = subprocess.run([sys.executable, "-m", "agent.cli", "sessions", "--json", "--lab", str(tmp_path)],
                            capture_output=True, text=True, check=True)
    row = json.loads(listed.stdout)[0]
    assert round(row["cost_usd"], 2) == round(cost, 2) and row["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert row["tokens"] == tokens and out.cost_usd == pytest.approx(cost, abs=1e-9)
    attempt = LabStore.open(tmp_path).attempts(out.session_id)[0]
    assert attempt.usage.cache_read_tokens == 900_000 and attempt.usage.cache_write_tokens == 300_000

    from agent.replay_llm import replay_llm  # fault 7: a replay calls no model, so it costs nothing

    report = replay_llm(out.session_id, tmp_path, isolation=ISOLATION)
    replayed = next(s for s in LabStore.open(tmp_path).sessions() if s.session_id == report.replay_session)
    assert report.reproduced and replayed.cost_usd == 0.0 and replayed.tokens == 0


# --- fault 2: a 200 whose body is no message ----------------------------------------------------
def test_a_200_that_is_not_a_message_fails_cleanly_and_keeps_the_cost(small_cache, tmp_path):
    html = {"raw": "<html><body>502 Bad Gateway</body></html>", "content_type": "text/html"}
    with MessagesServer([tool_use("show_leaderboard", {}, usage=BIG), html]) as server:
        out = run_research(config(tmp_path, server, max_attempts=5), Reporter())
    assert out.ending == "failed" and out.exit_code == 1 and out.resume_command
    assert "text/html, not a message stream" in out.stop_reason and "ANTHROPIC_BASE_URL" in out.stop_reason
    store = LabStore.open(tmp_path)
    assert store.manifest(out.session_id).status == "failed"
    kept = json.loads(store.read_session_file(out.session_id, PENDING_CALLS_FILE) or "[]")
    assert len(kept) == 1 and out.cost_usd == pytest.approx(billed([server])[0])

    # A truncated stream is retried (issue 24); its input was billed, so it is charged as well.
    cut = {**tool_use("show_leaderboard", {}, usage=BIG), "cut_after_events": 3}
    cfg = config(tmp_path / "cut", server, max_attempts=5)
    cfg.run.options = {"retry_base_s": 0.05}
    with MessagesServer([cut, tool_use("finish", {"summary": "s"}, usage=BIG)]) as server:
        cfg.run.base_url = server.url
        out = run_research(cfg, Reporter())
    assert out.ending == "finished" and len(server.requests) == 2
    assert out.cost_usd == pytest.approx(billed([server])[0]) and len(server.billed) == 2


def test_the_cli_exits_1_with_one_line_on_a_body_that_is_not_json(small_cache, tmp_path, aar):
    with MessagesServer([{"raw": '{"id": "msg_1", "type": "mess', "content_type": "application/json"}]) as server:
        proc = aar(research_args(tmp_path, "--max-attempts", "2"),
                   child_env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="dummy",
                             AAR_CACHE_DIR=str(small_cache.root)))
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err[-3000:]
    assert "not a message stream" in out and "resume with:" in out
    sid = out.split("--resume ")[1].split()[0]
    assert LabStore.open(tmp_path).manifest(sid).status == "failed"
    # Issue 24: the hint is printed once, and names the lab the session was started in.
    assert (out + err).count("resume with:") == 1 and (out + err).count("--resume") == 1
    assert f"resume with: aar research --resume {sid} --lab {tmp_path}" in out


def test_the_cli_error_handler_works_with_the_installed_typer(monkeypatch, capsys):
    import typer

    from agent.cli.common import run_app

    app = typer.Typer()

    @app.command()
    def boom(n: int = 1) -> None:
        raise RuntimeError("a bug")

    @app.command()
    def stop() -> None:
        raise typer.Exit(130)

    monkeypatch.setattr(sys, "argv", ["aar", "boom", "--n", "x"])
    assert run_app(app) == 2 and "Invalid value" in capsys.readouterr().err  # usage error: one message
    monkeypatch.setattr(sys, "argv", ["aar", "stop"])
    assert run_app(app) == 130
    monkeypatch.setattr(sys, "argv", ["aar", "boom"])
    with pytest.raises(RuntimeError, match="a bug"):  # a bug propagates once, with its traceback
        run_app(app)


# --- fault 5: a second Ctrl-C abandons the attempt in flight and kills its seeds ---------------
SLOW = "import time\n\n\ndef run(ctx):\n    time.sleep(110)\n"


def test_second_ctrl_c_abandons_the_attempt_and_kills_its_seeds(small_cache, tmp_path):
    reporter, lines = capture()
    with MessagesServer([run_step("slow", "waits", SLOW, 0)]) as server:
        def press() -> None:
            wait_for(lambda: len(server.requests) == 1)
            wait_for(lambda: "attempt 1: running slow" in lines.getvalue())
            time.sleep(2)
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs in the main thread
            # Two signals before the handler ran are one pending signal (a loaded machine can take
            # over a second to run it): the second press follows the first one's message.
            wait_for(lambda: "press again to abandon it" in lines.getvalue())
            os.kill(os.getpid(), signal.SIGINT)

        started = time.monotonic()
        threading.Thread(target=press, daemon=True).start()
        out = run_research(config(tmp_path, server, max_attempts=3), reporter)
    took = time.monotonic() - started
    text = lines.getvalue()
    assert took < 60, text  # the seeds sleep 110 s: they were killed
    assert out.ending == "interrupted" and out.exit_code == 130
    assert "Ctrl-C: finishing the attempt in flight (slow), then stopping" in text
    assert "Ctrl-C again: abandoning the attempt in flight (slow)" in text
    attempt = LabStore.open(tmp_path).attempts(out.session_id)[0]
    assert attempt.status == "abandoned" and out.stop_reason.endswith("the attempt in flight was abandoned")


# --- fault 7: mistakes the model can fix cost no attempt; the contract states the limit -------
def test_unknown_parent_and_oversize_code_are_refused_before_any_attempt(small_cache, tmp_path):
    script = [tool_use("run_experiment", {"name": "child", "hypothesis": "h", "code": PLAIN, "parent_id": "nope"}),
              tool_use("run_experiment", {"name": "huge", "hypothesis": "h", "code": "#" * (MAX_CODE_CHARS + 1)}),
              tool_use("finish", {"summary": "done"})]
    with MessagesServer(script) as server:
        out = run_research(config(tmp_path, server, max_attempts=1), Reporter())
    assert out.ending == "finished" and out.attempts == 0  # the attempt budget of 1 was not touched
    parent, huge = (result_text(tool_results(b)[0]) for b in server.bodies()[1:3])
    assert "parent_id 'nope' is no attempt of this session" in parent and "no attempt was spent" in parent
    assert f"the limit is {MAX_CODE_CHARS:,}" in huge and "no attempt was spent" in huge
    assert f"{MAX_CODE_CHARS:,} characters" in prompt_text("idea_contract")


def test_a_prose_summary_without_finish_is_kept(small_cache, tmp_path):
    summary = "Summary: the weak floor is all I tried."
    script = [{"message": {"content": [{"type": "text", "text": summary}]}},
              error_step(400, message="bad request")]
    with MessagesServer(script) as server:
        out = run_research(config(tmp_path, server, max_attempts=1), Reporter())
    assert out.ending == "failed"
    assert LabStore.open(tmp_path).read_session_file(out.session_id, "summary.md") == summary


def test_runtime_is_wall_time_not_the_sum_of_parallel_seeds(evaluator, idea_file):
    # Seeds of one attempt run side by side: the attempt's runtime is its wall time (the warm
    # worker's start, a torch import, included), not the sum of the seeds' 10-second sleeps.
    sleepy = idea_file("import time\n\nimport numpy as np\n\n\ndef run(ctx):\n    time.sleep(10)\n"
                       "    return np.asarray(ctx.weak_test_probs)\n")
    started = time.monotonic()
    result = evaluator.evaluate(sleepy, [0, 1], compare_vanilla=False, charge=False)
    wall = time.monotonic() - started
    seeds_total = sum(s.runtime_s for s in result.seeds)
    # A span of the clock: it covers the longest seed and lies within the call, whatever the load
    # added to the worker's start (a sum of the side-by-side seeds' times would outlast the call).
    longest = max(s.runtime_s for s in result.seeds)
    assert seeds_total >= 20 and 10 <= longest <= result.runtime_s <= wall, (longest, result.runtime_s, wall)


def test_leaderboard_shows_vs_vanilla_and_p(small_cache, tmp_path):
    script = [run_step("weak copy", "floor", PLAIN, 0), tool_use("show_leaderboard", {}, call_id="toolu_board"),
              tool_use("finish", {"summary": "done"})]
    with MessagesServer(script) as server:
        run_research(config(tmp_path, server, max_attempts=2), Reporter())
    board = result_text(tool_results(server.bodies()[2])[0])
    row = next(line for line in board.splitlines() if "weak copy" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] not in ("", "n/a", "—") and cells[6] not in ("", "n/a", "—"), board


def test_the_resume_command_names_the_lab_only_when_it_is_not_the_default(tmp_path, monkeypatch):
    from experiments.store import resume_command

    monkeypatch.chdir(tmp_path)
    assert resume_command(tmp_path / "aar-lab", "s1") == "aar research --resume s1"
    odd = tmp_path / "my lab"
    assert resume_command(odd, "s1") == f"aar research --resume s1 --lab '{odd}'"  # quoted for the shell
