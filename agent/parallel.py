"""Several researchers at once: one session (branch) each, different starting directions,
one bounded executor, one scoring budget, one findings forum, one Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agent.budget import BudgetTracker
from agent.outcome import SessionOutcome
from agent.progress import Reporter
from agent.session_setup import ResearchConfig, SharedResources
from experiments.forum import Forum
from experiments.layout import member_session, members, researcher_id
from experiments.ranking import best as ranking_best
from experiments.ranking import is_rejected, result_bound, result_key
from experiments.schemas import new_session_id
from experiments.store import LabStore
from sandbox.execution.base import ExecutorOptions
from sandbox.execution.registry import get_executor
from sandbox.scoring.evaluator import ScoringBudget


class GroupOutcome(BaseModel):
    """How a multi-researcher session ended."""

    group: str = Field(description="The group id; researcher sessions are <group>-r<k>.")
    researchers: list[SessionOutcome] = Field(description="Each researcher's outcome.")
    directions: dict[str, str | None] = Field(description="Session id -> starting direction.")
    summary: dict[str, Any] = Field(description="Best ideas per direction, convergence, findings.")


class PrefixedReporter(Reporter):
    """Plain lines tagged with the researcher, from several threads."""

    _lock = threading.Lock()

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def line(self, text: str) -> None:
        with self._lock:
            super().line(f"{self.tag} {text}")


def pick_directions(n: int, given: str | None) -> list[str | None]:
    from agent.prompting import directions

    pool = directions()
    if given:
        pool = [given] + [d for d in pool if d != given]
    return [pool[k % len(pool)] if pool else None for k in range(n)]


def researcher_configs(config: ResearchConfig, n: int) -> tuple[str, list[ResearchConfig]]:
    """One config per researcher, for a new group or to resume an existing one."""
    if config.resume:
        store = LabStore.open(config.lab)
        sessions = members(config.resume, store.session_heads())
        if not sessions:
            from sandbox.errors import HarnessError

            raise HarnessError(f"no researchers of group {config.resume!r} in the lab; see `aar sessions`")
        return config.resume, [config.model_copy(update={"resume": s}) for s in sessions]
    group = new_session_id(Path(config.task).name, config.proposer)
    dirs = pick_directions(n, config.direction)
    return group, [config.with_run(group=group, researcher=researcher_id(k), proposer_seed=config.run.proposer_seed + k)
                   .model_copy(update={"session_id": member_session(group, k), "direction": dirs[k]})
                   for k in range(n)]


def shared_scoring(config: ResearchConfig, configs: list[ResearchConfig]) -> ScoringBudget:
    """The group's scoring budget; on resume, as stored (unless given again) and as spent."""
    if not config.resume:
        return ScoringBudget(max_calls=config.run.budgets.max_scoring_calls)
    store = LabStore.open(config.lab)
    stored = store.manifest(configs[0].resume or "").run.budgets.max_scoring_calls
    used = max((a.result.scoring_calls for c in configs for a in store.attempts(c.resume or "") if a.result),
               default=0)
    given = config.run.budgets.max_scoring_calls
    return ScoringBudget(max_calls=given if given is not None else stored, used=used)


class QueueFeed:
    """``--from-queue``: each idle researcher takes the next open direction and runs a session on
    it (``<group>-r<m>``, m counting sessions), until the queue or the shared budgets run out."""

    def __init__(self, config: ResearchConfig, group: str) -> None:
        self.config, self.group = config, group
        self._lock = threading.Lock()
        self._next = 0

    def next_config(self) -> ResearchConfig | None:
        from experiments.queue import take_next

        with self._lock:
            m = self._next
            self._next += 1
        sid = member_session(self.group, m)
        taken = take_next(LabStore.open(self.config.lab), sid, self.config.task)
        if taken is None:
            return None
        return (self.config.with_run(group=self.group, researcher=researcher_id(m),
                                     proposer_seed=self.config.run.proposer_seed + m)
                .model_copy(update={"session_id": sid, "direction": taken.text}))


def run_parallel(config: ResearchConfig, n: int, from_queue: bool = False) -> GroupOutcome:
    from agent.research import run_research

    LabStore.open(config.lab)  # create the lab once, before the researchers race to it
    if from_queue:
        group = new_session_id(Path(config.task).name, config.proposer)
        feed: QueueFeed | None = QueueFeed(config, group)
        configs = [config] * n  # placeholders: each worker takes its directions from the queue
    else:
        group, configs = researcher_configs(config, n)
        feed = None
    slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
    shared = SharedResources(slots=slots, scoring=shared_scoring(config, configs),
                             executor=get_executor(ExecutorOptions(config.executor, slots=slots)))
    trackers: list[BudgetTracker] = []
    outcomes: dict[int, SessionOutcome] = {}
    errors: dict[int, str] = {}

    def one(k: int, cfg: ResearchConfig) -> SessionOutcome | None:
        try:
            outcomes[k] = run_research(cfg, PrefixedReporter(f"[{cfg.run.researcher}]"), shared=shared,
                                       on_tracker=trackers.append, install_signals=False)
            return outcomes[k]
        except Exception as exc:  # one researcher's failure must not take the others down
            errors[k] = f"{type(exc).__name__}: {exc}"
            return None

    def work(k: int, cfg: ResearchConfig) -> None:
        if feed is None:
            one(k, cfg)
            return
        while presses["n"] == 0 and shared.scoring.remaining() != 0:
            taken = feed.next_config()
            if taken is None:  # the queue is empty: this researcher is done
                return
            done = one(int(taken.run.researcher[1:]), taken)
            if done is None or done.ending == "interrupted":
                return

    threads = [threading.Thread(target=work, args=(k, c), name=f"researcher-{k}", daemon=True)
               for k, c in enumerate(configs)]

    presses = {"n": 0}

    def stop_all(signum: int, frame: object) -> None:
        presses["n"] += 1
        for tracker in trackers:
            tracker.request_stop("interrupted (Ctrl-C)", "interrupted")
        if presses["n"] > 1 and shared.executor is not None:
            shared.executor.cancel()  # second press: the seeds in flight (Ray tasks too) stop now
            Reporter().line("Ctrl-C again: cancelling the seeds in flight")
            return
        Reporter().line("Ctrl-C: every researcher finishes its attempt in flight, then stops "
                        "(press again to cancel the seeds in flight)")

    previous = signal.signal(signal.SIGINT, stop_all)
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    finally:
        signal.signal(signal.SIGINT, previous)
    if errors and not outcomes:
        from sandbox.errors import HarnessError

        raise HarnessError("every researcher failed: " + "; ".join(errors.values()))
    store = LabStore.open(config.lab)
    results = [outcomes[k] for k in sorted(outcomes)]
    directions = {r.session_id: store.manifest(r.session_id).direction for r in results}
    return GroupOutcome(group=group, researchers=results, directions=directions,
                        summary=summarise(store, group, results, errors))


def idea_family(code: str) -> str:
    """The idea's family: for offline ideas the gene groups it changes, else 'custom'."""
    from agent.proposers.search_space import BASE, FAMILIES, config_from_code

    config = config_from_code(code)
    if config is None:
        return "custom"
    changed = {g for g, v in config.items() if g in BASE and BASE[g] != v and g != "layers"}
    if config.get("layers") not in (["final"], None):
        changed.add("layers")
    fams = sorted(f for f, genes in FAMILIES.items() if changed & set(genes))
    return "+".join(fams) or "vanilla"


def summarise(store: LabStore, group: str, results: list[SessionOutcome],
              errors: dict[int, str]) -> dict[str, Any]:
    per_direction: dict[str, Any] = {}
    families: dict[str, Counter[str]] = {}
    for r in results:
        manifest = store.manifest(r.session_id)
        attempts = store.attempts(r.session_id)
        reviews = store.index.latest_reviews(r.session_id)
        rejected = {aid for aid, (verdict, _) in reviews.items() if is_rejected(verdict)}
        best = ranking_best((a for a in attempts if a.attempt_id not in rejected), lambda a: result_key(a.result))
        families[r.session_id] = Counter(idea_family(a.code) for a in attempts)
        per_direction[r.session_id] = {
            "direction": manifest.direction, "attempts": len(attempts),
            "best": None if best is None else {"attempt_id": best.attempt_id, "name": best.name,
                                               "pgr": best.result.pgr.mean,  # type: ignore[union-attr]
                                               "pgr_lower": result_bound(best.result)}}
    findings = Forum(store).findings(limit=10, session_prefix=group)
    return {"per_direction": per_direction, "families": {k: dict(v) for k, v in families.items()},
            "family_overlap": family_overlap(families), "converged": converged(per_direction),
            "findings": [f"[{f.researcher}] {f.title}" for f in findings],
            "errors": list(errors.values())}


def family_overlap(families: dict[str, Counter[str]]) -> dict[str, float]:
    """Pairwise Jaccard overlap of the idea families two researchers tried."""
    keys = sorted(families)
    out = {}
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            sa, sb = set(families[a]), set(families[b])
            out[f"{a[-2:]}~{b[-2:]}"] = round(len(sa & sb) / max(1, len(sa | sb)), 3)
    return out


def converged(per_direction: dict[str, Any], tolerance: float = 0.02) -> list[list[str]]:
    """Groups of researchers whose best dev PGRs lie within ``tolerance`` of the group's top."""
    bests = sorted(((v["best"]["pgr"], k) for k, v in per_direction.items() if v["best"]), reverse=True)
    groups: list[list[tuple[float, str]]] = []
    for pgr, key in bests:
        if groups and groups[-1][0][0] - pgr <= tolerance:
            groups[-1].append((pgr, key))
        else:
            groups.append([(pgr, key)])
    return [[key for _, key in group] for group in groups if len(group) > 1]
