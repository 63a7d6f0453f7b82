"""Everything a research session needs, built for a new session or rebuilt on resume."""

from __future__ import annotations

import ast
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.budget import BudgetTracker
from agent.proposers.base import ExperimentSpec
from experiments.gitobjects import LAB_READ_ERRORS
from experiments.layout import StoreError
from experiments.ranking import is_rejected, ranked, result_key
from experiments.schemas import (
    Attempt,
    RunConfig,
    SessionManifest,
    TokenUsage,
    new_session_id,
    package_versions,
    utc_now,
)
from experiments.store import LabStore
from sandbox.baseline_ideas import baseline_files, vanilla_name
from sandbox.cache.progress import progress_bar
from sandbox.cache.task_cache import TaskCache, baseline_summary_name, open_cache
from sandbox.errors import HarnessError
from sandbox.execution.base import Executor, ExecutorConfig, ExecutorOptions
from sandbox.execution.local import seeds_at_once
from sandbox.execution.registry import get_executor
from sandbox.files import atomic_write, file_lock
from sandbox.isolation.devices import build_device, resolve_device
from sandbox.results import IdeaResult, hide_heldout
from sandbox.runtime.context import TaskCard
from sandbox.scoring.evaluator import Evaluator, ScoringBudget
from sandbox.tasks import SplitSizes, get_task

HELDOUT_KEY = "heldout_pgr"
CONFIRM_KEY = "confirm_pgr"


class ResearchConfig(BaseModel):
    """What `aar research` was asked to do."""

    model_config = ConfigDict(extra="forbid")  # a run setting given at the top level is a mistake, not ignored

    task: str = Field("wordnet-10", description="Task name or jsonl directory.")
    proposer: str = Field("offline", description="Proposer name.")
    model: str | None = Field(None, description="Model for model-backed proposers.")
    seeds: int = Field(3, description="Seeds per experiment.")
    direction: str | None = Field(None, description="Starting research direction.")
    run: RunConfig = Field(default_factory=RunConfig, description=(
        "How the session runs, as the manifest keeps it (budgets, isolation, racing, checks, ...); on "
        "resume, budgets given (not None) replace the stored ones. Its device and executor are filled "
        "in as resolved when the session opens."))
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig,
                                     description="Where seeds run (local pool or a Ray cluster).")
    lab: Path | None = Field(None, description="Lab repository path.")
    resume: str | None = Field(None, description="Session id to continue.")
    session_id: str | None = Field(None, description="Id for a new session (default: generated).")
    parent_session: str | None = Field(None, description="Session this one replays.")
    device: str = Field("auto", description="Where fine-tune students train: auto, cpu or cuda.")
    baselines_deferred: bool | None = Field(
        None, description="Show the proposer no built-in baselines and compute them after the research "
                          "(True), or show all of them, computing them first if needed (False); None: "
                          "defer only when they are not computed yet (a cold start). Resume and replay "
                          "repeat what the original session did.")

    def with_run(self, **changes: Any) -> ResearchConfig:
        """A copy with these RunConfig settings changed."""
        return self.model_copy(update={"run": self.run.model_copy(update=changes)})


@dataclass
class SharedResources:
    """What parallel researchers share: executor slots and the scoring budget."""

    slots: threading.Semaphore
    scoring: ScoringBudget
    executor: Executor | None = None  # one executor (and cluster connection) for all of them


@dataclass
class SessionContext:
    """The live objects of one running session."""

    session_id: str
    config: ResearchConfig  # on resume: the stored request, with what was asked again applied
    manifest: SessionManifest
    store: LabStore
    cache: TaskCache
    evaluator: Evaluator
    tracker: BudgetTracker
    researcher: str
    attempts: list[Attempt] = field(default_factory=list)
    best: tuple[str, float, float] | None = None  # (attempt id, PGR mean, lower bound): see update_best
    reviews: dict[str, tuple[str, str]] = field(default_factory=dict)  # attempt id -> latest (verdict, note)
    in_flight: ExperimentSpec | None = None
    baseline_summary: list[dict[str, Any]] = field(default_factory=list)

    @property
    def card(self) -> TaskCard:
        return self.evaluator.card

    @property
    def rejected(self) -> dict[str, str]:
        """``attempt id -> note`` of the attempts whose latest review rejects them."""
        return {aid: note for aid, (verdict, note) in self.reviews.items() if is_rejected(verdict)}

    def ranked_attempts(self) -> list[Attempt]:
        """This session's attempts by the one ranking (experiments/ranking.py), rejected ones left out."""
        return ranked((a for a in self.attempts if a.attempt_id not in self.rejected), lambda a: result_key(a.result))

    def update_best(self) -> None:
        """Recompute the best attempt (after a new result or a review) and the --target-pgr figure."""
        top = next(iter(self.ranked_attempts()), None)
        key = None if top is None else result_key(top.result)
        self.best = None if top is None or key is None else (top.attempt_id, key[1], key[0])
        self.tracker.best_lower = None if key is None else key[0]

    def new_attempt(self, index: int, spec: ExperimentSpec, result: IdeaResult | None, status: str,
                    log: str, transcript: list[dict[str, Any]], usage: TokenUsage) -> Attempt:
        return Attempt(
            attempt_id=f"{self.session_id}-{index:04d}", session_id=self.session_id,
            index=index, name=spec.name, rationale=spec.hypothesis, code=spec.code,
            parent_id=spec.parent_id, result=result, status=status, log=log, transcript=transcript,
            usage=usage, created_at=utc_now(), researcher=self.researcher,
            session_elapsed_s=round(self.tracker.elapsed(), 3),
        )


def seed_runs(result: IdeaResult | None) -> int:
    """Seed-runs an attempt spent: the seeds it was scored on (what the seed-run budget counts)."""
    return 0 if result is None else len(result.seeds)


def prompt_versions() -> dict[str, str]:
    try:
        from agent.prompting import prompt_versions as versions
    except ImportError:
        return {}
    return versions()


def parse_ladder(text: str | None) -> list[int] | None:
    """``"1,3,8"`` -> [1, 3, 8]; empty or "off" -> None (no racing)."""
    if not text or text.strip().lower() in ("off", "none", "0"):
        return None
    parts = [p.strip() for p in text.split(",")]
    values = [int(p) for p in parts if p.isdigit()]
    if len(values) != len(parts) or 0 in values or values != sorted(set(values)):
        raise ValueError(f"racing ladder {text!r}: give increasing seed counts, e.g. 1,3,8")
    return values


def _sizes(text: str | None) -> SplitSizes | None:
    return SplitSizes.parse(text) if text else None


def baseline_summary(evaluator: Evaluator, seeds: list[int], show_progress: bool = False) -> list[dict[str, Any]]:
    """Dev PGR of every built-in baseline on the session's seeds (what proposers must beat).
    Uncharged, computed once per cache and seed set and kept in the private store (``aar
    baselines`` on the same seeds saves it too, so a session after it starts at once); a
    progress line per baseline when ``show_progress`` (a cold start spends most of its time here)."""
    path = evaluator.cache.private_dir / baseline_summary_name(seeds)
    with file_lock(path.with_suffix(".lock")):  # parallel researchers compute it once
        if path.exists():
            return json.loads(path.read_text())
        rows = _baseline_rows(evaluator, seeds, show_progress)
        _save_summary(path, rows)
    return rows


def save_baseline_summary(evaluator: Evaluator, seeds: list[int], results: list[tuple[Path, IdeaResult]]) -> None:
    """Keep results of the built-in baselines (``aar baselines``) as the summary sessions read."""
    path = evaluator.cache.private_dir / baseline_summary_name(seeds)
    with file_lock(path.with_suffix(".lock")):
        _save_summary(path, [summary_row(idea, r) for idea, r in results])


def _save_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    if rows and all(r["status"] == "ok" for r in rows):  # a failed run (e.g. no sandbox) is not kept
        atomic_write(path, json.dumps(rows, indent=1))


def _baseline_rows(evaluator: Evaluator, seeds: list[int], show_progress: bool = False) -> list[dict[str, Any]]:
    rows = []
    kind = evaluator.card.kind
    ideas = baseline_files(kind)
    label = f"{evaluator.card.name}: built-in baselines ({len(seeds)} seeds each)"
    with progress_bar(label, len(ideas), show_progress) as advance:
        for idea in ideas:
            r = evaluator.evaluate(idea, seeds, compare_vanilla=idea.stem != vanilla_name(kind), charge=False)
            rows.append(summary_row(idea, r))
            advance(1)
    return rows


def summary_row(idea: Path, r: IdeaResult) -> dict[str, Any]:
    """One built-in baseline's line of the summary."""
    return {"name": idea.stem, "status": r.status, "pgr": r.pgr.mean if r.pgr else None,
            "pgr_ci95": r.pgr_ci95, HELDOUT_KEY: r.heldout_pgr.mean if r.heldout_pgr else None,
            # per-seed values: reports test gains over baselines paired by seed
            "pgr_values": r.pgr.values if r.pgr else None,
            HELDOUT_KEY + "_values": r.heldout_pgr.values if r.heldout_pgr else None,
            # dev's confirmation part, which no proposer sees (hide_heldout drops these keys)
            CONFIRM_KEY: r.confirm_pgr.mean if r.confirm_pgr else None,
            CONFIRM_KEY + "_values": r.confirm_pgr.values if r.confirm_pgr else None,
            "description": ast.get_docstring(ast.parse(idea.read_text())) or ""}


def open_session(config: ResearchConfig, *, show_progress: bool = True,
                 shared: SharedResources | None = None) -> SessionContext:
    """Create a new session in the lab, or reopen one to resume it."""
    if config.resume:
        return _reopen(config, LabStore.open(config.lab), show_progress, shared)
    session_id = config.session_id or new_session_id(Path(config.task).name, config.proposer)
    spec = get_task(config.task, _sizes(config.run.split_sizes))
    if config.run.transfer_task:
        get_task(config.run.transfer_task)  # a wrong transfer task fails now, not after the session
    seeds = list(range(config.seeds))
    device = resolve_device(config.device, remote=config.executor.name != "local")
    cache = open_cache(spec, n_weak_seeds=max([config.seeds, *(config.run.racing or [])]), show_progress=show_progress,
                       device=build_device(device))
    deferred = config.baselines_deferred
    if deferred is None:  # a cold start: research starts without them (see complete_baselines)
        deferred = not (cache.private_dir / baseline_summary_name(seeds)).is_file()
    store = LabStore.open(config.lab)  # after the task opened: a bad task leaves no empty lab
    manifest = SessionManifest(
        session_id=session_id, task=config.task, cache_key=cache.key, proposer=config.proposer,
        model=config.model, prompt_versions=prompt_versions(), seeds=seeds,
        package_versions=package_versions(), direction=config.direction, run=run_config(config, device),
        created_at=utc_now(), parent_session=config.parent_session, baselines_deferred=deferred,
    )
    store.create_session(manifest)
    return _context(config, store, manifest, cache, [], shared, show_progress)


def run_config(config: ResearchConfig, device: str | None) -> RunConfig:
    """What the manifest keeps of a research request (``device``: as resolved on this machine)."""
    return config.run.model_copy(update={"device": device, "executor": config.executor.name})


def config_from_manifest(manifest: SessionManifest, run: dict[str, Any] | None = None,
                         **overrides: Any) -> ResearchConfig:
    """The research request a stored session ran with (resume and replay start from it), with
    ``run`` settings and other fields changed as given."""
    config = ResearchConfig(
        task=manifest.task, proposer=manifest.proposer, model=manifest.model, seeds=len(manifest.seeds),
        direction=manifest.direction, run=manifest.run, baselines_deferred=manifest.baselines_deferred)
    return config.with_run(**(run or {})).model_copy(update=overrides)


def _reopen(asked: ResearchConfig, store: LabStore, show_progress: bool,
            shared: SharedResources | None) -> SessionContext:
    session_id = asked.resume or ""
    try:
        manifest = store.manifest(session_id)
    except (StoreError, *LAB_READ_ERRORS) as exc:
        raise HarnessError(f"cannot resume {session_id!r}: {exc}; list sessions with `aar sessions`") from exc
    given = asked.run.budgets.model_dump(exclude_none=True)  # limits named again on resume replace the stored ones
    budgets = manifest.run.budgets.model_copy(update=given)
    # Isolation, device and executor stay as asked now (a resume never silently drops the
    # sandbox; the machine may differ); a base URL and options given now win (a moved server).
    run = {"isolation": asked.run.isolation, "budgets": budgets,
           "base_url": asked.run.base_url or manifest.run.base_url,
           "options": {**manifest.run.options, **asked.run.options}}
    config = config_from_manifest(manifest, run, resume=session_id, lab=asked.lab, device=asked.device,
                                  executor=asked.executor)
    spec = get_task(manifest.task, _sizes(config.run.split_sizes))
    cache = open_cache(spec, n_weak_seeds=max([len(manifest.seeds), *(config.run.racing or [])]),
                       show_progress=show_progress,
                       device=build_device(resolve_device(config.device, remote=config.executor.name != "local")))
    if cache.key != manifest.cache_key:
        raise HarnessError(
            f"task data or models changed since session {session_id} (cache {cache.key} ≠ "
            f"{manifest.cache_key}); start a new session or replay it with `aar replay`")
    stored = run_config(config, resolve_device(config.device, remote=config.executor.name != "local"))
    if manifest.run != stored:
        store.update_session(session_id, {"run": stored.model_dump(mode="json")})
        manifest = store.manifest(session_id)
    return _context(config, store, manifest, cache, store.attempts(session_id), shared, show_progress)


def _context(config: ResearchConfig, store: LabStore, manifest: SessionManifest, cache: TaskCache,
             attempts: list[Attempt], shared: SharedResources | None, show_progress: bool = False) -> SessionContext:
    if shared is None:
        # Each result records the scoring calls used so far: the last one is what was spent.
        scoring = ScoringBudget(max_calls=config.run.budgets.max_scoring_calls,
                                used=max((a.result.scoring_calls for a in attempts if a.result), default=0))
        slots, parallel = None, seeds_at_once(config.seeds)
    else:  # researchers share the cores: one seed per core across them all
        scoring, slots, parallel = shared.scoring, shared.slots, None
    executor = (shared and shared.executor) or get_executor(ExecutorOptions(config.executor, parallel=parallel,
                                                                            slots=slots))
    evaluator = Evaluator(cache, isolation=config.run.isolation, budget=scoring, parallel=parallel,
                          time_budget_s=config.run.time_budget_s, executor=executor,
                          device=resolve_device(config.device, remote=config.executor.name != "local"))
    evaluator.warm_up()
    elapsed = max([manifest.elapsed_s, *(a.session_elapsed_s or 0.0 for a in attempts)])
    tracker = BudgetTracker(config.run.budgets, attempts=len(attempts), elapsed_s=elapsed,
                            cost_usd=sum(a.usage.cost_usd for a in attempts),
                            seed_runs=sum(seed_runs(a.result) for a in attempts))
    ctx = SessionContext(session_id=manifest.session_id, config=config, manifest=manifest, store=store, cache=cache,
                         evaluator=evaluator, tracker=tracker, researcher=config.run.researcher,
                         attempts=list(attempts))
    ctx.reviews = store.index.latest_reviews(manifest.session_id)
    ctx.update_best()
    if manifest.baselines_deferred:
        # Scoring needs the vanilla reference (paired comparison) before the first attempt; the
        # other baselines wait for complete_baselines, and the proposer is shown none.
        with progress_bar(f"{evaluator.card.name}: vanilla reference ({len(manifest.seeds)} seeds)", 1,
                          show_progress) as advance:
            evaluator.vanilla_pgrs(manifest.seeds)
            advance(1)
    else:  # what proposers see: dev figures only (the file keeps held-out PGR for reports)
        ctx.baseline_summary = hide_heldout(baseline_summary(evaluator, manifest.seeds, show_progress))
    return ctx


def complete_baselines(ctx: SessionContext, show_progress: bool = True) -> float:
    """After the research of a session that deferred them: the built-in baselines on its seeds,
    for its report and dashboard (uncharged; computed once per cache and seed set). Seconds spent."""
    started = time.monotonic()
    baseline_summary(ctx.evaluator, ctx.manifest.seeds, show_progress)
    return time.monotonic() - started
