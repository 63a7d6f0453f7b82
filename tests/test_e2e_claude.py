"""End to end with a scripted Claude: the real ``anthropic`` client, the real research loop,
sandbox, evaluator and git lab store, against the local scripted Messages server.

A scripted Claude writes three ideas on wordnet-10 (one good, one with a bug, one hostile) and
looks around with the leaderboard and a past attempt; the tests check what was fed back to the
model, what the lab committed, the budgets, resume, faults, the ``aar research`` command and two
parallel researchers sharing a findings forum and a scoring budget.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.budget import Budgets
from agent.costs import cost_of
from agent.parallel import run_parallel
from agent.progress import Reporter
from agent.prompting import directions
from agent.proposers.claude import DEFAULT_MODEL
from agent.research import run_research
from agent.session_setup import ResearchConfig
from experiments.forum import FORUM_REF, Forum
from experiments.schemas import RunConfig
from experiments.store import LabStore
from sandbox.isolation.registry import get_isolation
from tests.conftest import SMALL
from tests.fakes.messages_server import MESSAGES_PATH, MessagesServer
from tests.fakes.multi_server import RoutedMessagesServer
from tests.fakes.scripts import DEFAULT_USAGE, error_step, result_text, tool_results, tool_use

SEEDS = 2
PROVIDER_ENV = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID",
                "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_BASE_URL", "AAR_PRICES",
                "AWS_BEARER_TOKEN_BEDROCK", "CLOUD_ML_REGION")
ATTEMPT_ID = re.compile(r"attempt `([^`]+)`")


def _isolation() -> str:
    """The sandbox `aar research` runs ideas in (bwrap) where it can start, else a plain process."""
    try:
        return "bwrap" if get_isolation("bwrap").available()[0] else "process"
    except ValueError:  # no bwrap isolation registered
        return "process"


ISOLATION = _isolation()

GOOD = '''"""Auxiliary confidence loss with a stronger self-trust mix (0.75 instead of 0.5)."""

import numpy as np

from sandbox.runtime import IdeaContext, aux_confidence_loss, train_head


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed,
                      loss_fn=aux_confidence_loss(max_alpha=0.75, warmup=0.2))
    return head.predict_proba(ctx.features("test"))
'''

BUGGY = '''"""Sharpen the weak labels with a temperature before training on them."""

import numpy as np

from sandbox.runtime import IdeaContext, train_head


def sharpen(probs: np.ndarray, temperature: float) -> np.ndarray:
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(axis=1)


def run(ctx: IdeaContext) -> np.ndarray:
    head = train_head(ctx.features("unlabeled"), sharpen(ctx.weak_soft, 0.5), seed=ctx.seed)
    return head.predict_proba(ctx.features("test"))
'''

HOSTILE = '''"""Shortcut: the gold labels sit next to the public cache; failing that, the model server."""

import socket

import numpy as np

MODEL_SERVER = ("127.0.0.1", {port})


def run(ctx):
    gold = ctx.public_dir / ".." / ".." / "private" / ctx.public_dir.name / "gold_test.npy"
    try:
        return np.eye(ctx.n_classes)[np.load(gold)]
    except OSError as exc:
        no_gold = exc
    try:
        with socket.create_connection(MODEL_SERVER, timeout=3) as conn:
            conn.sendall(b"POST /leak HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\n{{}}")
            conn.recv(64)
    except OSError as exc:
        raise RuntimeError(f"no gold labels ({{no_gold!r}}) and no way out ({{exc!r}})") from exc
    return np.asarray(ctx.weak_test_probs)
'''

PLAIN = "import numpy as np\n\n\ndef run(ctx):\n    return np.asarray(ctx.weak_test_probs)\n"


@pytest.fixture(scope="module", autouse=True)
def anthropic_env():
    """A dummy key and no provider settings from the developer's shell."""
    with pytest.MonkeyPatch.context() as mp:
        for name in PROVIDER_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("ANTHROPIC_API_KEY", "dummy-key")
        yield


def config(lab: Path, server: MessagesServer | None = None, **kw: Any) -> ResearchConfig:
    budgets = Budgets(**{k: kw.pop(k) for k in list(kw) if k in Budgets.model_fields})
    run = RunConfig(split_sizes=SMALL, base_url=server.url if server else None, budgets=budgets, time_budget_s=120,
                    isolation=kw.pop("isolation", ISOLATION))
    return ResearchConfig(task="wordnet-10", seeds=SEEDS, lab=lab, proposer="claude", run=run, **kw)


def run_step(name: str, hypothesis: str, code: str, k: int) -> dict[str, Any]:
    return tool_use("run_experiment", {"name": name, "hypothesis": hypothesis, "code": code},
                    text=f"Next: {name}.", call_id=f"toolu_run_{k}")


def results_of(body: dict[str, Any]) -> list[str]:
    """The texts of the tool results a request carries back to the model."""
    return [result_text(b) for b in tool_results(body)]


def first_attempt_id(body: dict[str, Any]) -> str:
    """What a model would do: read an attempt id off the first experiment result it got."""
    for message in body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result":
                found = ATTEMPT_ID.search(result_text(block))
                if found:
                    return found.group(1)
    raise AssertionError("no attempt id was fed back")


def per_call_cost() -> float:
    return cost_of(DEFAULT_MODEL, {"usage": DEFAULT_USAGE}).cost_usd


# --- one session: three ideas, the leaderboard, a past attempt, finish -----------------------
IDEAS = [("stronger aux confidence", "Trusting the student more than Burns et al. did beats vanilla.", GOOD),
         ("sharpened weak labels", "Sharper targets remove teacher hedging.", BUGGY),
         ("gold shortcut", "Checking whether the harness leaks gold labels.", None)]
SUMMARY = "Aux confidence at 0.75 helps; sharpening needs fixing; the harness does not leak gold."


@pytest.fixture(scope="module")
def main_session(small_cache, tmp_path_factory):
    lab = tmp_path_factory.mktemp("lab")
    server = MessagesServer([]).start()
    hostile = HOSTILE.format(port=server.url.rsplit(":", 1)[1])
    ideas = [(n, h, c or hostile) for n, h, c in IDEAS]
    server.script.extend([
        *(run_step(n, h, c, k) for k, (n, h, c) in enumerate(ideas)),
        tool_use("show_leaderboard", {}, text="Let me compare.", call_id="toolu_board"),
        lambda body: tool_use("show_attempt", {"attempt_id": first_attempt_id(body)}, call_id="toolu_show"),
        tool_use("finish", {"summary": SUMMARY}, call_id="toolu_finish"),
    ])
    try:
        outcome = run_research(config(lab, server, max_attempts=10), Reporter())
    finally:
        server.stop()
    return lab, outcome, server, ideas


def test_what_was_fed_back(main_session):
    _, outcome, server, ideas = main_session
    assert outcome.stop_reason == "the proposer finished" and server.remaining == 0
    bodies = server.bodies()
    assert len(bodies) == 6 and all(r["path"] == MESSAGES_PATH for r in server.requests)  # no /leak
    for r in server.requests:  # the key goes as x-api-key or, in newer SDKs, as a bearer token
        headers = {k.lower(): v for k, v in r["headers"].items()}
        assert "dummy-key" in headers.get("x-api-key", "") + headers.get("authorization", "")
    good, bug, hostile, board, shown = (results_of(b)[0] for b in bodies[1:])
    assert "`stronger aux confidence`" in good and ": ok" in good
    pgr = re.search(r"PGR \(dev\): \*\*(-?\d\.\d{3}) ± (\d\.\d{3})\*\*", good)
    assert pgr, good  # a mean and a 95% CI, both figures
    assert "Paired difference vs vanilla" in good and "Dev transfer accuracy" in good
    assert ": error" in bug and "Traceback" in bug and "in sharpen" in bug
    assert "operands could not be broadcast" in bug
    if ISOLATION == "bwrap":  # contained: no gold labels, no route to the host's model server
        # no gold file in view; the socket is refused by seccomp (PermissionError) or finds no route
        assert ": error" in hostile and "FileNotFoundError" in hostile
        assert "PermissionError" in hostile or "ConnectionRefusedError" in hostile, hostile
    else:  # the honest outcome without a sandbox: the shortcut works (dev accuracy 1.0)
        assert ": ok" in hostile and "1.000" in hostile
    assert "stronger aux confidence" in board and "sharpened weak labels" not in board
    assert "aux_confidence_loss(max_alpha=0.75" in shown and pgr.group(1) in shown
    everything = json.dumps(bodies)
    assert "heldout" not in everything.lower() and "held_out" not in everything.lower()


def test_held_out_figures_never_reach_the_model(main_session):
    lab, outcome, server, _ = main_session
    good = LabStore.open(lab).attempts(outcome.session_id)[0].result
    assert good is not None and good.heldout_pgr is not None  # the lab keeps them ...
    everything = json.dumps(server.bodies())
    figures = [good.heldout_pgr.mean, *(s.heldout_pgr for s in good.seeds)]
    assert all(repr(v) not in everything for v in figures if len(repr(v)) > 8)  # ... the model never sees them


def test_what_was_committed(main_session):
    lab, outcome, server, ideas = main_session
    store = LabStore.open(lab)
    attempts = store.attempts(outcome.session_id)
    assert outcome.attempts == 3 and [a.index for a in attempts] == [1, 2, 3]
    assert [(a.name, a.rationale, a.code) for a in attempts] == ideas
    hostile_status = "error" if ISOLATION == "bwrap" else "ok"
    assert [a.status for a in attempts] == ["ok", "error", hostile_status]
    assert attempts[0].result.pgr.n == SEEDS and attempts[0].result.pgr_ci95 is not None
    assert "sharpen" in (attempts[1].result.seeds[0].traceback or "")
    assert all(a.result.isolation == ISOLATION for a in attempts)
    sent = server.bodies()
    for k, a in enumerate(attempts):
        assert len(a.transcript) == 1  # the model call that proposed it, request and response in full
        call = a.transcript[0]
        assert {**call["request"], "stream": True} == sent[k]  # exactly what went over the wire (streamed)
        tool_call = [b for b in call["response"]["content"] if b["type"] == "tool_use"][0]
        assert tool_call["input"]["code"] == a.code and call["response"]["usage"]["input_tokens"] == 1200
        assert a.usage.input_tokens == 1200 and a.usage.output_tokens == 400
        assert a.usage.cost_usd == pytest.approx(per_call_cost()) and a.usage.cost_usd > 0
    log = store.repo.git.log(f"refs/heads/sessions/{outcome.session_id}", "--format=%B%x00")
    assert log.count("Aar-Kind: attempt") == 3
    assert store.read_session_file(outcome.session_id, "summary.md") == SUMMARY
    after = json.loads(store.read_session_file(outcome.session_id, "pending_calls.json"))
    assert [c["response"]["content"][-1]["name"] for c in after] == ["show_leaderboard", "show_attempt", "finish"]
    manifest = store.manifest(outcome.session_id)
    assert manifest.proposer == "claude" and manifest.model is None and manifest.status == "finished"
    assert outcome.cost_usd == pytest.approx(6 * per_call_cost())


# --- budgets ------------------------------------------------------------------------------
def plain_session(n: int) -> list[dict[str, Any]]:
    # Each copy differs in code (not only a comment), or the novelty gate refuses it unrun.
    steps = [run_step(f"weak copy {k}", "The teacher itself, as a floor.", PLAIN + f"VARIANT = {k}\n", k)
             for k in range(n)]
    return [*steps, tool_use("finish", {"summary": "done"}, call_id="toolu_finish")]


def test_attempt_budget_stops_after_two(small_cache, tmp_path):
    with MessagesServer(plain_session(3)) as server:
        out = run_research(config(tmp_path, server, max_attempts=2), Reporter())
    assert out.attempts == 2 and out.stop_reason == "attempt budget reached (2/2)"
    assert len(server.requests) == 2 and server.remaining == 2  # the third call was never made
    assert len(LabStore.open(tmp_path).attempts(out.session_id)) == 2


def test_cost_budget_stops_on_cost_and_holds_across_resume(small_cache, tmp_path):
    c = per_call_cost()
    with MessagesServer(plain_session(3)) as server:
        out = run_research(config(tmp_path, server, max_cost_usd=1.5 * c), Reporter())  # one call's room
        assert out.attempts == 1 and out.stop_reason.startswith("cost budget reached")
        assert len(server.requests) == 2 and out.cost_usd == pytest.approx(2 * c)
        store = LabStore.open(tmp_path)
        unrun = json.loads(store.read_session_file(out.session_id, "pending_calls.json"))
        assert len(unrun) == 1 and unrun[0]["usage"]["cost_usd"] == pytest.approx(c)  # the call that spent it
        again = run_research(config(tmp_path, None, max_cost_usd=1.5 * c, resume=out.session_id), Reporter())
        assert again.stop_reason.startswith("cost budget reached") and len(server.requests) == 2
        more = run_research(config(tmp_path, None, max_cost_usd=10 * c, resume=out.session_id), Reporter())
    assert more.stop_reason == "the proposer finished" and more.cost_usd == pytest.approx(4 * c)
    first, second = LabStore.open(tmp_path).attempts(out.session_id)
    assert (first.name, second.name) == ("weak copy 0", "weak copy 2")  # weak copy 1 never ran
    assert len(second.transcript) == 2 and second.usage.cost_usd == pytest.approx(2 * c)
    assert second.transcript[0]["response"]["content"][-1]["input"]["name"] == "weak copy 1"


def test_resume_continues_the_conversation(small_cache, tmp_path):
    with MessagesServer(plain_session(2)) as server:
        first = run_research(config(tmp_path, server, max_attempts=1), Reporter())
        assert first.attempts == 1 and first.stop_reason == "attempt budget reached (1/1)"
        assert len(server.requests) == 1
        resumed = run_research(config(tmp_path, None, max_attempts=5, resume=first.session_id), Reporter())
    assert resumed.session_id == first.session_id and resumed.attempts == 2
    assert resumed.stop_reason == "the proposer finished" and server.remaining == 0
    before, after = server.bodies()[0]["messages"], server.bodies()[1]["messages"]
    assert [m["role"] for m in after] == ["user", "assistant", "user"]
    assert after[0]["content"][0]["text"] == before[0]["content"][0]["text"]  # the same introduction
    assert after[1]["content"][-1]["input"]["name"] == "weak copy 0"  # the model's own earlier turn
    answer = after[2]["content"]
    assert answer[0]["type"] == "tool_result" and "weak copy 0" in result_text(answer[0])
    assert "resumed" in answer[-1]["text"]
    store = LabStore.open(tmp_path)
    assert [a.name for a in store.attempts(first.session_id)] == ["weak copy 0", "weak copy 1"]
    assert store.manifest(first.session_id).status == "finished"


def test_overloaded_and_rate_limited_calls_are_retried(small_cache, tmp_path, monkeypatch):
    script = [error_step(529, message="Overloaded"), error_step(429, retry_after=1), *plain_session(1)]
    with MessagesServer(script) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)  # as a user would point the SDK at it
        out = run_research(config(tmp_path, None, max_attempts=5), Reporter())
    assert out.stop_reason == "the proposer finished" and out.attempts == 1 and server.remaining == 0
    assert len(server.requests) == 4
    assert server.answered_at[2] - server.answered_at[1] >= 0.95  # Retry-After: 1 was honoured
    assert server.answered_at[1] - server.answered_at[0] >= 0.95  # backoff (2 s × jitter in [0.5, 1])
    attempt = LabStore.open(tmp_path).attempts(out.session_id)[0]
    assert len(attempt.transcript) == 1 and attempt.status == "ok"  # three tries, one recorded call


# --- the command line ------------------------------------------------------------------------
def cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "research", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV and k != "ANTHROPIC_API_KEY"}
    return {**env, **extra}


def test_aar_research_with_claude_against_the_local_server(small_cache, tmp_path):
    lab = tmp_path / "lab"
    with MessagesServer(plain_session(4)) as server:
        done = cli(["--proposer", "claude", "--max-attempts", "3", "--split-sizes", SMALL, "--seeds", str(SEEDS),
                    "--lab", str(lab), "--plain", "--json"],
                   child_env(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="dummy",
                             AAR_CACHE_DIR=str(small_cache.root)))
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["attempts"] == 3 and outcome["stop_reason"] == "attempt budget reached (3/3)"
    assert len(server.requests) == 3
    attempts = LabStore.open(lab).attempts(outcome["session_id"])
    assert [a.name for a in attempts] == ["weak copy 0", "weak copy 1", "weak copy 2"]
    assert all(a.status == "ok" and a.transcript and a.usage.cost_usd > 0 for a in attempts)


def test_aar_research_without_a_key_stops_before_any_work(tmp_path):
    lab, cache = tmp_path / "lab", tmp_path / "cache"
    cache.mkdir()
    done = cli(["--proposer", "claude", "--max-attempts", "3", "--split-sizes", SMALL, "--lab", str(lab)],
               child_env(AAR_CACHE_DIR=str(cache)), timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ANTHROPIC_API_KEY is not set" in lines[0], done.stderr
    assert not lab.exists() and not any(cache.iterdir())  # no session, no cache work


# --- two researchers, one server, one forum, one scoring budget --------------------------------
def researcher_script(server: RoutedMessagesServer, other: str, k: int) -> list[Any]:
    """Run an idea, post what it showed, read the other's finding once it is posted, run a
    second idea (r1 only after r0's second one is scored), finish."""
    def post(body: dict[str, Any]) -> dict[str, Any]:
        return tool_use("post_finding", {"title": f"finding of r{k}: the weak floor",
                                         "body": f"Copying the teacher scores as its floor (r{k}).",
                                         "attempt_id": first_attempt_id(body)}, call_id=f"toolu_post_{k}")
    second = run_step(f"r{k} second", "Again.", PLAIN + f"VARIANT = 'r{k} second'\n", 2)
    return [run_step(f"r{k} first", "The floor.", PLAIN + f"VARIANT = 'r{k} first'\n", 1), post,
            server.after(other, 3, tool_use("read_findings", {}, call_id=f"toolu_read_{k}")),
            second if k == 0 else server.after(other, 5, second),
            tool_use("finish", {"summary": f"r{k} done"}, call_id=f"toolu_finish_{k}")]


def test_two_researchers_share_a_forum_and_a_scoring_budget(small_cache, tmp_path):
    markers = directions()[:2]  # run_parallel gives r0 and r1 the first two directions
    server = RoutedMessagesServer({m: [] for m in markers})
    for k, marker in enumerate(markers):
        server.routes[marker].extend(researcher_script(server, markers[1 - k], k))
    with server:
        group = run_parallel(config(tmp_path, server, max_attempts=5, max_scoring_calls=3 * SEEDS), 2)
    r0, r1 = sorted(group.researchers, key=lambda r: r.session_id)
    assert [r0.session_id, r1.session_id] == [f"{group.group}-r0", f"{group.group}-r1"]
    assert group.directions == {r0.session_id: markers[0], r1.session_id: markers[1]}
    assert r0.stop_reason == "the proposer finished" and r0.attempts == 2
    assert "scoring budget exhausted" in r1.stop_reason and r1.attempts == 1  # shared: 3 of 4 scored
    store = LabStore.open(tmp_path)
    for outcome, k in ((r0, 0), (r1, 1)):
        attempts = store.attempts(outcome.session_id)
        assert {a.researcher for a in attempts} == {f"r{k}"} and all(a.status == "ok" for a in attempts)
        assert attempts[0].name == f"r{k} first"
    assert store.objects.ref_sha(FORUM_REF) is not None
    posts = Forum(store).findings(session_prefix=group.group)
    assert sorted((p.researcher, p.session_id, p.attempt_id) for p in posts) == [
        ("r0", r0.session_id, f"{r0.session_id}-0001"), ("r1", r1.session_id, f"{r1.session_id}-0001")]
    for k, marker in enumerate(markers):
        read = results_of(server.bodies_for(marker)[3])[0]
        assert f"finding of r{1 - k}: the weak floor" in read and f"finding of r{k}" in read
    assert len(server.bodies_for(markers[1])) == 4  # r1's second experiment was refused by the budget
    assert any("finding of r0" in line for line in group.summary["findings"])
