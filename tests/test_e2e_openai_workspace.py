"""The researcher's workspace end to end through the OpenAI-compatible proposer: the official
``openai`` SDK against the local chat-completions server, the real research loop, sandbox,
evaluator and git lab. A scripted model analyses the weak labels, writes a helper module with
the file tool, runs an experiment whose entry file imports it, hears its figure described as
text (chat completions' tool messages carry no images), imports another session's attempt and
finishes; every step is in the lab, ``aar check`` is healthy and both replays reproduce the PGR.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import COMMAND_MODULES, app
from agent.progress import Reporter
from agent.proposers.tooling import EDITOR_TOOL
from agent.research import run_research
from agent.session_setup import ResearchConfig
from experiments.schemas import RunConfig
from experiments.store import LabStore
from experiments.workspace import Workspace
from tests.conftest import SMALL
from tests.fakes.messages_server import CHAT_PATH, MessagesServer
from tests.fakes.scripts import chat_tool_call
from tests.test_e2e_claude import ISOLATION, SEEDS
from tests.test_history_support import attempt, manifest
from tests.test_workspace import ENTRY, HELPER_MODULE, LOOK_AT_WEAK, git

pytestmark = pytest.mark.slow  # a whole session and two replays (about 40 s of CPU)
MODEL = "qwen2.5-coder:7b"  # a local model: not in the price table, so the session costs nothing


@pytest.fixture(autouse=True)
def _openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AAR_PRICES"):
        monkeypatch.delenv(name, raising=False)


def openai_config(lab: Path, server: MessagesServer, **budgets: Any) -> ResearchConfig:
    run = RunConfig(split_sizes=SMALL, base_url=server.url + "/v1", time_budget_s=120, isolation=ISOLATION,
                    budgets=budgets)
    return ResearchConfig(task="wordnet-10", seeds=SEEDS, lab=lab, proposer="openai", model=MODEL, run=run)


def tool_message(body: dict[str, Any]) -> str:
    """The content of the last tool message a chat-completions request carries back."""
    return next(m for m in reversed(body["messages"]) if m["role"] == "tool")["content"]


def earlier_session(lab: Path) -> str:
    """An earlier session of the lab with one attempt and a helper in its workspace."""
    store = LabStore.open(lab)
    store.create_session(manifest("earlier-session"))
    prior = attempt("earlier-session", 1, "prior helper idea")
    prior.extra["workspace"] = {"entry": None, "files": ["prior_helpers.py"], "modules": True}
    store.record_attempt(prior, workspace=Workspace({"prior_helpers.py": b"K = 3\n"}).to_tree(store.objects))
    return prior.attempt_id


@pytest.fixture(scope="module")
def openai_session(small_cache, tmp_path_factory):
    lab = tmp_path_factory.mktemp("lab")
    prior_id = earlier_session(lab)
    script = [
        chat_tool_call("run_analysis", {"name": "weak label look", "code": LOOK_AT_WEAK}, call_id="call_a1"),
        chat_tool_call(EDITOR_TOOL, {"command": "create", "path": "helpers.py", "file_text": HELPER_MODULE},
                       call_id="call_e1"),
        chat_tool_call(EDITOR_TOOL, {"command": "create", "path": "main.py", "file_text": ENTRY}, call_id="call_e2"),
        chat_tool_call("run_experiment", {"name": "vanilla via helper", "hypothesis": "The helper reproduces vanilla.",
                                          "path": "main.py"}, call_id="call_x1"),
        chat_tool_call("import_attempt", {"attempt_id": prior_id}, call_id="call_i1"),
        chat_tool_call("finish", {"summary": "looked, wrote a helper, ran it, imported prior work"},
                       call_id="call_f1"),
    ]
    with pytest.MonkeyPatch.context() as mp:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AAR_PRICES"):
            mp.delenv(name, raising=False)
        with MessagesServer(script) as server:
            out = run_research(openai_config(lab, server, max_attempts=5, max_analysis_s=600), Reporter())
    return lab, out, server, prior_id


def test_what_the_model_heard(openai_session):
    _, out, server, prior_id = openai_session
    assert out.stop_reason == "the proposer finished" and server.remaining == 0, out
    bodies = server.bodies(CHAT_PATH)
    assert len(bodies) == 6 and all(r["path"] == CHAT_PATH for r in server.requests)
    assert bodies[0]["model"] == MODEL
    offered = {t["function"]["name"] for t in bodies[0]["tools"]}
    assert {"run_analysis", EDITOR_TOOL, "import_attempt", "run_experiment", "finish"} <= offered
    look = tool_message(bodies[1])
    assert "weak prior" in look and "Not scored" in look and "weak_confident_share=" in look
    assert "confidence.png" in look and "does not carry images" in look  # the figure, as text
    assert not any(isinstance(m.get("content"), list) for b in bodies for m in b["messages"])  # no image parts
    assert tool_message(bodies[2]).startswith("created helpers.py")
    ran = tool_message(bodies[4])
    assert ": ok" in ran and "PGR (dev)" in ran
    folder = "imported/a_" + prior_id.replace("-", "_")
    imported = tool_message(bodies[5])
    assert f"into `{folder}/`" in imported and f"{folder}/workspace/prior_helpers.py" in imported
    assert "heldout" not in json.dumps(bodies).lower()


def test_every_step_is_in_the_lab(openai_session):
    lab, out, server, prior_id = openai_session
    store = LabStore.open(lab)
    (ran,) = store.attempts(out.session_id)
    assert ran.code == ENTRY and ran.extra["workspace"]["entry"] == "main.py"
    snap = Workspace.from_tree(store.objects, store.attempt_workspace(ran.attempt_id))
    assert snap.text("helpers.py") == HELPER_MODULE and snap.text("main.py") == ENTRY
    assert ran.result.pgr is not None and len(ran.result.seeds) == SEEDS  # the only scoring calls
    runs = store.analysis_runs(out.session_id)
    assert list(runs) == ["0001-weak-label-look"] and runs["0001-weak-label-look"]["figures"] == ["confidence.png"]
    files = git(store.path, "ls-tree", "-r", "--name-only", f"sessions/{out.session_id}").split()
    assert "analyses/0001-weak-label-look/figures/confidence.png" in files
    folder = "imported/a_" + prior_id.replace("-", "_")
    assert f"workspace/{folder}/workspace/prior_helpers.py" in files  # the import, after the attempt
    # every model call is held: four by the attempt, the two after it by the session's pending calls
    after = json.loads(store.read_session_file(out.session_id, "pending_calls.json"))
    names = [c["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
             for c in [*ran.transcript, *after]]
    assert names == ["run_analysis", EDITOR_TOOL, EDITOR_TOOL, "run_experiment", "import_attempt", "finish"]
    kinds = git(store.path, "log", f"sessions/{out.session_id}", "--format=%(trailers:key=Aar-Kind,valueonly)")
    assert kinds.split().count("analysis") == 1 and kinds.split().count("attempt") == 1
    assert store.manifest(out.session_id).status == "finished"
    for name in COMMAND_MODULES:  # what `aar` does before it runs a command
        importlib.import_module(name)
    checked = CliRunner().invoke(app, ["check", "--lab", str(lab), "--json"])
    assert checked.exit_code == 0 and json.loads(checked.stdout)["ok"] is True, checked.output


def test_both_replays_reproduce_the_pgr(openai_session):
    from agent.replay_llm import replay_llm
    from experiments.replay import replay_session

    lab, out, _, _ = openai_session
    store = LabStore.open(lab)
    report = replay_session(store, out.session_id)
    assert report.reproduced == report.compared == 1, report
    again = replay_llm(out.session_id, lab, isolation=ISOLATION)
    # Requests differ from the recording by design (budget left and runtimes in the texts fed
    # back); the replay is judged on the same code and the same PGR, step by step.
    assert again.reproduced and [s.same_code for s in again.steps] == [True], again
    (original,), (replayed,) = store.attempts(out.session_id), LabStore.open(lab).attempts(again.replay_session)
    assert replayed.result.pgr.mean == pytest.approx(original.result.pgr.mean, abs=1e-9)
    snap = LabStore.open(lab).attempt_workspace(replayed.attempt_id)
    assert Workspace.from_tree(store.objects, snap).files == Workspace.from_tree(
        store.objects, store.attempt_workspace(original.attempt_id)).files
    assert LabStore.open(lab).check().ok
