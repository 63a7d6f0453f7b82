"""Findings forum posts made readable: long floats rounded with the project's number format
(experiments/views.py ``num``) and JSON objects in a post (a genome, a config) shown as a
key/value list instead of raw JSON. Raw HTML in a post stays disabled (render.markdown_html)."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from markupsafe import Markup

from agent.ui.render import markdown_html
from experiments.views import num

# A decimal with more digits than anyone reads (p=0.044343478871442125), not part of a word or version.
LONG_FLOAT = re.compile(r"(?<![\w.])(-?\d+\.\d{4,})(?!\w|\.\d)")
SMALL = 1e-3  # below this, 3 decimals say 0.000: show two significant digits instead
_TOKEN = "AARJSONBLOCK{}END"
_DECODER = json.JSONDecoder()


def round_number(value: float) -> str:
    """A float as the dashboard writes numbers: 3 decimals, or 2 significant digits when tiny."""
    if value != 0 and abs(value) < SMALL:
        return f"{value:.1e}"
    return num(value)


def round_floats(text: str) -> str:
    """``text`` with every long decimal rounded (short ones like 0.5 or 1.25 are left as written)."""
    return LONG_FLOAT.sub(lambda m: round_number(float(m.group(1))), text)


def _value_html(value: Any) -> str:
    if isinstance(value, dict):
        return key_values_html(value)
    if isinstance(value, list):
        return escape(", ".join(_plain(v) for v in value))
    return escape(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return round_number(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def key_values_html(data: dict[str, Any]) -> str:
    """A JSON object as a definition list (nested objects nest)."""
    rows = "".join(f"<dt>{escape(str(k))}</dt><dd>{_value_html(v)}</dd>" for k, v in data.items())
    return f'<dl class="kv">{rows}</dl>'


def _pull_objects(text: str) -> tuple[str, list[dict[str, Any]]]:
    """``text`` with each JSON object in it replaced by a token, and the objects in order."""
    found: list[dict[str, Any]] = []
    out: list[str] = []
    i = 0
    while (start := text.find("{", i)) != -1:
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            out.append(text[i:start + 1])
            i = start + 1
            continue
        if isinstance(value, dict) and value:
            out.append(text[i:start] + _TOKEN.format(len(found)))
            found.append(value)
        else:
            out.append(text[i:end])
        i = end
    out.append(text[i:])
    return "".join(out), found


def finding_html(body: str) -> Markup:
    """A post's body as HTML: Markdown, rounded floats, JSON objects as key/value lists."""
    text, objects = _pull_objects(body or "")
    html = str(markdown_html(round_floats(text)))
    for n, data in enumerate(objects):
        token = _TOKEN.format(n)
        block = key_values_html(data)
        html = re.sub(rf"<pre><code[^>]*>\s*{token}\s*</code></pre>", block, html)
        html = html.replace(f"<p>{token}</p>", block)
        inline = ", ".join(f"{escape(str(k))}={escape(_plain(v))}" for k, v in data.items())
        html = html.replace(token, f'<span class="kv-inline">{inline}</span>')
    return Markup(html)
