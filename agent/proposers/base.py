"""The proposer contract.

A proposer drives a session through ``ResearchTools`` (the same tools a model gets):
run an experiment, look at the leaderboard or a past attempt, finish. Every model call goes
through ``tools.model_call`` so it is recorded (request, response, usage) in the attempt it
leads to, charged against the cost budget, and can be replayed without the model.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from sandbox.errors import HarnessError, UnknownNameError
from sandbox.execution.analysis import AnalysisOutput
from sandbox.registry import Registry
from sandbox.results import ResultView

if TYPE_CHECKING:
    from experiments.steering import Delivery
    from experiments.workspace import Workspace

# How a session ended: the proposer finished, a budget stopped it, it failed, or Ctrl-C.
Ending = Literal["finished", "budget", "failed", "interrupted"]


class BudgetStop(Exception):
    """Raised by the tools when a budget (attempts, cost, time, scoring) is spent, when the
    proposer finished, or on Ctrl-C; ``ending`` says which."""

    def __init__(self, reason: str, ending: Ending = "budget") -> None:
        super().__init__(reason)
        self.ending: Ending = ending


class ModelCallError(HarnessError):
    """A model call failed for good (bad key, unknown model, retries spent, a body that is no
    message): one line. ``partial`` is what arrived before the failure (a cut-off stream's
    message so far, with the usage billed), so its cost is recorded."""

    def __init__(self, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class ContextTooLong(ModelCallError):
    """The API refused the request because the prompt is longer than the model's context (a 400
    "prompt is too long"): the conversation compacts its transcript and asks again."""


class ExperimentSpec(BaseModel):
    """One experiment a proposer asks for."""

    name: str = Field(description="Short name of the idea (a slug is derived from it).")
    hypothesis: str = Field(description="Why this should recover more of the gap (the rationale).")
    code: str = Field(description="The idea file: Python source defining run(ctx).")
    parent_id: str | None = Field(None, description="The attempt this one builds on, if any.")
    path: str | None = Field(None, description="The workspace file ``code`` was read from (the entry of a "
                                               "multi-file idea), or None for inline code.")


class LeaderboardRow(BaseModel):
    """One row of the session's leaderboard as a proposer sees it (dev figures only)."""

    attempt_id: str = Field(description="The attempt.")
    name: str = Field(description="Its idea name.")
    status: str = Field(description="Attempt status.")
    pgr: float = Field(description="Dev PGR mean over seeds.")
    pgr_ci95: float | None = Field(None, description="Half-width of the 95% CI of dev PGR.")
    pgr_lower: float | None = Field(None, description="Lower 95% bound of dev PGR: what the leaders are ranked by.")
    vs_vanilla: float | None = Field(None, description="Paired dev PGR difference against vanilla.")
    vs_vanilla_p: float | None = Field(None, description="p-value of that paired difference.")
    dev_acc: float | None = Field(None, description="Dev transfer accuracy.")
    review: str | None = Field(None, description="A human's latest verdict: accept (reviewed) or reject "
                                                 "(unranked: do not build on it).")
    review_note: str | None = Field(None, description="What the reviewer said.")


class BudgetStatus(BaseModel):
    """What the session has used and has left (None: no such budget)."""

    attempts_used: int = Field(0, description="Attempts recorded so far.")
    attempts_left: int | None = Field(None, description="Attempts left under --max-attempts.")
    seed_runs_used: int = Field(0, description="Seed-runs spent (one idea on one seed).")
    seed_runs_left: int | None = Field(None, description="Seed-runs left under --max-seed-runs.")
    cost_usd: float = Field(0.0, description="Model cost so far.")
    cost_left_usd: float | None = Field(None, description="Cost left under --max-cost.")
    elapsed_s: float = Field(0.0, description="Research time so far (setup and checks excluded).")
    time_left_s: float | None = Field(None, description="Research time left under --max-time.")
    analysis_runs: int = Field(0, description="Analysis runs made so far.")
    analysis_s_used: float = Field(0.0, description="Sandbox seconds analysis runs took so far.")
    analysis_s_left: float | None = Field(None, description="Analysis seconds left under --max-analysis-time.")


class Feedback(BaseModel):
    """What ``run_experiment`` returns: the attempt it committed and its proposer-visible result,
    or why nothing ran (a repeat of an earlier attempt: ``status`` 'duplicate')."""

    attempt_id: str | None = Field(description="The committed attempt (None when nothing ran).")
    name: str = Field(description="The idea's name.")
    status: str = Field(description="The attempt's status, or 'duplicate'.")
    result: ResultView | None = Field(None, description="The scored result (dev figures only).")
    duplicate_of: str | None = Field(None, description="The earlier attempt this one repeats.")
    error: str | None = Field(None, description="Why nothing ran, in one line.")
    budget: BudgetStatus = Field(default_factory=BudgetStatus, description="Budgets after this call.")

    @property
    def pgr(self) -> float | None:
        """Dev PGR mean of an ok result, else None."""
        return self.result.pgr.mean if self.status == "ok" and self.result and self.result.pgr else None


class AttemptView(BaseModel):
    """A past attempt as ``show_attempt`` returns it."""

    attempt_id: str = Field(description="The attempt.")
    name: str = Field(description="Its idea name.")
    hypothesis: str = Field("", description="The rationale it was run with.")
    code: str = Field("", description="Its idea file.")
    parent_id: str | None = Field(None, description="The attempt it built on.")
    status: str = Field(description="Attempt status.")
    result: ResultView | None = Field(None, description="Its scored result (dev figures only).")


class AnalysisReply(BaseModel):
    """What ``run_analysis`` returns: the run's committed folder and what it gave back."""

    analysis_id: str = Field(description="The run's folder under analyses/ on the session branch.")
    name: str = Field(description="The name the model gave the run.")
    source: str = Field(description="'inline' or the workspace path it ran.")
    output: AnalysisOutput = Field(description="Output, reports, checked figures, status.")
    budget: BudgetStatus = Field(description="Budgets after the run.")


class ImportReply(BaseModel):
    """What ``import_attempt`` returns: the attempt and where its files now are."""

    attempt: AttemptView = Field(description="The imported attempt (dev figures only).")
    session_id: str = Field(description="The session it came from.")
    folder: str = Field(description="The workspace folder its files were copied to.")
    files: list[str] = Field(description="The workspace paths written.")
    workspace: str = Field(description="The workspace's usage after the copy.")


class BaselineRow(BaseModel):
    """A built-in baseline as the task introduction shows it (dev figures only)."""

    name: str = Field(description="The baseline idea's name.")
    status: str = Field("ok", description="How its run ended.")
    pgr: float | None = Field(None, description="Dev PGR mean over the session's seeds.")
    pgr_ci95: float | None = Field(None, description="Half-width of the 95% CI of dev PGR.")
    description: str = Field("", description="The idea file's docstring.")


class ProposerConfig(BaseModel):
    """Settings every proposer receives."""

    model: str | None = Field(None, description="Model name for model-backed proposers.")
    seed: int = Field(0, description="Seed for any randomness in the proposer.")
    direction: str | None = Field(None, description="Starting research direction.")
    base_url: str | None = Field(None, description="API base URL (OpenAI-compatible / custom).")
    options: dict[str, Any] = Field(default_factory=dict, description="Proposer-specific options.")


# A transport answers one recorded request with one response (both plain JSON-able dicts).
Transport = Callable[[dict[str, Any]], dict[str, Any]]


class ResearchTools(Protocol):
    """What the research loop offers a proposer (implemented in agent/loop.py)."""

    task_card: dict[str, Any]
    baselines: list[BaselineRow]
    direction: str | None

    @property
    def workspace(self) -> Workspace | None:
        """The researcher's files (the file tools edit it); None: no file tools."""

    def model_call(self, request: dict[str, Any], transport: Transport) -> dict[str, Any]:
        """Send ``request`` through ``transport`` (or, in replay, answer from the recording);
        record it for the next attempt and charge its cost. May raise BudgetStop."""

    def charge_abandoned(self, request: dict[str, Any], partial: dict[str, Any], error: str) -> None:
        """Record and charge an answer to ``request`` that was given up after it started (the
        API bills it): ``partial`` is the message so far with its usage, ``error`` why."""

    def inbox(self) -> list[Delivery]:
        """Reviews and messages from people since the last turn (each once); call before each model call."""

    def run_experiment(self, spec: ExperimentSpec) -> Feedback:
        """Score the idea in the sandbox, commit the attempt, return the proposer's view of the
        result (never held-out figures). Raises BudgetStop when no budget is left."""

    def run_analysis(self, name: str, code: str | None, path: str | None) -> AnalysisReply:
        """Run Python (inline, or a workspace file) in the sandbox against the gold-free context;
        never scored; commits the run. Raises HarnessError when no analysis time is left."""

    def import_attempt(self, attempt_id: str) -> ImportReply:
        """Copy any attempt's files of the lab (its idea file and workspace snapshot; another
        researcher's or an earlier session's) into this researcher's workspace."""

    def leaderboard(self, limit: int = 10) -> list[LeaderboardRow]:
        """Best attempts of this session so far (dev figures only)."""

    def show_attempt(self, attempt_id: str) -> AttemptView:
        """A past attempt's code and proposer-visible result."""

    def finish(self, summary: str) -> None:
        """End the session with a summary."""

    def save_summary(self, summary: str) -> None:
        """Keep a summary the model wrote without calling finish (a later one replaces it)."""

    def notice(self, text: str) -> None:
        """Show a passing state in the progress view (e.g. a retry wait)."""

    def post_finding(self, title: str, body: str = "", attempt_id: str | None = None) -> dict[str, Any]:
        """Post a finding to the lab's forum, shared by every researcher; returns it."""

    def read_findings(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest findings of this session's group."""

    def save_state(self, state: dict[str, Any]) -> None:
        """Persist proposer state (e.g. the conversation) so --resume can continue."""

    def load_state(self) -> dict[str, Any] | None:
        """The state saved by the last save_state of a resumed session, if any."""

    def budget_status(self) -> BudgetStatus:
        """Attempts, cost and time used and left."""


class Proposer(ABC):
    """Base class. Subclasses register with ``@register_proposer(name)``."""

    name: str = ""

    def __init__(self, config: ProposerConfig) -> None:
        self.config = config

    def check_ready(self) -> None:
        """Fail fast (one clear line, before any work) when the proposer cannot run,
        e.g. a missing API key. Raise sandbox.errors.HarnessError."""
        return None

    @abstractmethod
    def run(self, tools: ResearchTools) -> None:
        """Propose and run experiments until finished or a BudgetStop propagates."""


PROPOSERS: Registry[type[Proposer]] = Registry("proposer")
_BUILTIN_MODULES = {
    "offline": "agent.proposers.offline",
    "claude": "agent.proposers.claude",
    "openai": "agent.proposers.openai_compat",
}


def register_proposer(name: str) -> Callable[[type[Proposer]], type[Proposer]]:
    """Decorator: a Proposer subclass known as ``name`` (its ``name`` attribute is set too)."""

    def deco(cls: type[Proposer]) -> type[Proposer]:
        cls.name = name
        return PROPOSERS.register(name)(cls)

    return deco


def list_proposers() -> list[str]:
    return sorted({*_BUILTIN_MODULES, *PROPOSERS.names()})


def get_proposer(name: str, config: ProposerConfig) -> Proposer:
    """A new proposer by name (the built-in ones are imported on first use)."""
    if name not in PROPOSERS and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in PROPOSERS:
        raise UnknownNameError(f"unknown proposer {name!r}: use one of {', '.join(list_proposers())}")
    return PROPOSERS.get(name)(config)
