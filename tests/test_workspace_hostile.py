"""A researcher that tries to fill its workspace through the tools (one file past the per-file
cap, an edit that grows a file past it, an insert, an import of an attempt whose files pass the
workspace's total cap), through the real research loop and the real ``anthropic`` SDK. Each call
gets its declared outcome: an error result with a one-line reason saying what to do, nothing
written; what was saved before stays in the lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.progress import Reporter
from agent.proposers.tooling import EDITOR_TOOL
from agent.research import run_research
from experiments.store import LabStore
from experiments.workspace import Workspace, WorkspaceLimits
from tests.fakes.messages_server import MessagesServer
from tests.fakes.scripts import result_text, tool_results, tool_use
from tests.test_e2e_claude import config
from tests.test_history_support import attempt, manifest

CAPS = WorkspaceLimits()  # the caps every researcher's workspace has
KEEP = "saved before the flood\n"


@pytest.fixture
def anthropic_env(monkeypatch):
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "AAR_PRICES", "CLAUDE_CODE_USE_BEDROCK",
                 "CLAUDE_CODE_USE_VERTEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")


def bulky_attempt(lab: Path) -> str:
    """An earlier session's attempt whose workspace is larger than a workspace may hold."""
    store = LabStore.open(lab)
    store.create_session(manifest("bulky-session"))
    big = attempt("bulky-session", 1, "bulky idea")
    chunk = b"# padding\n" * (CAPS.max_file_bytes // 10 - 1)
    files = {f"part_{k:02d}.py": chunk for k in range(CAPS.max_total_bytes // len(chunk) + 1)}
    big.extra["workspace"] = {"entry": None, "files": sorted(files), "modules": True}
    roomy = WorkspaceLimits(max_total_bytes=2 * CAPS.max_total_bytes)
    store.record_attempt(big, workspace=Workspace(files, roomy).to_tree(store.objects))
    return big.attempt_id


@pytest.mark.slow
def test_filling_the_workspace_through_the_tools_is_refused_and_loses_nothing(small_cache, tmp_path,
                                                                             anthropic_env):
    bulky = bulky_attempt(tmp_path)
    near = "ANCHOR" + "x" * (CAPS.max_file_bytes - 16)  # 10 bytes under the cap
    edit = EDITOR_TOOL
    script = [
        tool_use(edit, {"command": "create", "path": "notes.md", "file_text": KEEP}, call_id="t1"),
        tool_use(edit, {"command": "create", "path": "huge.py", "file_text": "y" * (CAPS.max_file_bytes + 1)},
                 call_id="t2"),
        tool_use(edit, {"command": "create", "path": "near.py", "file_text": near}, call_id="t3"),
        tool_use(edit, {"command": "str_replace", "path": "near.py", "old_str": "ANCHOR", "new_str": "z" * 100},
                 call_id="t4"),
        tool_use(edit, {"command": "insert", "path": "notes.md", "insert_line": 1,
                        "insert_text": "w" * (CAPS.max_file_bytes + 1)}, call_id="t5"),
        tool_use("import_attempt", {"attempt_id": bulky}, call_id="t6"),
        tool_use(edit, {"command": "view", "path": "."}, call_id="t7"),
        tool_use("finish", {"summary": "tried to fill the workspace"}, call_id="t8"),
    ]
    with MessagesServer(script) as server:
        out = run_research(config(tmp_path, server, max_attempts=3), Reporter())
        answers = [tool_results(b)[0] for b in server.bodies()[1:]]
    assert out.stop_reason == "the proposer finished", out
    texts = [result_text(a) for a in answers]
    assert [bool(a.get("is_error")) for a in answers] == [False, True, False, True, True, True, False]
    for text in (texts[1], texts[3], texts[4], texts[5]):  # one line, saying what to do
        assert "nothing was written" in text and len(text.strip().splitlines()) == 1, text
    assert f"one file may hold {CAPS.max_file_bytes:,}" in texts[1] and "split it" in texts[1]
    assert "near.py" in texts[3] and f"one file may hold {CAPS.max_file_bytes:,}" in texts[3]
    assert f"its cap is {CAPS.max_total_bytes:,}" in texts[5] and "shorten or overwrite" in texts[5]
    assert "notes.md" in texts[6] and "near.py" in texts[6] and "part_" not in texts[6]
    store = LabStore.open(tmp_path)
    kept = Workspace.from_tree(store.objects, store.workspace_tree(out.session_id))
    assert kept.files == {"notes.md": KEEP.encode(), "near.py": near.encode()}  # nothing saved was lost
    assert store.attempts(out.session_id) == [] and store.check().ok  # no attempt spent, the lab healthy
