"""Server-side rendering helpers: Pygments highlighting, Markdown, diffs and transcripts as HTML."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, JsonLexer, PythonLexer

from experiments.views import code_diff

CSS_CLASS = "hl"
MAX_JSON_CHARS = 60_000
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def pygments_css() -> str:
    """The highlighting style sheet (served as /static/pygments.css)."""
    return HtmlFormatter(style="default").get_style_defs(f".{CSS_CLASS}")


def python_html(code: str) -> Markup:
    """Python source with line numbers, highlighted."""
    formatter = HtmlFormatter(cssclass=CSS_CLASS, linenos="table", lineanchors="L", anchorlinenos=True)
    return Markup(highlight(code or "\n", PythonLexer(), formatter))


def diff_html(old: str, new: str, old_name: str, new_name: str) -> Markup | None:
    """A highlighted unified diff, or None when the two are identical."""
    text = code_diff(old, new, old_name, new_name)
    if not text:
        return None
    return Markup(highlight(text, DiffLexer(), HtmlFormatter(cssclass=CSS_CLASS)))


def json_html(data: Any, limit: int = MAX_JSON_CHARS) -> tuple[Markup, bool]:
    """Pretty, highlighted JSON; cut at ``limit`` characters (the flag says whether it was)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    cut = len(text) > limit
    if cut:
        text = text[:limit] + "\n…"
    return Markup(highlight(text, JsonLexer(), HtmlFormatter(cssclass=CSS_CLASS))), cut


def markdown_html(text: str) -> Markup:
    """Markdown to HTML with raw HTML disabled (so a proposer's text cannot inject markup)."""
    return Markup(_MARKDOWN.render(text or ""))


@dataclass(frozen=True)
class CallView:
    """One model call of an attempt's transcript, ready for a template."""

    number: int
    model: str
    tokens: int
    cost_usd: float
    said: list[tuple[str, str]]
    request: Markup
    response: Markup
    cut: bool


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _blocks(response: dict[str, Any]) -> list[tuple[str, str]]:
    """What the model said: Messages-format content blocks, or an OpenAI-format choice."""
    out: list[tuple[str, str]] = []
    for block in response.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = str(block.get("type", "?"))
        if kind == "text":
            out.append(("text", str(block.get("text", ""))))
        elif kind == "thinking":
            out.append(("thinking", str(block.get("thinking", ""))))
        elif kind == "tool_use":
            out.append((f"tool: {block.get('name', '?')}", json.dumps(block.get("input"), indent=2, default=str)))
    for choice in response.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if message.get("content"):
            out.append(("text", str(message["content"])))
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            out.append((f"tool: {fn.get('name', '?')}", str(fn.get("arguments", ""))))
    return out


def transcript_views(calls: list[dict[str, Any]]) -> list[CallView]:
    """The step's model calls: who said what, tokens, cost, and the raw request/response JSON."""
    views = []
    for number, call in enumerate(calls, start=1):
        request, response, usage = (_dict(call.get(key)) for key in ("request", "response", "usage"))
        req_html, cut_req = json_html(request)
        resp_html, cut_resp = json_html(response)
        tokens = sum(int(v) for k, v in usage.items() if k.endswith("_tokens") and isinstance(v, int))
        views.append(CallView(number, str(request.get("model") or response.get("model") or "—"), tokens,
                              # the cost sits in the call's TokenUsage (older labs kept it beside it)
                              float(usage.get("cost_usd") or call.get("cost_usd") or 0.0), _blocks(response),
                              req_html, resp_html,
                              cut_req or cut_resp))
    return views


def short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

