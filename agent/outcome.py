"""How a session ended: the outcome the command line reports, its exit code, and the closing
commit that records the session's status and running time in the lab."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.proposers.base import Ending
from agent.session_setup import SessionContext
from experiments.schemas import SessionStatus
from experiments.store import resume_command

EXIT_CODES: dict[Ending, int] = {"finished": 0, "budget": 0, "failed": 1, "interrupted": 130}
SESSION_STATUS: dict[Ending, SessionStatus] = {"finished": "finished", "budget": "finished", "failed": "failed",
                                              "interrupted": "interrupted"}


class SessionOutcome(BaseModel):
    """How a session ended."""

    session_id: str = Field(description="The session's id (its branch in the lab).")
    attempts: int = Field(description="Attempts recorded in this session, all runs included.")
    stop_reason: str = Field(description="Why the loop stopped, in words.")
    ending: Ending = Field("finished", description="finished, budget, failed or interrupted.")
    best_attempt: str | None = Field(None,
                                     description="The best attempt (experiments/ranking.py), rejected ones left out.")
    best_pgr: float | None = Field(None, description="That attempt's dev PGR mean.")
    best_lower: float | None = Field(None, description="That attempt's lower 95% bound of dev PGR (what ranks).")
    cost_usd: float = Field(0.0, description="Model cost of the session, all runs and calls included.")
    resume_command: str | None = Field(None, description="How to continue, when interrupted or failed.")
    replay_mismatches: int = Field(0, description="In a replay: requests that differed from the recording.")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.ending]


def close_session(ctx: SessionContext, ending: Ending, pending_files: dict[str, str] | None) -> None:
    """Commit the calls no attempt holds (``pending_files``), the session's status and its running time."""
    checks_s = ctx.manifest.checks_s + ctx.tracker.off_clock_s
    ctx.store.update_session(ctx.session_id, {"status": SESSION_STATUS[ending],
                                              "elapsed_s": round(ctx.tracker.elapsed(), 3),
                                              "checks_s": round(checks_s, 3)}, pending_files)


def outcome(ctx: SessionContext, reason: str, ending: Ending) -> SessionOutcome:
    return SessionOutcome(
        session_id=ctx.session_id, attempts=len(ctx.attempts), stop_reason=reason, ending=ending,
        best_attempt=ctx.best[0] if ctx.best else None, best_pgr=ctx.best[1] if ctx.best else None,
        best_lower=ctx.best[2] if ctx.best else None,
        cost_usd=ctx.tracker.cost_usd,
        resume_command=resume_command(ctx.store.path, ctx.session_id) if ending in ("interrupted", "failed") else None,
    )


__all__ = ["EXIT_CODES", "SESSION_STATUS", "SessionOutcome", "close_session", "outcome"]
