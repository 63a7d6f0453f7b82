"""Glue: open (or resume) a session, make the proposer, drive it, close the session."""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.budget import BudgetTracker
from agent.loop import LoopTools, drive
from agent.outcome import SessionOutcome, outcome
from agent.progress import Reporter, make_reporter
from agent.proposers.base import ProposerConfig, get_proposer
from agent.session_setup import (
    ResearchConfig,
    SessionContext,
    SharedResources,
    complete_baselines,
    open_session,
)


def make_proposer_config(config: ResearchConfig, direction: str | None) -> ProposerConfig:
    return ProposerConfig(model=config.model, seed=config.run.proposer_seed, direction=direction,
                          base_url=config.run.base_url, options=config.run.options)


def _complete_baselines(ctx: SessionContext, reporter: Reporter) -> None:
    """The built-in baselines a cold start left for after the research (for the report and
    dashboard); their time counts as setup, not against the time budget."""
    reporter.line("computing the built-in baselines for the report (deferred at the cold start)")
    spent = complete_baselines(ctx)
    ctx.store.update_session(ctx.session_id, {"setup_s": round(ctx.manifest.setup_s + spent, 3)})
    ctx.manifest = ctx.store.manifest(ctx.session_id)


def run_research(config: ResearchConfig, reporter: Reporter | None = None,
                 recorded: list[dict] | None = None, shared: SharedResources | None = None,
                 on_tracker: Callable[[BudgetTracker], None] | None = None,
                 install_signals: bool = True, recorded_ids: list[str] | None = None) -> SessionOutcome:
    """Run one researcher's session to its end (budgets, finish, failure or Ctrl-C)."""
    reporter = reporter or make_reporter()
    if not config.resume and recorded is None:
        # Fail fast (e.g. no API key) before building caches or creating a session.
        get_proposer(config.proposer, make_proposer_config(config, config.direction)).check_ready()
    reporter.step("preparing the task cache and baselines")
    started = time.monotonic()
    ctx = open_session(config, shared=shared)
    config = ctx.config  # on resume: what the session was started with, plus what was asked now
    setup_s = time.monotonic() - started
    ctx.store.update_session(ctx.session_id, {"setup_s": round(ctx.manifest.setup_s + setup_s, 3)})
    ctx.manifest = ctx.store.manifest(ctx.session_id)
    done = ("task cache, teachers, ceilings, vanilla reference; the other baselines after the research"
            if ctx.manifest.baselines_deferred else "task cache, teachers, ceilings, baselines")
    reporter.line(f"setup took {setup_s:.0f}s ({done}); the time budget starts with the research")
    if on_tracker:
        on_tracker(ctx.tracker)
    proposer = get_proposer(config.proposer, make_proposer_config(config, ctx.manifest.direction))
    if config.resume and recorded is None:
        proposer.check_ready()
    tools = LoopTools(ctx, reporter, recorded=recorded, recorded_ids=recorded_ids)
    reporter.start(ctx.session_id, config.run.budgets.max_attempts, ctx.tracker.status())
    try:
        with ctx.store.running(ctx.session_id):  # `aar check` tells a session left by a dead process
            reason, ending = drive(proposer, tools, reporter, install_signals)
    finally:
        reporter.close()
    if ending not in ("interrupted", "failed") and (config.run.confirm_top or config.run.transfer_task):
        from agent.confirmation import run_checks

        run_checks(ctx, config.run.confirm_top, config.run.confirm_seeds, config.run.transfer_task, reporter)
    if ending != "interrupted" and ctx.manifest.baselines_deferred:
        _complete_baselines(ctx, reporter)
    result = outcome(ctx, reason, ending)
    result.replay_mismatches = tools.replay_mismatches
    return result
