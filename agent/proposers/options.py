"""Options shared by the model-backed proposers (``ProposerConfig.options``), validated."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.errors import HarnessError


class ChatOptions(BaseModel):
    """Settings of a model-backed proposer; unknown keys are errors (typos fail fast)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(16_000, ge=256, le=128_000,
                            description="Output tokens per call (Claude calls stream, so this may pass 21k).")
    max_retries: int = Field(10, ge=0, le=50, description="Retries of 408/409/429/5xx/529 and timeouts per call.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry wait in seconds; it doubles each retry.")
    retry_max_wait_s: float = Field(120.0, gt=0, description="Longest wait between two retries (Retry-After too).")
    timeout_s: float = Field(600.0, gt=0, description="Seconds one HTTP attempt may take.")
    compact_chars: int = Field(200_000, ge=1_000, description="Compact the transcript above this many JSON characters.")
    compact_tokens: int = Field(120_000, ge=1_000, description="Compact when a call read more input tokens than this.")
    keep_rounds: int = Field(2, ge=0, description="Recent model turns kept verbatim by a compaction.")
    max_nudges: int = Field(1, ge=0, description="Turns without a tool call answered with a nudge before stopping.")
    max_lookups: int = Field(8, ge=1, description=(
        "Turns in a row without an experiment (only look-ups: leaderboard, attempts, findings) before the model "
        "is told to run one or finish; after as many again the session stops."))


OptionsT = TypeVar("OptionsT", bound=ChatOptions)


def parse_options(model: type[OptionsT], options: dict[str, Any], proposer: str) -> OptionsT:
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        known = ", ".join(model.model_fields)
        raise HarnessError(f"{proposer} option {where}: {first['msg']} (options: {known})") from exc
