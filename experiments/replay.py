"""Replay: rerun every recorded attempt's code with its recorded seeds, compare, and record the replay.

On the session's own task a replay checks reproducibility (recorded vs replayed PGR per seed,
within a tolerance). On another task (``task=``) it asks whether the ideas transfer. Either way
the replay is itself a session (proposer ``replay``, ``parent_session`` the original) whose
``state/replay.json`` holds the report.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from experiments.layout import StoreError
from experiments.schemas import (
    Attempt,
    RunConfig,
    SessionManifest,
    TokenUsage,
    new_attempt_id,
    new_session_id,
    package_versions,
    utc_now,
)
from experiments.store import LabStore
from experiments.workspace import Workspace
from sandbox.execution.interrupts import SeedInterrupts
from sandbox.results import IdeaResult

if TYPE_CHECKING:
    from sandbox.scoring.evaluator import Evaluator

DEFAULT_TOLERANCE = 0.01


class ReplayRow(BaseModel):
    """One attempt, recorded vs replayed."""

    attempt_id: str = Field(description="The recorded attempt.")
    index: int = Field(description="Its step number.")
    name: str = Field(description="Idea name.")
    seeds: list[int] = Field(description="Seeds the replay ran.")
    recorded_status: str = Field(description="Recorded attempt status.")
    replayed_status: str | None = Field(description="Status of the replay (None when skipped).")
    recorded_pgr: float | None = Field(description="Recorded dev PGR mean.")
    replayed_pgr: float | None = Field(description="Replayed dev PGR mean.")
    max_seed_diff: float | None = Field(description="Largest |recorded - replayed| PGR over shared seeds.")
    reproduced: bool | None = Field(description="Within tolerance (None on another task or when not comparable).")
    replay_attempt: str | None = Field(description="Attempt id of the replay in the replay session.")
    note: str = Field("", description="Why a row was skipped or not comparable.")


class ReplayReport(BaseModel):
    """What ``aar replay`` found; stored as state/replay.json in the replay session."""

    session_id: str = Field(description="The replayed session.")
    replay_session: str = Field(description="The session recording the replay.")
    task: str = Field(description="Task the replay ran on.")
    same_task: bool = Field(description="True when replayed on the session's own task and cache.")
    tolerance: float = Field(description="Largest per-seed PGR difference that still reproduces.")
    rows: list[ReplayRow] = Field(description="One row per recorded attempt.")
    interrupted: bool = Field(False, description="Ctrl-C stopped it before every attempt was replayed.")

    @property
    def reproduced(self) -> int:
        return sum(1 for r in self.rows if r.reproduced)

    @property
    def compared(self) -> int:
        return sum(1 for r in self.rows if r.reproduced is not None)


class ReplayInterrupted(KeyboardInterrupt):
    """A second Ctrl-C killed the seeds in flight; ``report`` holds the rows replayed before."""

    def __init__(self, report: ReplayReport) -> None:
        super().__init__(report.replay_session)
        self.report = report


def session_sizes(manifest: SessionManifest) -> str | None:
    """The split sizes a session recorded (older manifest forms are read by SessionManifest)."""
    return manifest.run.split_sizes


def replay_seeds(attempt: Attempt, manifest: SessionManifest, count: int | None) -> list[int]:
    recorded = [s.seed for s in attempt.result.seeds] if attempt.result else list(manifest.seeds)
    if count is None:
        return recorded
    extra = [s for s in range(max(recorded, default=-1) + 1 + count) if s not in recorded]
    return (recorded + extra)[:count]


def compare(recorded: IdeaResult | None, replayed: IdeaResult,
            tolerance: float) -> tuple[float | None, bool | None, str]:
    """(max per-seed PGR difference, reproduced?, note) over the seeds both runs share."""
    if recorded is None:
        return None, None, "no recorded result"
    old = {s.seed: s for s in recorded.seeds}
    shared = [s for s in replayed.seeds if s.seed in old]
    if not shared:
        return None, None, "no seed in common with the recording"
    diffs, same_status = [], True
    for new in shared:
        before = old[new.seed]
        same_status &= before.status == new.status
        if before.pgr is not None and new.pgr is not None:
            diffs.append(abs(before.pgr - new.pgr))
        elif (before.pgr is None) != (new.pgr is None):
            same_status = False
    worst = max(diffs, default=None)
    ok = same_status and (worst is None or worst <= tolerance)
    return worst, ok, "" if same_status else "status differs"


def _replay_manifest(source: SessionManifest, task: str, cache_key: str, sizes: str | None,
                     tolerance: float) -> SessionManifest:
    return SessionManifest(
        session_id=new_session_id(f"replay-{Path(task).name}"), task=task, cache_key=cache_key, proposer="replay",
        model=None, prompt_versions={}, seeds=list(source.seeds), package_versions=package_versions(),
        direction=f"replay of session {source.session_id}", run=RunConfig(split_sizes=sizes),
        created_at=utc_now(), parent_session=source.session_id,
        extra={"replay_of": source.session_id, "tolerance": tolerance})


def replay_session(store: LabStore, session_id: str, task: str | None = None, seeds: int | None = None,
                   tolerance: float = DEFAULT_TOLERANCE, split_sizes: str | None = None,
                   isolation: str | None = None, time_budget_s: float | None = None,
                   on_row: Callable[[ReplayRow], None] | None = None,
                   on_start: Callable[[Attempt, list[int]], None] | None = None,
                   interrupts: SeedInterrupts | None = None) -> ReplayReport:
    """Rerun every attempt of ``session_id`` and record the replay as a new session.

    Ideas run under the sandbox's default isolation unless ``isolation`` is given (a recorded
    session may have run unsandboxed; replaying it must not); the per-seed time budget defaults
    to what the session recorded. With ``interrupts`` (the command's Ctrl-C handler), a first
    Ctrl-C finishes the attempt in flight and stops, a second kills its seeds: either way the
    replay session is marked ``interrupted`` with the rows done so far (the second one raises
    ``KeyboardInterrupt`` after that)."""
    from sandbox.cache.task_cache import open_cache
    from sandbox.isolation.base import DEFAULT_ISOLATION
    from sandbox.scoring.evaluator import Evaluator
    from sandbox.tasks import SplitSizes, get_task

    source = store.manifest(session_id)
    attempts = store.attempts(session_id)
    if not attempts:
        raise StoreError(f"session {session_id} has no attempts to replay")
    target = task or source.task
    same_task = target == source.task
    # The session's own task is rebuilt with its recorded sizes; another task with its defaults.
    sizes = split_sizes or (session_sizes(source) if same_task else None)
    all_seeds = sorted({s for a in attempts for s in replay_seeds(a, source, seeds)})
    spec = get_task(target, SplitSizes.parse(sizes) if sizes else None)
    cache = open_cache(spec, n_weak_seeds=max(all_seeds, default=0) + 1, show_progress=False)
    comparable = cache.key == source.cache_key
    if same_task and not comparable and not split_sizes:
        raise StoreError(f"the {target} cache rebuilt here has key {cache.key}, the session ran on "
                         f"{source.cache_key}; pass the session's --split-sizes (weak_train,unlabeled,dev,heldout)")
    evaluator = Evaluator(cache, isolation=isolation or DEFAULT_ISOLATION,
                          time_budget_s=float(time_budget_s or source.run.time_budget_s))
    manifest = _replay_manifest(source, target, cache.key, sizes, tolerance)
    interrupts = interrupts or SeedInterrupts(lambda line: None)
    with interrupts.protected():
        store.create_session(manifest)
    report = ReplayReport(session_id=session_id, replay_session=manifest.session_id, task=target,
                          same_task=comparable, tolerance=tolerance, rows=[])
    try:
        with store.running(manifest.session_id):
            _replay_all(store, evaluator, manifest, source, attempts, report, seeds, tolerance if comparable else None,
                        interrupts, on_row, on_start)
    except KeyboardInterrupt as exc:
        _close_replay(store, report, interrupts, interrupted=True)
        raise ReplayInterrupted(report) from exc
    _close_replay(store, report, interrupts, interrupted=interrupts.requested)
    return report


def _replay_all(store: LabStore, evaluator: Evaluator, manifest: SessionManifest, source: SessionManifest,
                attempts: list[Attempt], report: ReplayReport, seeds: int | None, tolerance: float | None,
                interrupts: SeedInterrupts, on_row: Callable[[ReplayRow], None] | None,
                on_start: Callable[[Attempt, list[int]], None] | None) -> None:
    """Replay the attempts in order into ``report.rows``, stopping before the next after a Ctrl-C."""
    for step, attempt in enumerate(attempts, start=1):
        if interrupts.requested:
            break
        run_seeds = replay_seeds(attempt, source, seeds)
        with interrupts.seeds(evaluator.executor, f"#{attempt.index} {attempt.name[:60]}"):
            if on_start:
                on_start(attempt, run_seeds)
            row = _replay_one(store, evaluator, manifest, attempt, step, run_seeds, tolerance, interrupts)
        report.rows.append(row)
        if on_row:
            on_row(row)


def _close_replay(store: LabStore, report: ReplayReport, interrupts: SeedInterrupts, interrupted: bool) -> None:
    """The report and the end status, in one commit (a Ctrl-C now waits for it)."""
    report.interrupted = interrupted
    with interrupts.protected():
        store.update_session(report.replay_session, {"status": "interrupted" if interrupted else "finished"},
                             files={"replay.json": report.model_dump_json(indent=2)})


def _evaluate_with_workspace(store: LabStore, evaluator: Evaluator, attempt: Attempt, seeds: list[int],
                             tree: bytes) -> IdeaResult:
    """A multi-file attempt rerun from the workspace snapshot it was committed with."""
    from sandbox.execution.analysis import write_idea

    files = Workspace.from_tree(store.objects, tree).text_files()
    entry = attempt.extra["workspace"].get("entry")
    with tempfile.TemporaryDirectory(prefix="aar-replay-") as tmp:
        path = write_idea(attempt.code, f"workspace/{entry}" if entry else "idea.py", Path(tmp), files)
        return evaluator.evaluate(path, seeds, name=attempt.name)


def _replay_one(store: LabStore, evaluator: Evaluator, manifest: SessionManifest, attempt: Attempt, step: int,
                seeds: list[int], tolerance: float | None, interrupts: SeedInterrupts) -> ReplayRow:
    recorded_pgr = attempt.result.pgr.mean if attempt.result and attempt.result.pgr else None
    row = ReplayRow(attempt_id=attempt.attempt_id, index=attempt.index, name=attempt.name, seeds=seeds,
                    recorded_status=attempt.status, replayed_status=None, recorded_pgr=recorded_pgr,
                    replayed_pgr=None, max_seed_diff=None, reproduced=None, replay_attempt=None)
    if not attempt.code.strip():
        return row.model_copy(update={"note": "no code was recorded"})
    tree = store.attempt_workspace(attempt.attempt_id) if attempt.extra.get("workspace") else None
    result: IdeaResult = (_evaluate_with_workspace(store, evaluator, attempt, seeds, tree) if tree is not None
                          else evaluator.evaluate_code(attempt.code, seeds, name=attempt.name))
    worst, ok, note = compare(attempt.result, result, tolerance) if tolerance is not None else (None, None, "")
    replay = Attempt(
        attempt_id=new_attempt_id(), session_id=manifest.session_id, index=step, name=attempt.name,
        rationale=f"Replay of attempt {attempt.attempt_id} (#{attempt.index}) of session {attempt.session_id}.",
        code=attempt.code, parent_id=None, result=result, status=result.status,
        log="\n".join(f"--- seed {s.seed}: {s.status}\n{s.log_tail}" for s in result.seeds),
        transcript=[], usage=TokenUsage(), created_at=utc_now(), researcher=attempt.researcher,
        extra={"replay_of": attempt.attempt_id, "recorded_pgr": recorded_pgr, "max_seed_diff": worst,
               "reproduced": ok, **({"workspace": attempt.extra["workspace"]} if tree is not None else {})})
    with interrupts.protected():
        store.record_attempt(replay, workspace=tree)
    return row.model_copy(update={
        "replayed_status": result.status, "replayed_pgr": result.pgr.mean if result.pgr else None,
        "max_seed_diff": worst, "reproduced": ok, "replay_attempt": replay.attempt_id, "note": note})
