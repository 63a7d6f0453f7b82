"""Token usage and cost of model calls, from a configurable price table (agent/prices.toml).

``cost_of(model, response)`` reads the ``usage`` block of an Anthropic Messages response
(input, output, cache write, cache read tokens) or of an OpenAI chat completion (prompt and
completion tokens, cached prompt tokens) and prices it. The table is in USD per million tokens;
``AAR_PRICES`` points at a replacement table.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from experiments.schemas import TokenUsage
from sandbox.errors import HarnessError

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
PRICES_ENV = "AAR_PRICES"
_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")  # bedrock: "us.anthropic.claude-..."
_SUFFIX = re.compile(r"(?:@\d+|-v\d+(?::\d+)?)$")  # vertex "@20251101", bedrock "-v1:0"


class ModelPrice(BaseModel):
    """USD per million tokens for one model family."""

    input: float = Field(ge=0, description="Uncached input tokens.")
    output: float = Field(ge=0, description="Output tokens.")
    cache_write: float = Field(ge=0, description="Input tokens written to the prompt cache.")
    cache_read: float = Field(ge=0, description="Input tokens read from the prompt cache.")


def prices_path() -> Path:
    return Path(os.environ.get(PRICES_ENV) or DEFAULT_PRICES)


@lru_cache(maxsize=8)
def _load(path: Path, mtime: float) -> dict[str, ModelPrice]:
    try:
        data = tomllib.loads(path.read_text())
        return {name: ModelPrice.model_validate(row) for name, row in data.get("models", {}).items()}
    except (OSError, tomllib.TOMLDecodeError, ValidationError, AttributeError) as exc:
        reason = str(exc).splitlines()[0]
        raise HarnessError(f"price table {path} is unreadable ({reason}): fix it or unset {PRICES_ENV}") from exc


def load_prices(path: Path | None = None) -> dict[str, ModelPrice]:
    """The price table (model family -> price), from ``path``, ``$AAR_PRICES`` or the default."""
    path = path or prices_path()
    if not path.is_file():
        raise HarnessError(f"price table {path} not found: set {PRICES_ENV} to an existing file")
    return _load(path, path.stat().st_mtime)


def family(model: str) -> str:
    """The model name without provider prefixes/suffixes (Bedrock, Vertex)."""
    return _SUFFIX.sub("", _PREFIX.sub("", model.strip()))


def price_for(model: str, prices: dict[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model``: exact key, else the longest key its family name starts with."""
    prices = load_prices() if prices is None else prices
    if model in prices:
        return prices[model]
    name = family(model)
    keys = [k for k in prices if name == k or name.startswith(k + "-") or name.startswith(k + ".")]
    return prices[max(keys, key=len)] if keys else None


def normalize_usage(usage: dict[str, Any] | None) -> TokenUsage:
    """A Messages ``usage`` block or an OpenAI ``usage`` block as TokenUsage (no cost yet)."""
    usage = usage or {}
    count = lambda key: int(usage.get(key) or 0)  # noqa: E731 - servers send null for "none"
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0)
        return TokenUsage(input_tokens=max(0, count("prompt_tokens") - cached), cache_read_tokens=cached,
                          output_tokens=count("completion_tokens"))
    return TokenUsage(input_tokens=count("input_tokens"), output_tokens=count("output_tokens"),
                      cache_read_tokens=count("cache_read_input_tokens"),
                      cache_write_tokens=count("cache_creation_input_tokens"))


def usage_cost(model: str, usage: dict[str, Any] | TokenUsage,
               prices: dict[str, ModelPrice] | None = None) -> float:
    """USD cost of one call's usage; 0.0 for a model the table does not price (local servers)."""
    tokens = usage if isinstance(usage, TokenUsage) else normalize_usage(usage)
    price = price_for(model, prices)
    if price is None:
        return 0.0
    return (tokens.input_tokens * price.input + tokens.output_tokens * price.output
            + tokens.cache_write_tokens * price.cache_write
            + tokens.cache_read_tokens * price.cache_read) / 1e6


def cost_of(model: str, response: dict[str, Any]) -> TokenUsage:
    """Usage and USD cost of one recorded response.

    ``model`` is the requested model; the response's own ``model`` field is used when the
    request's name has no price (e.g. an alias the server resolved)."""
    tokens = normalize_usage(response.get("usage"))
    cost = usage_cost(model, tokens)
    answered = response.get("model")
    if cost == 0.0 and isinstance(answered, str) and answered != model:
        cost = usage_cost(answered, tokens)
    return tokens.model_copy(update={"cost_usd": cost})
