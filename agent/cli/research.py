"""``aar research``: run (or resume) a research session."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.budget import Budgets, parse_duration
from agent.cli import app
from agent.cli.common import ISOLATION_OPTION, SIZES_OPTION, TASK_OPTION, console, fail, print_json
from agent.research import run_research
from agent.session_setup import ResearchConfig

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
    target_pgr: float | None = typer.Option(None, "--target-pgr", help="Stop once dev PGR reaches this."),
    seeds: int = typer.Option(3, "--seeds", min=1, max=16, help="Seeds per experiment."),
    direction: str | None = typer.Option(None, "--direction", help="Starting research direction."),
    resume: str | None = typer.Option(None, "--resume", help="Continue this session."),
    max_scoring_calls: int | None = typer.Option(None, "--max-scoring-calls", min=1, help="Scoring budget."),
    split_sizes: str | None = SIZES_OPTION,
    isolation: str = ISOLATION_OPTION,
    time_budget: float = typer.Option(300.0, "--time-budget", help="Seconds per idea run (per seed)."),
    lab: Path | None = typer.Option(None, "--lab", help="Lab repository (default $AAR_LAB or ./aar-lab)."),
    plain: bool = typer.Option(False, "--plain", help="One line per event instead of a live panel."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Run a research session: a proposer writes ideas, the sandbox scores them, git keeps them."""
    try:
        max_time_s = parse_duration(max_time)
    except ValueError as exc:
        fail(str(exc))
    if not resume and max_attempts is max_cost is max_time is target_pgr is None:
        max_attempts = DEFAULT_ATTEMPTS
        console.print(f"no budget given: stopping after {max_attempts} attempts (set --max-attempts, "
                      "--max-time or --target-pgr)", highlight=False)
    config = ResearchConfig(
        task=task, split_sizes=split_sizes, proposer=proposer, model=model, base_url=base_url,
        seeds=seeds, direction=direction, isolation=isolation, time_budget_s=time_budget, lab=lab,
        resume=resume, budgets=Budgets(max_attempts=max_attempts, max_cost_usd=max_cost,
                                       max_time_s=max_time_s, target_pgr=target_pgr,
                                       max_scoring_calls=max_scoring_calls),
    )
    from agent.progress import make_reporter

    result = run_research(config, make_reporter(True if plain else None))
    if json_out:
        print_json(result.model_dump())
        return
    best = f"best PGR {result.best_pgr:+.3f} ({result.best_attempt})" if result.best_pgr is not None else "no scored attempt"
    console.print(f"session {result.session_id}: {result.attempts} attempts, {best}; stopped: {result.stop_reason}")
    if result.resume_command:
        console.print(f"resume with: {result.resume_command}")
