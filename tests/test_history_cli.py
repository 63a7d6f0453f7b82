"""The history commands as a user runs them (in-process through the real app, and once as a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agent.cli.history  # noqa: F401 - registers the commands on the app
from agent.cli import app
from agent.cli.common import run_app
from experiments.store import LabStore
from tests.test_history_support import attempt, manifest


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabStore:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("COLUMNS", "200")
    store = LabStore.open(tmp_path / "lab")
    store.create_session(manifest("20250101-wordnet-a"))
    store.create_session(manifest("20250102-other-b", task="other-task"))
    first = attempt("20250101-wordnet-a", 1, "vanilla", pgr=0.30, attempt_id="aaaa00000001")
    store.record_attempt(first)
    store.record_attempt(attempt("20250101-wordnet-a", 2, "confident", pgr=0.45, attempt_id="aaaa00000002",
                                 parent_id=first.attempt_id))
    store.record_attempt(attempt("20250101-wordnet-a", 3, "crashes", pgr=None, attempt_id="aaaa00000003"))
    store.record_attempt(attempt("20250102-other-b", 1, "elsewhere", pgr=0.9, attempt_id="bbbb00000001",
                                 task="other-task"))
    return store


def aar(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["aar", *args])
    code = run_app(app)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def run(lab, capsys, monkeypatch):
    def call(*args: str) -> tuple[int, str, str]:
        return aar(capsys, monkeypatch, *args, "--lab", str(lab.path))

    return call


def test_sessions_and_ideas(run):
    code, out, _ = run("sessions", "--json")
    rows = {r["session_id"]: r for r in json.loads(out)}
    assert code == 0 and rows["20250101-wordnet-a"]["attempts"] == 3
    assert rows["20250101-wordnet-a"]["best_pgr"] == pytest.approx(0.45)
    code, out, _ = run("ideas", "--json", "--sort", "pgr", "--status", "ok", "--task", "wordnet-10")
    ideas = json.loads(out)
    assert [r["name"] for r in ideas] == ["confident", "vanilla"]
    assert "heldout_acc" not in ideas[0]
    code, out, _ = run("ideas", "--session", "20250101", "--sort", "index")
    assert code == 0 and out.index("vanilla") < out.index("confident") < out.index("crashes")
    code, _, err = run("ideas", "--status", "bogus")
    assert code == 2 and err.count("\n") == 1 and "unknown status 'bogus'" in err


def test_leaderboard_shows_held_out(run):
    code, out, _ = run("leaderboard", "--task", "wordnet-10", "--json")
    board = json.loads(out)
    assert code == 0 and [r["name"] for r in board] == ["confident", "vanilla"]
    assert board[0]["heldout_acc"] == pytest.approx(0.49 + 0.45 / 4)
    code, out, _ = run("leaderboard", "--task", "wordnet-10")
    assert "held-out acc" in out and "0.603" in out
    code, _, err = run("leaderboard")
    assert code == 2 and "pass --task" in err and "other-task" in err


def test_show_review_and_diff(run):
    code, out, _ = run("show", "aaaa00000002")
    assert code == 0
    for text in ("fewer epochs may overfit", "per seed", "diff against parent vanilla", "epochs=12",
                 "+    head = train_head", "step 2 log"):
        assert text in out, text
    code, _, err = run("review", "aaaa00000002")
    assert code == 2 and "--accept or --reject" in err
    code, out, _ = run("review", "aaaa00000002", "--accept", "--note", "clean, reproduces")
    assert code == 0 and "tester" in out
    code, out, _ = run("show", "aaaa00000002", "--json")
    data = json.loads(out)
    assert data["reviews"][0]["verdict"] == "accept" and data["reviews"][0]["note"] == "clean, reproduces"
    assert "clean, reproduces" in run("show", "aaaa00000002")[1]
    assert json.loads(run("ideas", "--json", "--session", "20250101")[1])[1]["review"] == "accept"
    code, out, _ = run("diff", "aaaa00000001", "aaaa00000002")
    assert code == 0 and "vanilla" in out and "confident" in out and "epochs=11" in out and "epochs=12" in out
    code, out, _ = run("diff", "aaaa00000001", "aaaa00000002", "--unified")
    removed = '-    head = train_head(ctx.features("unlabeled"), ctx.weak_soft, seed=ctx.seed, epochs=11)'
    assert "@@" in out and removed in out
    code, _, err = run("show", "zzzz")
    assert code == 2 and "no attempt 'zzzz'" in err


def test_export_markdown_and_html(run, tmp_path):
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    code, out, _ = run("export", "20250101", "--format", "md", "-o", str(report))
    assert code == 0
    text = report.read_text()
    svg = (tmp_path / "out" / "report-pgr.svg").read_text()
    assert "![PGR over attempts](report-pgr.svg)" in text and "| 2 | confident | ok | +0.450 ± 0.050" in text
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "best +0.450" in svg
    code, out, _ = run("export", "20250101", "--format", "html")
    assert code == 0 and out.startswith("<!doctype html>") and "<svg" in out and "Best attempt: #2 confident" in out
    code, _, err = run("export", "20250101", "--format", "pdf")
    assert code == 2 and "md or html" in err


def test_check_and_errors(run, lab, tmp_path):
    code, out, _ = run("check")
    assert code == 0 and "healthy" in out and "4 attempt(s)" in out
    code, out, _ = run("check", "--rebuild-index", "--json")
    assert code == 0 and json.loads(out)["ok"] and json.loads(out)["index_rebuilt"]
    (lab.git_dir / "refs" / "heads" / "sessions" / "broken").write_text("0" * 39 + "1\n")
    code, out, err = run("check")
    assert code == 1 and "PROBLEMS FOUND" in out


def test_missing_lab_is_one_line(capsys, monkeypatch, tmp_path):
    code, _, err = aar(capsys, monkeypatch, "sessions", "--lab", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 1 and "no lab repository" in err


def test_real_process_lists_ideas(lab):
    env = {**os.environ, "AAR_LAB": str(lab.path)}
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "ideas", "--json", "-n", "2", "--sort", "pgr"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert [r["attempt_id"] for r in json.loads(proc.stdout)] == ["bbbb00000001", "aaaa00000002"]
