"""The researcher's workspace: confined file tools with caps, content-addressed commits with
every attempt and saved state, restore on --resume, and the text editor tool through the real
``anthropic`` SDK against the local Messages server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.proposers.base import ProposerConfig, get_proposer
from agent.proposers.tooling import (
    EDITOR_TOOL,
    EDITOR_TYPE,
    available_tools,
    dispatch,
    openai_tools,
)
from experiments.gitobjects import BLOB_MODE, TREE_MODE
from experiments.store import LabStore
from experiments.workspace import Workspace, WorkspaceError, WorkspaceLimits
from sandbox.execution.analysis import check_png
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import result_text, tool_results, tool_use
from tests.fakes.tools import RecordingTools
from tests.test_history_support import attempt, manifest

HELPER = "def sharpen(p, t):\n    q = p ** (1 / t)\n    return q / q.sum(axis=1, keepdims=True)\n"


def git(lab: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=lab, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabStore:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    return LabStore.open(tmp_path / "lab")


# --- hostile paths: each refused with a declared one-line message, nothing written ------------
@pytest.mark.parametrize(("path", "says"), [
    ("/etc/passwd", "is absolute"),
    ("/repo/helpers.py", "is absolute"),
    ("~/x.py", "is absolute"),
    ("C:\\x.py", "is absolute"),
    ("../other-r1/helpers.py", "leaves the workspace"),
    ("lib/../../x.py", "leaves the workspace"),
    ("lib\\..\\..\\x.py", "leaves the workspace"),
    (".git/config", "is not allowed"),
    ("a\x1b[2Jb.py", "is not allowed"),
    ("a\nb.py", "is not allowed"),
    ("/".join("d" * 7), "nests 7 deep"),
    ("", "give a file path"),
])
def test_paths_outside_or_odd_are_refused(path, says):
    ws = Workspace()
    with pytest.raises(WorkspaceError, match=says) as caught:
        ws.create(path, "x = 1\n")
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message  # one line, no terminal escapes echoed
    assert ws.files == {}


def test_caps_refuse_and_keep_what_was_saved():
    ws = Workspace(limits=WorkspaceLimits(max_file_bytes=100, max_total_bytes=150, max_files=3))
    ws.create("a.py", "a" * 90)
    with pytest.raises(WorkspaceError, match="one file may hold 100"):
        ws.create("b.py", "b" * 101)
    with pytest.raises(WorkspaceError, match="its cap is 150"):
        ws.create("b.py", "b" * 70)
    ws.create("b.py", "b" * 10)
    ws.create("c.py", "c")
    with pytest.raises(WorkspaceError, match="already has 3 files"):
        ws.create("d.py", "d")
    with pytest.raises(WorkspaceError, match="would be 101 bytes"):  # an edit that grows it past the cap
        ws.str_replace("a.py", "a" * 90, "a" * 101)
    assert ws.files == {"a.py": b"a" * 90, "b.py": b"b" * 10, "c.py": b"c"}
    ws.create("a.py", "short")  # overwriting frees the room
    assert ws.total_bytes() == 5 + 10 + 1


def test_file_and_folder_cannot_share_a_name():
    ws = Workspace()
    ws.create("lib/plots.py", "x")
    with pytest.raises(WorkspaceError, match="is a folder"):
        ws.create("lib", "y")
    ws.create("notes.md", "n")
    with pytest.raises(WorkspaceError, match="'notes.md' is a file"):
        ws.create("notes.md/x.py", "z")


def test_editor_commands_follow_the_text_editor_semantics():
    ws = Workspace()
    ws.create("helpers.py", HELPER)
    assert ws.view("helpers.py").splitlines()[0] == "     1\tdef sharpen(p, t):"
    assert ws.view("helpers.py", [2, -1]).splitlines()[0] == "     2\t    q = p ** (1 / t)"
    with pytest.raises(WorkspaceError, match="does not fit"):
        ws.view("helpers.py", [3, 99])
    with pytest.raises(WorkspaceError, match="occurs 3 times"):
        ws.str_replace("helpers.py", "q", "r")
    with pytest.raises(WorkspaceError, match="does not occur"):
        ws.str_replace("helpers.py", "softmax", "x")
    assert "line 2" in ws.str_replace("helpers.py", "q = p ** (1 / t)", "q = p ** (1.0 / t)")
    ws.insert("helpers.py", 0, "import numpy as np\n")
    assert ws.text("helpers.py").startswith("import numpy as np\n\ndef sharpen")
    with pytest.raises(WorkspaceError, match="give 0 .the top. to"):
        ws.insert("helpers.py", 99, "x")
    with pytest.raises(WorkspaceError, match="no file 'nothere.py'"):
        ws.view("nothere.py")
    ws.create("lib/plots.py", "P = 1\n")
    listing = ws.view(".")
    assert "helpers.py" in listing and "lib/plots.py" in listing and "2/200 files" in listing
    assert "lib/plots.py" in ws.view("lib") and "helpers.py" not in ws.view("lib")


def test_binary_files_are_named_not_dumped(store):
    ws = Workspace({"blob.bin": b"\xff\xfe\x00"})
    with pytest.raises(WorkspaceError, match="not UTF-8 text .3 bytes."):
        ws.view("blob.bin")


# --- git: content-addressed snapshots, restore, refusals ---------------------------------------
def test_snapshots_share_unchanged_files_and_round_trip(store):
    ws = Workspace()
    ws.create("helpers.py", HELPER)
    ws.create("notes.md", "first note\n")
    first = ws.to_tree(store.objects)
    assert ws.to_tree(store.objects) == first  # no change: the same tree, nothing written
    ws.str_replace("notes.md", "first", "second")
    second = ws.to_tree(store.objects)
    assert second != first
    before, after = store.objects.read_tree(first), store.objects.read_tree(second)
    assert before["helpers.py"] == after["helpers.py"] and before["notes.md"] != after["notes.md"]
    back = Workspace.from_tree(store.objects, second)
    assert back.files == ws.files and back.to_tree(store.objects) == second
    nested = Workspace({"lib/plots.py": b"P = 1\n", "a.py": b"A = 2\n"})
    tree = nested.to_tree(store.objects)
    assert store.objects.read_tree(tree)["lib"][1] == TREE_MODE
    assert Workspace.from_tree(store.objects, tree).files == nested.files


@pytest.mark.parametrize(("mode", "name", "says"), [
    (0o120000, "escape", "holds a symlink at 'escape'"),
    (0o160000, "sub", "an entry of mode 160000"),
    (BLOB_MODE, "bad\x1b[0mname", "is not allowed"),
])
def test_a_committed_tree_with_a_symlink_or_odd_name_is_refused(store, mode, name, says):
    target = store.objects.blob("/work/private/gold_test.npy")
    tree = store.objects.tree({name: (target, mode), "ok.py": (store.objects.blob("x"), BLOB_MODE)})
    with pytest.raises(WorkspaceError, match=says):
        Workspace.from_tree(store.objects, tree)


def test_every_attempt_and_state_commit_carries_the_workspace(store):
    store.create_session(manifest("s1"))
    ws = Workspace()
    ws.create("helpers.py", HELPER)
    store.record_attempt(attempt("s1", 1, "one"), workspace=ws.to_tree(store.objects))
    ws.create("notes.md", "after one\n")
    store.write_session_files("s1", {"proposer_state.json": "{}"}, workspace=ws.to_tree(store.objects))
    sha = store.record_attempt(attempt("s1", 2, "two"), workspace=ws.to_tree(store.objects))
    files = git(store.path, "ls-tree", "-r", "--name-only", sha).split()
    assert "attempts/0001-one/workspace/helpers.py" in files and "attempts/0001-one/workspace/notes.md" not in files
    assert {"attempts/0002-two/workspace/helpers.py", "attempts/0002-two/workspace/notes.md",
            "workspace/helpers.py", "workspace/notes.md"} <= set(files)
    # content-addressed: helpers.py is one blob in both attempts and at the branch root
    blobs = {line.split()[2] for line in git(store.path, "ls-tree", "-r", sha).splitlines()
             if line.endswith("/helpers.py") or line.endswith("\thelpers.py")}
    assert len(blobs) == 1
    first = [a for a in store.attempts("s1") if a.index == 1][0]
    assert Workspace.from_tree(store.objects, store.attempt_workspace(first.attempt_id)).files == {
        "helpers.py": HELPER.encode()}
    assert Workspace.from_tree(store.objects, store.workspace_tree("s1")).files == ws.files
    store.set_session_status("s1", "finished")  # a later status commit keeps the workspace
    assert store.workspace_tree("s1") == ws.to_tree(store.objects)
    assert store.check().ok


# --- the tool: Claude's text editor type, a plain function tool elsewhere -----------------------
def _claude(server: MessagesServer):
    proposer = get_proposer("claude", ProposerConfig(base_url=server.url))
    proposer.check_ready()
    return proposer


@pytest.fixture
def anthropic_env(monkeypatch):
    for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID",
                 "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_BASE_URL", "AAR_PRICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")


def test_claude_edits_its_workspace_through_the_text_editor_tool(anthropic_env):
    edit = EDITOR_TOOL
    script = [
        tool_use(edit, {"command": "create", "path": "helpers.py", "file_text": HELPER}, call_id="t1"),
        tool_use(edit, {"command": "str_replace", "path": "helpers.py", "old_str": "1 / t",
                        "new_str": "1.0 / t"}, call_id="t2"),
        tool_use(edit, {"command": "insert", "path": "helpers.py", "insert_line": 0,
                        "insert_text": "import numpy as np"}, call_id="t3"),
        tool_use(edit, {"command": "view", "path": "/repo/helpers.py"}, call_id="t4"),
        tool_use(edit, {"command": "view", "path": "../r1/helpers.py"}, call_id="t5"),
        tool_use(edit, {"command": "view", "path": "."}, call_id="t6"),
        tool_use(edit, {"command": "create", "path": "x.py"}, call_id="t7"),
        tool_use("finish", {"summary": "wrote a helper"}, call_id="t8"),
    ]
    tools = RecordingTools(workspace=Workspace())
    with MessagesServer(script) as server:
        _claude(server).run(tools)
    bodies = server.bodies()
    offered = [t for t in bodies[0]["tools"] if t["name"] == edit]
    assert offered and offered[0]["type"] == EDITOR_TYPE and "input_schema" not in offered[0]
    answers = [tool_results(b)[0] for b in bodies[1:]]
    texts = [result_text(a) for a in answers]
    assert texts[0].startswith("created helpers.py") and texts[1].startswith("edited helpers.py at line 2")
    assert [bool(a.get("is_error")) for a in answers] == [False, False, False, True, True, False, True]
    assert "is absolute" in texts[3] and "leaves the workspace" in texts[4]
    assert "helpers.py" in texts[5] and "create needs file_text" in texts[6]
    assert tools.workspace.text("helpers.py") == "import numpy as np\n" + HELPER.replace("1 / t", "1.0 / t")


def test_the_editor_is_a_plain_function_tool_for_openai_and_only_with_a_workspace():
    assert EDITOR_TOOL not in [t.name for t in available_tools(RecordingTools())]
    defs = available_tools(RecordingTools(workspace=Workspace()))
    spec = [t for t in openai_tools(defs) if t["function"]["name"] == EDITOR_TOOL][0]["function"]
    params = spec["parameters"]["properties"]
    assert params["command"]["enum"] == ["view", "create", "str_replace", "insert"]
    assert params["view_range"]["items"] == {"type": "integer"} and "relative" in spec["description"]
    bad = dispatch(RecordingTools(workspace=Workspace()), defs, EDITOR_TOOL, {"command": "delete", "path": "a"})
    assert bad.is_error and "command" in bad.text


# --- the research loop: committed with the attempt and the state, restored on --resume ----------
def test_the_loop_commits_the_workspace_and_resume_restores_it(small_cache, tmp_path, anthropic_env):
    from agent.progress import Reporter
    from agent.research import run_research
    from tests.test_e2e_claude import PLAIN, config

    edit = EDITOR_TOOL
    first_script = [
        tool_use(edit, {"command": "create", "path": "helpers.py", "file_text": HELPER}, call_id="t1"),
        tool_use("run_experiment", {"name": "teacher floor", "hypothesis": "The teacher as a floor.",
                                    "code": PLAIN}, call_id="t2"),
        tool_use(edit, {"command": "create", "path": "notes.md", "file_text": "floor measured\n"}, call_id="t3"),
    ]  # then the script runs out: the server refuses the next call and the session fails
    with MessagesServer(first_script) as server:
        first = run_research(config(tmp_path, server, max_attempts=5), Reporter())
    assert first.ending == "failed" and first.attempts == 1
    store = LabStore.open(tmp_path)
    (only,) = store.attempts(first.session_id)
    ran_with = Workspace.from_tree(store.objects, store.attempt_workspace(only.attempt_id))
    assert ran_with.files == {"helpers.py": HELPER.encode()}  # what existed when it ran
    now = Workspace.from_tree(store.objects, store.workspace_tree(first.session_id))
    assert now.files == {"helpers.py": HELPER.encode(), "notes.md": b"floor measured\n"}  # the edit after it
    resumed_script = [tool_use(edit, {"command": "view", "path": "notes.md"}, call_id="t4"),
                      tool_use("finish", {"summary": "done"}, call_id="t5")]
    with MessagesServer(resumed_script) as server:
        again = run_research(config(tmp_path, server, max_attempts=5, resume=first.session_id), Reporter())
    assert again.stop_reason == "the proposer finished"
    assert "floor measured" in result_text(tool_results(server.bodies()[1])[0])
    assert LabStore.open(tmp_path).check().ok


# --- the must-show path: analysis, a helper module, a multi-file idea, a plot seen as an image ---
LOOK_AT_WEAK = '''
import numpy as np
soft = ctx.weak_soft
prior = soft.mean(axis=0)
print("weak prior", np.round(prior, 3).tolist())
ctx.report("weak_confident_share", float((soft.max(axis=1) > 0.6).mean()))
ctx.save_png("confidence", np.tile(np.sort(soft.max(axis=1))[None, :], (16, 1)))
'''
HELPER_MODULE = '''"""Helpers kept in the workspace."""

from sandbox.runtime import train_head


def fit(ctx):
    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed)
    return head.predict_proba(ctx.features("test"))
'''
ENTRY = "from helpers import fit\n\n\ndef run(ctx):\n    return fit(ctx)\n"


def test_claude_analyses_writes_a_helper_and_runs_a_multi_file_idea(small_cache, tmp_path, anthropic_env):
    from agent.progress import Reporter
    from agent.research import run_research
    from tests.test_e2e_claude import config

    earlier = LabStore.open(tmp_path)  # an earlier session of the lab, with a helper of its own
    earlier.create_session(manifest("earlier-session"))
    prior = attempt("earlier-session", 1, "prior helper idea")
    kept = Workspace({"prior_helpers.py": b"K = 3\n"})
    prior.extra["workspace"] = {"entry": None, "files": ["prior_helpers.py"], "modules": True}
    earlier.record_attempt(prior, workspace=kept.to_tree(earlier.objects))
    edit = EDITOR_TOOL
    script = [
        tool_use("run_analysis", {"name": "weak label look", "code": LOOK_AT_WEAK}, call_id="a1"),
        tool_use(edit, {"command": "create", "path": "helpers.py", "file_text": HELPER_MODULE}, call_id="e1"),
        tool_use(edit, {"command": "create", "path": "main.py", "file_text": ENTRY}, call_id="e2"),
        tool_use("run_experiment", {"name": "vanilla via helper", "hypothesis": "The helper reproduces vanilla.",
                                    "path": "main.py"}, call_id="x1"),
        tool_use("run_analysis", {"name": "helper import", "code": "import helpers\nprint(helpers.fit.__module__)"},
                 call_id="a2"),
        tool_use("import_attempt", {"attempt_id": prior.attempt_id}, call_id="i1"),
        tool_use("show_attempt", {"attempt_id": prior.attempt_id}, call_id="s1"),
        tool_use("finish", {"summary": "looked, wrote a helper, ran it"}, call_id="f1"),
    ]
    with MessagesServer(script) as server:
        out = run_research(config(tmp_path, server, max_attempts=5, max_analysis_s=600), Reporter())
    assert out.stop_reason == "the proposer finished" and server.remaining == 0, out
    bodies = server.bodies()
    look = tool_results(bodies[1])[0]
    blocks = look["content"]
    assert blocks[0]["type"] == "text" and "weak prior" in blocks[0]["text"] and "Not scored" in blocks[0]["text"]
    assert "weak_confident_share=" in blocks[0]["text"] and "analysis time used" in blocks[0]["text"]
    (image,) = [b for b in blocks if b["type"] == "image"]
    assert image["source"]["media_type"] == "image/png"
    import base64
    assert check_png(base64.b64decode(image["source"]["data"]))[0] is None
    ran = result_text(tool_results(bodies[4])[0])
    assert ": ok" in ran and "PGR (dev)" in ran
    assert "helpers" in result_text(tool_results(bodies[5])[0])  # an analysis imports the workspace too
    imported = result_text(tool_results(bodies[6])[0])
    folder = "imported/a_" + prior.attempt_id.replace("-", "_")
    assert f"into `{folder}/`" in imported and "prior helper idea" in imported and "PGR" in imported
    assert f"{folder}/workspace/prior_helpers.py" in imported
    assert "epochs=11" in result_text(tool_results(bodies[7])[0])  # show_attempt reaches the other session
    assert "heldout" not in json.dumps(bodies).lower()
    store = LabStore.open(tmp_path)
    now = Workspace.from_tree(store.objects, store.workspace_tree(out.session_id))
    assert now.text(f"{folder}/workspace/prior_helpers.py") == "K = 3\n"
    assert "epochs=11" in now.text(f"{folder}/idea.py")
    (attempt_,) = store.attempts(out.session_id)
    assert attempt_.code == ENTRY and attempt_.extra["workspace"]["entry"] == "main.py"
    snap = Workspace.from_tree(store.objects, store.attempt_workspace(attempt_.attempt_id))
    assert snap.text("helpers.py") == HELPER_MODULE and snap.text("main.py") == ENTRY
    runs = store.analysis_runs(out.session_id)
    assert list(runs) == ["0001-weak-label-look", "0002-helper-import"]
    look = runs["0001-weak-label-look"]
    assert look["figures"] == ["confidence.png"] and look["status"] == "ok"
    files = git(store.path, "ls-tree", "-r", "--name-only", f"sessions/{out.session_id}").split()
    assert "analyses/0001-weak-label-look/figures/confidence.png" in files
    assert "analyses/0002-helper-import/workspace/helpers.py" in files
    assert attempt_.result.pgr is not None and len(attempt_.result.seeds) == 2  # the only scoring calls
    assert store.check().ok
    # replay: the attempt reruns from its committed snapshot; --llm re-drives the recorded
    # responses (file and analysis calls included) and reproduces the PGR
    from agent.replay_llm import replay_llm
    from experiments.replay import replay_session

    report = replay_session(store, out.session_id)
    assert report.reproduced == report.compared == 1, report
    again = replay_llm(out.session_id, tmp_path, isolation=config(tmp_path).run.isolation)
    assert again.reproduced, again
    replayed = LabStore.open(tmp_path).attempts(again.replay_session)[0]
    assert Workspace.from_tree(store.objects, LabStore.open(tmp_path).attempt_workspace(replayed.attempt_id)).files \
        == snap.files
    assert LabStore.open(tmp_path).check().ok
