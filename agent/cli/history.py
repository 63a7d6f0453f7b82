"""History commands: sessions, ideas, show, diff, review, leaderboard, export, check, replay."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from agent.cli import app
from agent.cli.common import (
    EXIT_IDEA_FAILED,
    EXIT_INTERRUPTED,
    JSON_OPTION,
    console,
    err_console,
    fail,
    print_json,
)
from experiments.checks import load_checks
from experiments.heldout_looks import looks
from experiments.index import SORTS
from experiments.layout import StoreError
from experiments.replay import ReplayInterrupted, ReplayReport, ReplayRow, replay_session
from experiments.schemas import ATTEMPT_STATUSES, Attempt
from experiments.store import LabStore
from experiments.views import (
    attempt_page,
    check_page,
    diff_page,
    ideas_table,
    leaderboard_table,
    num,
    sessions_table,
)
from sandbox.execution.interrupts import SeedInterrupts
from sandbox.untrusted import for_markup

if TYPE_CHECKING:
    from agent.replay_llm import LLMReplayReport

LAB_OPTION = typer.Option(None, "--lab", help="Lab repository (default: $AAR_LAB, else ./aar-lab).")


def _lab(path: Path | None) -> LabStore:
    return LabStore.open(path, create=False)


def _statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip() for value in values for v in value.split(",") if v.strip()]
    bad = [v for v in out if v not in ATTEMPT_STATUSES]
    if bad:
        fail(f"unknown status {bad[0]!r}: use {', '.join(ATTEMPT_STATUSES)}")
    return out


@app.command("sessions")
def sessions_cmd(lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Sessions with task, proposer, attempts, best PGR, cost and status."""
    store = _lab(lab)
    rows = store.sessions()
    if json_out:
        print_json([r.model_dump() for r in rows])
    else:
        console.print(sessions_table(rows))
    note = store.damage_note()
    if note:  # git lists no broken ref: say so rather than show the session as gone
        err_console.print(f"[yellow]warning:[/yellow] {for_markup(note)}", highlight=False, soft_wrap=True)


@app.command("ideas")
def ideas_cmd(session: str | None = typer.Option(None, "--session", "-s", help="Session id or unique prefix."),
              task: str | None = typer.Option(None, "--task", "-t", help="Only attempts on this task."),
              status: list[str] | None = typer.Option(None, "--status",
                                                      help="ok, error, ... (repeat or comma-separate)."),
              sort: str = typer.Option("time", "--sort", help=f"One of: {', '.join(SORTS)}."),
              limit: int = typer.Option(50, "--limit", "-n", min=0, help="Rows to show (0: all)."),
              researcher: str | None = typer.Option(None, "--researcher", help="Only this researcher's attempts."),
              lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Attempts as a table, newest first (--sort pgr: best first; index: step order)."""
    store = _lab(lab)
    sid = store.resolve_session(session) if session else None
    rows = store.index.ideas(session=sid, task=task, statuses=_statuses(status), sort=sort, limit=limit or None,
                             researcher=researcher)
    if json_out:
        print_json([r.model_dump(exclude={"heldout_acc", "heldout_pgr"}) for r in rows])
        return
    console.print(ideas_table(rows, f"{len(rows)} attempt(s)" + (f" of {sid}" if sid else "")))
    note = store.damage_note()
    if note:
        err_console.print(f"[yellow]warning:[/yellow] {for_markup(note)}", highlight=False, soft_wrap=True)


@app.command("show")
def show_cmd(attempt: str = typer.Argument(..., help="Attempt id (or unique prefix, or commit sha prefix)."),
             lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """One attempt: code, rationale, per-seed results, warnings, log tail, diff against its parent, reviews."""
    store = _lab(lab)
    try:
        summary = store.index.find(attempt)
    except StoreError as exc:
        note = store.damage_note()
        raise StoreError(f"{exc}" + (f" ({note})" if note else "")) from exc
    found = store.get_attempt(summary.attempt_id)
    reviews = store.index.reviews(found.attempt_id)
    if json_out:
        print_json({**found.model_dump(mode="json"), "commit": summary.commit,
                    "reviews": [r.model_dump() for r in reviews]})
        return
    for part in attempt_page(found, summary, store.parent_of(found), reviews):
        console.print(part)


@app.command("diff")
def diff_cmd(a: str = typer.Argument(..., help="First attempt."), b: str = typer.Argument(..., help="Second attempt."),
             unified: bool = typer.Option(False, "--unified", "-u", help="Unified diff instead of two columns."),
             lab: Path | None = LAB_OPTION) -> None:
    """Two attempts' code and results side by side."""
    store = _lab(lab)
    for part in diff_page(store.get_attempt(a), store.get_attempt(b), unified):
        console.print(part)


@app.command("review")
def review_cmd(attempt: str = typer.Argument(..., help="Attempt id or unique prefix."),
               accept: bool = typer.Option(False, "--accept", help="Accept the attempt."),
               reject: bool = typer.Option(False, "--reject", help="Reject the attempt."),
               note: str = typer.Option("", "--note", "-m", help="What you found."),
               lab: Path | None = LAB_OPTION) -> None:
    """Record a review (a git note on the attempt's commit; reviewer from git config)."""
    from experiments.reviews import add_review

    if accept == reject:
        fail("give exactly one of --accept or --reject")
    store = _lab(lab)
    review = add_review(store, attempt, "accept" if accept else "reject", note)
    console.print(f"{review.verdict}ed {store.index.find(attempt).attempt_id} as {review.reviewer}")


@app.command("leaderboard")
def leaderboard_cmd(task: str | None = typer.Option(None, "--task", "-t", help="Task (default: the only one)."),
                    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Rows to show."),
                    include_replays: bool = typer.Option(False, "--include-replays", help="Also list replayed runs."),
                    lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Best attempts on a task by the lower 95% bound of dev PGR, with CI, held-out figures and checks."""
    store = _lab(lab)
    if task is None:
        tasks = store.index.tasks()
        if len(tasks) != 1:
            fail("pass --task; tasks in this lab: " + (", ".join(tasks) or "none yet"))
        task = next(iter(tasks))
    task = store.index.resolve_task(task)
    rows = store.index.leaderboard(task, limit, include_replays)
    hidden = 0 if include_replays else store.index.replay_count(task)
    if json_out:
        print_json([r.model_dump() for r in rows])
        return
    if not rows and not hidden:
        fail(f"no scored attempts on task {task} in {store.path}; tasks here: "
             + (", ".join(store.index.tasks()) or "none yet"))
    checks: dict[str, list] = {}
    for sid in {r.session_id for r in rows}:
        for check in load_checks(store, sid):
            checks.setdefault(check.attempt_id, []).append(check)
    console.print(leaderboard_table(rows, task, checks))
    console.print(f"held-out looks on {task} in this lab: {len(looks(store, task.split('@')[0]))} "
                  "(aar eval --held-out)", markup=False)
    if hidden:
        console.print(f"{hidden} replayed run(s) on {task} not shown: --include-replays lists them")


@app.command("export")
def export_cmd(session: str = typer.Argument(..., help="Session id or unique prefix."),
               format: str = typer.Option("md", "--format", "-f", help="md or html."),
               output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
               lab: Path | None = LAB_OPTION) -> None:
    """A report of one session with a PGR-over-attempts chart and a held-out vs dev scatter (SVG)."""
    from experiments.report import render_all

    store = _lab(lab)
    chart = output.with_name(output.stem + "-pgr.svg") if output and format == "md" else None
    def skipped(line: str) -> None:
        err_console.print(f"[yellow]skipped, unreadable:[/yellow] {for_markup(line)}", highlight=False, soft_wrap=True)

    scatter = output.with_name(output.stem + "-scatter.svg") if output and chart else None
    text, svg, scatter_svg = render_all(store, session, format, chart.name if chart else None,
                                        scatter.name if scatter else None, on_skipped=skipped)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    if chart and scatter:
        chart.write_text(svg, encoding="utf-8")
        scatter.write_text(scatter_svg, encoding="utf-8")
    console.print(f"wrote {output}" + (f", {chart} and {scatter}" if chart else ""))


@app.command("check")
def check_cmd(rebuild_index: bool = typer.Option(False, "--rebuild-index", help="Rebuild the query index from git."),
              lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Verify the lab: git fsck, every session branch and attempt readable, index consistent."""
    report = _lab(lab).check(rebuild_index)
    if json_out:
        print_json(report.model_dump())
    else:
        for line in check_page(report):
            console.print(line)
    if not report.ok:
        fail(f"{len(report.problems)} problem(s) in {report.lab}", EXIT_IDEA_FAILED)


def _replay_llm(session: str, lab: Path | None, tolerance: float, json_out: bool, isolation: str | None) -> None:
    from agent.progress import make_reporter
    from agent.replay_llm import replay_llm
    from sandbox.isolation.base import DEFAULT_ISOLATION

    report = replay_llm(session, lab, tolerance, make_reporter(True), isolation=isolation or DEFAULT_ISOLATION)
    if json_out:
        print_json(report.model_dump())
    else:
        _print_llm_replay(report)
    if report.interrupted:
        fail(f"interrupted (Ctrl-C): session {report.replay_session} marked interrupted; "
             f"run the replay again with: aar {shlex.join(sys.argv[1:])}", EXIT_INTERRUPTED)
    if not report.reproduced:  # a step that did not reproduce (or was never reached) is a failed replay
        raise typer.Exit(EXIT_IDEA_FAILED)


def _print_llm_replay(report: LLMReplayReport) -> None:
    table = Table("#", "idea", "same code", "recorded PGR", "replayed PGR", "reproduces",
                  title=f"LLM replay of {report.original} → session {report.replay_session}")
    for s in report.steps:
        table.add_row(str(s.index), s.name[:40], "yes" if s.same_code else "NO", num(s.recorded_pgr, True),
                      num(s.replayed_pgr, True), "yes" if s.reproduced else "NO")
    console.print(table)
    console.print(f"{sum(s.reproduced for s in report.steps)} of {len(report.steps)} steps reproduce; "
                  f"{report.request_mismatches} requests differed from the recording", highlight=False)


@app.command("replay")
def replay_cmd(session: str = typer.Argument(..., help="Session id or unique prefix."),
               task: str | None = typer.Option(None, "--task", "-t", help="Replay the ideas on another task."),
               seeds: int | None = typer.Option(None, "--seeds", min=1, max=64,
                                                help="Seeds per attempt (default: recorded)."),
               tolerance: float = typer.Option(0.01, "--tolerance", min=0.0,
                                               help="Largest per-seed PGR difference that reproduces."),
               split_sizes: str | None = typer.Option(None, "--split-sizes", help="Override the recorded split sizes."),
               isolation: str | None = typer.Option(None, "--isolation",
                                                    help="Idea sandbox (default: bwrap; recorded code is untrusted)."),
               time_budget: float | None = typer.Option(None, "--time-budget",
                                                        help="Seconds per seed (default: as recorded)."),
               llm: bool = typer.Option(False, "--llm",
                                        help="Re-drive the research loop from recorded model responses."),
               lab: Path | None = LAB_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Rerun every attempt's code with its recorded seeds; report recorded vs replayed PGR; record the replay."""
    if llm:
        _replay_llm(session, lab, tolerance, json_out, isolation)
        return
    store = _lab(lab)
    sid = store.resolve_session(session)

    def progress(r: ReplayRow) -> None:
        if not json_out:
            console.print(f"  #{r.index} {r.name}: {r.replayed_status or 'skipped'} "
                          f"{num(r.recorded_pgr, True)} → {num(r.replayed_pgr, True)}")

    def starting(attempt: Attempt, run_seeds: list[int]) -> None:
        if not json_out:
            console.print(f"  #{attempt.index} {attempt.name}: running {len(run_seeds)} seeds", markup=False,
                          highlight=False)

    again = f"run the replay again with: aar {shlex.join(sys.argv[1:])}"
    with SeedInterrupts(lambda line: err_console.print(line, highlight=False, markup=False)) as interrupts:
        try:
            report = replay_session(store, sid, task=task, seeds=seeds, tolerance=tolerance, split_sizes=split_sizes,
                                    isolation=isolation, time_budget_s=time_budget, on_row=progress,
                                    on_start=starting, interrupts=interrupts)
        except ReplayInterrupted as stop:
            killed = " twice: the seeds in flight were killed" if interrupts.presses > 1 else ""
            fail(f"interrupted (Ctrl-C{killed}); {len(stop.report.rows)} attempt(s) replayed, session "
                 f"{stop.report.replay_session} marked interrupted; {again}", EXIT_INTERRUPTED)
            raise
    if json_out:
        print_json(report.model_dump())
    else:
        _print_replay(report, sid)
    if report.interrupted:
        fail(f"interrupted (Ctrl-C): {len(report.rows)} attempt(s) replayed, session {report.replay_session} "
             f"marked interrupted; {again}", EXIT_INTERRUPTED)


def _print_replay(report: ReplayReport, sid: str) -> None:
    table = Table("#", "attempt", "idea", "seeds", "recorded", "replayed", "max |Δ| per seed", "reproduces",
                  title=f"replay of {sid} on {report.task} → session {report.replay_session}")
    for r in report.rows:
        verdict = "—" if r.reproduced is None else ("yes" if r.reproduced else "NO")
        table.add_row(str(r.index), r.attempt_id[-14:], r.name[:32], ",".join(map(str, r.seeds)),
                      f"{r.recorded_status} {num(r.recorded_pgr, True)}",
                      f"{r.replayed_status or '—'} {num(r.replayed_pgr, True)}",
                      num(r.max_seed_diff, digits=6), verdict + (f" ({r.note})" if r.note else ""))
    console.print(table)
    if report.same_task:
        console.print(f"{report.reproduced} of {report.compared} comparable attempts reproduce "
                      f"within {report.tolerance}")
