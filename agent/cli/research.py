"""``aar research``: run (or resume) a research session."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from agent.budget import Budgets, parse_duration
from agent.cli import app
from agent.cli.common import (
    DEVICE_OPTION,
    EXECUTOR_OPTION,
    ISOLATION_OPTION,
    RAY_ADDRESS_OPTION,
    SEED_RESOURCES_OPTION,
    SIZES_OPTION,
    TASK_OPTION,
    UNSAFE_OPTION,
    console,
    fail,
    print_json,
    resolve_executor,
    resolve_isolation,
)
from agent.racing import parse_ladder
from agent.research import run_research
from agent.session_setup import ResearchConfig
from experiments.schemas import RunConfig
from sandbox.isolation.base import SEED_TIME_S

if TYPE_CHECKING:
    from agent.outcome import SessionOutcome
    from agent.parallel import GroupOutcome

DEFAULT_ATTEMPTS = 20


@app.command("research")
def research_cmd(
    task: str = TASK_OPTION,
    proposer: str = typer.Option("offline", "--proposer", "-p", help="offline | claude | openai"),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name (claude: claude-opus-4-6)."),
    base_url: str | None = typer.Option(None, "--base-url", help="API base URL (openai proposer)."),
    max_attempts: int | None = typer.Option(None, "--max-attempts", min=1, help="Attempt budget."),
    max_cost: float | None = typer.Option(None, "--max-cost", min=0.0, help="Cost budget in USD."),
    max_time: str | None = typer.Option(None, "--max-time", help="Time budget: 90s, 15m, 2h."),
    target_pgr: float | None = typer.Option(None, "--target-pgr",
                                            help="Stop once the best attempt's lower 95% bound of dev PGR "
                                                 "reaches this."),
    max_analysis_time: str | None = typer.Option(None, "--max-analysis-time",
                                                 help="Analysis budget: sandbox time of all analysis runs "
                                                      "together (90s, 15m); never scoring calls."),
    seeds: int = typer.Option(3, "--seeds", min=1, max=16, help="Seeds per experiment."),
    direction: str | None = typer.Option(None, "--direction", help="Starting research direction."),
    resume: str | None = typer.Option(None, "--resume", help="Continue this session."),
    max_scoring_calls: int | None = typer.Option(None, "--max-scoring-calls", min=1, help="Scoring budget."),
    max_seed_runs: int | None = typer.Option(None, "--max-seed-runs", min=1,
                                             help="Seed-run budget (one idea on one seed; racing spends more on "
                                                  "promising ideas)."),
    split_sizes: str | None = SIZES_OPTION,
    isolation: str = ISOLATION_OPTION,
    unsafe_no_sandbox: bool = UNSAFE_OPTION,
    time_budget: float = typer.Option(SEED_TIME_S, "--time-budget", help="Seconds per idea run (per seed)."),
    device: str = DEVICE_OPTION,
    lab: Path | None = typer.Option(None, "--lab", help="Lab repository (default $AAR_LAB or ./aar-lab)."),
    researchers: int = typer.Option(1, "--researchers", "-n", min=1, max=32,
                                    help="Researchers at once, each with its own direction and branch."),
    from_queue: bool = typer.Option(False, "--from-queue", help="Each researcher takes the next open direction "
                                    "of `aar queue` and, when done, the next, until the queue or the budgets run out."),
    option: list[str] = typer.Option([], "--option", "-o", help="Proposer option KEY=VALUE (repeatable)."),
    racing: str | None = typer.Option(None, "--racing", help="Seed ladder, e.g. 1,3,8: an idea earns more seeds "
                                      "only while it could lead; leaders ranked by lower 95% bound."),
    confirm: int = typer.Option(0, "--confirm", min=0, help="At the end, re-run the top N ideas on fresh seeds."),
    transfer_task: str | None = typer.Option(None, "--transfer-task",
                                             help="At the end, score the best idea on this task too."),
    plain: bool = typer.Option(False, "--plain", help="One line per event instead of a live panel."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    executor: str = EXECUTOR_OPTION,
    ray_address: str | None = RAY_ADDRESS_OPTION,
    seed_resources: str | None = SEED_RESOURCES_OPTION,
) -> None:
    """Run a research session: a proposer writes ideas, the sandbox scores them, git keeps them."""
    try:
        max_time_s = parse_duration(max_time)
        max_analysis_s = parse_duration(max_analysis_time)
        ladder = parse_ladder(racing)
    except ValueError as exc:
        fail(str(exc))
    if not resume and max_attempts is max_cost is max_time is target_pgr is max_seed_runs is None:
        max_attempts = DEFAULT_ATTEMPTS
        console.print(f"no budget given: stopping after {max_attempts} attempts (set --max-attempts, "
                      "--max-time or --target-pgr)", highlight=False)
    budgets = Budgets(max_attempts=max_attempts, max_cost_usd=max_cost, max_time_s=max_time_s, target_pgr=target_pgr,
                      max_scoring_calls=max_scoring_calls, max_seed_runs=max_seed_runs, max_analysis_s=max_analysis_s)
    run = RunConfig(budgets=budgets, split_sizes=split_sizes, isolation=resolve_isolation(isolation, unsafe_no_sandbox),
                    time_budget_s=time_budget, base_url=base_url, options=parse_options(option), racing=ladder,
                    confirm_top=confirm, transfer_task=transfer_task)
    config = ResearchConfig(task=task, proposer=proposer, model=model, seeds=seeds, direction=direction, run=run,
                            lab=lab, device=device, executor=resolve_executor(executor, ray_address, seed_resources),
                            resume=resume)
    if from_queue and (resume or direction):
        fail("--from-queue takes each direction from the queue: drop --resume and --direction")
    if researchers > 1 or from_queue or (resume and _is_group(config)):
        _run_group(config, researchers, json_out, from_queue)
        return
    from agent.progress import make_reporter

    result = run_research(config, make_reporter(True if plain else None))
    if json_out:
        print_json(result.model_dump())
    else:
        for line in closing_block(result, config, console.width):
            # a command must paste whole: never wrapped; on a terminal the rest wraps at word
            # boundaries, and piped output keeps each line whole (for grep and logs)
            whole = not console.is_terminal or line.lstrip().startswith("aar ")
            console.print(line, highlight=False, markup=False, soft_wrap=whole)
    raise typer.Exit(result.exit_code)  # 0 finished or stopped by a budget, 1 failed, 130 interrupted


def _flag_lines(warnings: list[str]) -> list[str]:
    """The best attempt's integrity flags, first clause only (a PGR past the ceiling must not
    read as a plain result here; `aar show` gives the whole explanation)."""
    from sandbox.scoring.flags import PREFIX

    flags = [w.removeprefix(PREFIX) for w in warnings if w.startswith(PREFIX)]
    if not flags:
        return []
    more = f" (+{len(flags) - 1} more)" if len(flags) > 1 else ""
    return [f"  flagged: {flags[0].split(';')[0]}{more}; aar show explains"]


def closing_block(result: SessionOutcome, config: ResearchConfig, width: int = 100) -> list[str]:
    """The end of a session: what it found (dev, and held-out for people), and what to run next.
    Lines are kept within ``width`` where they can be: a command is never wrapped (it must paste
    whole), so a long one goes on its own line under what it does."""
    lines = [f"session {result.session_id}: {result.attempts} attempts; stopped: {result.stop_reason}"]
    lab = f" --lab {shlex.quote(str(config.lab))}" if config.lab else ""
    if result.best_attempt is not None:
        from experiments.store import LabStore

        best = LabStore.open(config.lab, create=False).index.find(result.best_attempt)
        heldout = ("" if best.heldout_pgr is None
                   else f", held-out PGR {best.heldout_pgr:+.3f} (never shown to the proposer)")
        ci = "" if best.pgr_ci95 is None else f" ± {best.pgr_ci95:.3f}"
        lower = "" if result.best_lower is None else f" (lower 95% bound {result.best_lower:+.3f}, the ranking)"
        lines.append(f"best: {best.attempt_id} {best.name}")
        lines.append(f"  dev PGR {best.pgr:+.3f}{ci}{lower}")
        lines += _flag_lines(best.warnings)
        if heldout:
            lines.append(f"  {heldout.removeprefix(', ')}")
    else:
        lines.append("no scored attempt")
    if result.resume_command:
        lines.append(f"resume with: {result.resume_command}")
    steps = [(f"aar show {result.best_attempt}{lab}", "the best attempt: code, seeds, held-out")] \
        if result.best_attempt is not None else []
    steps += [(f"aar leaderboard --task {config.task}{lab}", "every attempt on the task, ranked"),
              (f"aar export {result.session_id}{lab} -o report.md", "a report with the PGR chart"),
              (f"aar ui{lab}", "the dashboard")]
    column = max(len(command) for command, _ in steps)
    lines.append("next:")
    if 2 + column + 2 + max(len(what) for _, what in steps) <= width:
        lines += [f"  {command.ljust(column)}  {what}" for command, what in steps]
    else:
        for command, what in steps:
            lines += [f"  {what}:", f"    {command}"]
    return lines


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as JSON when they parse, else kept as text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--option {pair!r}: write it as KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _is_group(config: ResearchConfig) -> bool:
    from experiments.layout import members
    from experiments.store import LabStore

    store = LabStore.open(config.lab)
    heads = store.session_heads()
    return config.resume is not None and config.resume not in heads and bool(members(config.resume, heads))


def _run_group(config: ResearchConfig, researchers: int, json_out: bool, from_queue: bool = False) -> None:
    from agent.parallel import run_parallel

    group = run_parallel(config, researchers, from_queue)
    if json_out:
        print_json(group.model_dump())
    else:
        _print_group(group, config.lab)
    codes = {r.exit_code for r in group.researchers} | ({1} if group.summary["errors"] else set())
    raise typer.Exit(130 if 130 in codes else max(codes, default=0))


def _print_group(group: GroupOutcome, lab: Path | None) -> None:
    for r in group.researchers:
        best = (f"{r.best_pgr:+.3f} (lower 95% bound {r.best_lower:+.3f})"
                if r.best_pgr is not None and r.best_lower is not None else "—")
        console.print(f"{r.session_id}: {r.attempts} attempts, best PGR {best}; "
                      f"direction: {group.directions.get(r.session_id)}", highlight=False)
    s = group.summary
    console.print(f"idea-family overlap between researchers: {s['family_overlap']}", highlight=False)
    console.print(f"converged: {s['converged'] or 'none'}", highlight=False)
    for error in s["errors"]:
        console.print(f"[red]researcher failed:[/red] {error}", highlight=False)
    for line in s["findings"]:
        console.print(f"finding: {line}", highlight=False, markup=False)
    if any(r.resume_command for r in group.researchers):
        from experiments.store import lab_path, resume_command

        console.print(f"resume with: {resume_command(lab_path(lab), group.group)}", highlight=False, soft_wrap=True)
