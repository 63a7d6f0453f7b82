"""``aar replay SESSION --llm``: re-drive a recorded session from its model responses.

No model is called: the proposer's requests are answered, in order, by the responses recorded
in the session's attempts. Every idea is scored again, so the replay shows whether the whole
session reproduces: the same ideas, in the same order, with the same PGRs.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from agent.progress import Reporter
from agent.research import run_research
from agent.session_setup import config_from_manifest
from experiments.layout import PENDING_CALLS_FILE
from experiments.schemas import Attempt, Budgets
from experiments.store import LabStore
from sandbox.isolation.base import DEFAULT_ISOLATION


class ReplayedStep(BaseModel):
    """One attempt, recorded versus replayed."""

    index: int = Field(description="Attempt number.")
    name: str = Field(description="Idea name as recorded.")
    same_code: bool = Field(description="The replayed proposer wrote the same code.")
    recorded_pgr: float | None = Field(description="Dev PGR mean recorded.")
    replayed_pgr: float | None = Field(description="Dev PGR mean of the replay.")
    reproduced: bool = Field(description="Same code and PGR within the tolerance.")


class LLMReplayReport(BaseModel):
    """The outcome of an LLM replay."""

    original: str = Field(description="The replayed session.")
    replay_session: str = Field(description="The new session holding the replay.")
    steps: list[ReplayedStep] = Field(description="Per-attempt comparison.")
    request_mismatches: int = Field(description="Requests that differed from the recorded ones.")
    reproduced: bool = Field(description="Every step reproduced.")
    interrupted: bool = Field(False, description="Ctrl-C stopped the replay (its session is marked interrupted).")


def recorded_calls(store: LabStore, session_id: str) -> list[dict]:
    calls = [entry for a in store.attempts(session_id) for entry in a.transcript]
    pending = store.read_session_file(session_id, PENDING_CALLS_FILE)
    return calls + (json.loads(pending) if pending else [])


def replay_llm(session: str, lab: Path | None = None, tolerance: float = 1e-9,
               reporter: Reporter | None = None, isolation: str = DEFAULT_ISOLATION,
               calls: list[dict] | None = None) -> LLMReplayReport:
    """Replay ``session``'s model responses (or ``calls``, a recording of it) into a new session
    (no model call, no cost)."""
    store = LabStore.open(lab)
    session_id = store.resolve_session(session)
    manifest = store.manifest(session_id)
    originals = store.attempts(session_id)
    config = config_from_manifest(manifest, {"isolation": isolation, "budgets": Budgets(max_attempts=len(originals))},
                                  lab=lab, parent_session=session_id)
    calls = recorded_calls(store, session_id) if calls is None else calls
    outcome = run_research(config, reporter, recorded=calls, recorded_ids=[a.attempt_id for a in originals])
    replayed: list[Attempt | None] = [*store.attempts(outcome.session_id)]
    replayed += [None] * (len(originals) - len(replayed))  # a step the replay never reached is a mismatch
    steps = []
    for old, new in zip(originals, replayed, strict=False):
        old_pgr = old.result.pgr.mean if old.result and old.result.pgr else None
        if new is None:
            steps.append(ReplayedStep(index=old.index, name=old.name, same_code=False, recorded_pgr=old_pgr,
                                      replayed_pgr=None, reproduced=False))
            continue
        new_pgr = new.result.pgr.mean if new.result and new.result.pgr else None
        same_pgr = (old_pgr is None and new_pgr is None) or (
            old_pgr is not None and new_pgr is not None and abs(old_pgr - new_pgr) <= tolerance)
        steps.append(ReplayedStep(index=old.index, name=old.name, same_code=old.code == new.code,
                                  recorded_pgr=old_pgr, replayed_pgr=new_pgr,
                                  reproduced=old.code == new.code and same_pgr))
    return LLMReplayReport(
        original=session_id, replay_session=outcome.session_id, steps=steps,
        request_mismatches=outcome.replay_mismatches,
        # Request mismatches are expected (budget left, runtimes and cost differ in the texts fed
        # back), so they are reported, not judged; a step not reproduced or never reached is.
        reproduced=all(s.reproduced for s in steps), interrupted=outcome.ending == "interrupted",
    )
