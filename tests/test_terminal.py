"""What a person at a terminal reads: versions and help, whole ids at any width, diffs without
colour, the live panel without literal markup, the closing block of a session."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from agent.cli.research import closing_block
from agent.outcome import SessionOutcome
from agent.progress import LiveReporter
from agent.session_setup import ResearchConfig
from experiments.store import LabStore
from experiments.views import ideas_table, side_by_side
from tests.test_history_support import attempt, manifest

SESSION = "20261207-135202-wordnet-10-offline-472a"


def aar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=120)


def test_version_and_short_help():
    version = aar("--version")
    assert version.returncode == 0 and version.stdout.startswith("aar ")
    short = aar("-h")
    assert short.returncode == 0 and "--quiet" in short.stdout and "--install-completion" in short.stdout
    assert aar("research", "-h").returncode == 0


def _lab(tmp_path: Path) -> LabStore:
    store = LabStore.open(tmp_path / "lab")
    store.create_session(manifest(SESSION))
    for i, pgr in enumerate([0.30, 0.45], start=1):
        store.record_attempt(attempt(SESSION, i, f"idea number {i} with a long name [bold]x[/bold]", pgr=pgr,
                                     attempt_id=f"{SESSION}-{i:04d}"))
    return store


def _render(renderable, width: int, color: bool = False) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system="standard" if color else None, force_terminal=color).print(renderable)
    return out.getvalue()


def test_attempt_ids_are_never_cut_even_on_a_narrow_terminal(tmp_path):
    store = _lab(tmp_path)
    rows = store.index.ideas(session=SESSION, sort="index")
    for width in (80, 120, 200):
        text = _render(ideas_table(rows, "t"), width)
        assert f"{SESSION}-0001" in text and f"{SESSION}-0002" in text, text
    assert "[bold]x" in _render(ideas_table(rows, "t"), 200)  # an idea's brackets are text, not markup


def test_side_by_side_diff_marks_changed_lines_without_colour():
    text = _render(side_by_side("a = 1\nsame\nold only\n", "a = 2\nsame\n"), 100)
    lines = [line for line in text.splitlines() if line.strip()]
    changed = next(line for line in lines if "a = 1" in line)
    assert changed.lstrip().startswith("-") and "+  a = 2" in changed
    same = next(line for line in lines if "same" in line)
    assert "-" not in same and "+" not in same
    assert next(line for line in lines if "old only" in line).lstrip().startswith("-")


def test_live_panel_prints_no_literal_markup_and_no_infinite_total(monkeypatch):
    """The panel is redrawn inside the plain prints of finished attempts (markup off there): its
    labels must be styles, not markup, or they print as ``[bold]step[/bold]``."""
    out = io.StringIO()
    monkeypatch.setattr("agent.progress.Console", lambda **kw: Console(file=out, width=120, force_terminal=True))
    reporter = LiveReporter()
    reporter.start("s1", 3, {"seed_runs_used": 0})
    for n in (1, 2):
        reporter.step(f"attempt {n}: running idea")
        reporter.attempt_done(n, f"s1-000{n}", "idea", {"pgr": {"mean": 0.5}, "pgr_ci95": 0.1}, "ok",
                              ("s1-0001", 0.5, 0.4), {})
    reporter.close()
    text = out.getvalue()
    assert "attempt" in text and "[bold]" not in text and "[/bold]" not in text
    assert "2 of 3" in text and "∞" not in text
    reporter.state["total"] = None
    assert "∞" not in _render(reporter._render(), 120)


def test_live_panel_elapsed_ticks_between_attempts(monkeypatch):
    """The panel renders anew on every refresh: elapsed and time left move between events."""
    clock = [1000.0]
    monkeypatch.setattr("agent.progress.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("agent.progress.Console", lambda **kw: Console(file=io.StringIO(), width=120))
    reporter = LiveReporter()
    reporter.attempt_done(1, "s1-0001", "idea", None, "ok", None, {"elapsed_s": 40.0, "time_left_s": 100.0})
    clock[0] += 25
    text = _render(reporter._render(), 120)
    reporter.close()
    assert "65s, 75s left" in text, text


def test_closing_block_names_the_best_with_held_out_and_the_next_commands(tmp_path):
    store = _lab(tmp_path)
    config = ResearchConfig(task="wordnet-10", lab=store.path)
    outcome = SessionOutcome(session_id=SESSION, attempts=2, stop_reason="attempt budget reached (2/2)",
                             best_attempt=f"{SESSION}-0002", best_pgr=0.45)
    lines = closing_block(outcome, config)
    text = "\n".join(lines)
    assert f"best: {SESSION}-0002" in text and "dev PGR +0.450" in text and "held-out PGR" in text
    for command in (f"aar show {SESSION}-0002 --lab {store.path}", "aar leaderboard --task wordnet-10",
                    f"aar export {SESSION} --lab {store.path}", f"aar ui --lab {store.path}"):
        assert command in text, text
    assert "flagged" not in text
    flagged = attempt(SESSION, 3, "past the ceiling", pgr=1.06, attempt_id=f"{SESSION}-0003")
    flagged.result.warnings = ["integrity: dev PGR 1.057: at or above the gold-trained ceiling (dev accuracy "
                               "0.810, ceiling 0.800); ceiling-recipe check: ...", "integrity: dev accuracy above"]
    store.record_attempt(flagged)
    at_ceiling = "\n".join(closing_block(outcome.model_copy(update={"best_attempt": f"{SESSION}-0003"}), config))
    assert ("  flagged: dev PGR 1.057: at or above the gold-trained ceiling (dev accuracy 0.810, ceiling 0.800) "
            "(+1 more); aar show explains") in at_ceiling, at_ceiling
    narrow = closing_block(outcome, config, width=60)
    after = narrow[narrow.index("next:"):]
    assert all(len(line) <= 60 or line.startswith("    aar ") for line in after), narrow
    assert any(line == f"    aar ui --lab {store.path}" for line in narrow), narrow


def test_quiet_silences_progress_but_not_the_reporter_contract(monkeypatch):
    from agent.progress import QUIET, make_reporter

    monkeypatch.setitem(QUIET, "on", True)
    reporter = make_reporter()
    assert reporter.console.quiet
    reporter.start("s1", 1, {})
    reporter.stop("done")  # no output, no error
