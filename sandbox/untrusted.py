"""Text and numbers an idea or a proposer wrote are data: made safe before they are shown or saved.

``plain`` drops terminal escape sequences (CSI, OSC, other ESC forms), control characters and
bidirectional overrides, so an error message cannot restyle, retitle or hide text in a
terminal; ``rich_text`` wraps it as a rich Text, never parsed as markup (``[red]`` stays
literal, and ``[/x]`` cannot make rich raise); ``for_markup`` escapes it for a markup string.
``finite`` and ``dumps_strict`` keep JSON strict: NaN and ±Infinity become null.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: object, limit: int | None = None) -> str:
    """``text`` without escape sequences or control characters (newlines and tabs kept)."""
    out = _CONTROL.sub("", _ESCAPES.sub("", str(text)))
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"


def for_markup(text: object, limit: int | None = None) -> str:
    """``plain(text)`` escaped for a rich markup string."""
    from rich.markup import escape

    return escape(plain(text, limit))


def rich_text(text: object, limit: int | None = None, style: str = "") -> Any:
    """A rich Text of ``plain(text)``: shown as is, never read as markup."""
    from rich.text import Text

    return Text(plain(text, limit), style=style)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (in dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """JSON that every parser accepts: no NaN/Infinity (they become null)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
