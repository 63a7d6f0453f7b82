"""The PGR-over-attempts chart of a session, built with Plotly's figure objects and drawn in the
browser by the plotly.js file that ships inside the ``plotly`` package (served locally)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

import plotly.graph_objects as go

from agent.ui.queries import ChartPoint
from agent.ui.references import Reference

COLORS = ("#1d3557", "#e76f51", "#2a9d8f", "#8338ec", "#f4a261", "#3a86ff", "#6d597a", "#588157")
BEST_COLOR = "#2a9d8f"
FAILED_COLOR = "#c0392b"


def best_so_far(points: list[ChartPoint]) -> tuple[list[int], list[float]]:
    """The running best dev PGR of ok attempts, by step number (ties across researchers merged)."""
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    for p in sorted(points, key=lambda p: (p.index, p.created_at)):
        if p.status == "ok" and p.pgr is not None and (best is None or p.pgr > best):
            best = p.pgr
        if best is None:
            continue
        if xs and xs[-1] == p.index:
            ys[-1] = best
        else:
            xs.append(p.index)
            ys.append(best)
    return xs, ys


def _hover(p: ChartPoint) -> str:
    score = "" if p.pgr is None else f"<br>PGR {p.pgr:+.3f}" + ("" if p.ci95 is None else f" ± {p.ci95:.3f}")
    return f"#{p.index} {escape(p.name[:60])} ({escape(p.researcher)})<br>{escape(p.status)}{score}"


def _floor(points: list[ChartPoint], refs: list[Reference]) -> float:
    values = [r.pgr for r in refs] + [p.pgr - (p.ci95 or 0.0) for p in points if p.pgr is not None]
    return min(values, default=0.0) - 0.08


def figure(points: list[ChartPoint], refs: list[Reference], attempt_url: str = "/attempts/") -> dict[str, Any]:
    """A Plotly figure as plain JSON data: scored attempts with 95% CI bars (one trace per
    researcher), failed attempts as crosses along the bottom, the best-so-far step line, and
    horizontal reference lines (weak = 0, ceiling = 1, vanilla, best built-in baseline)."""
    fig = go.Figure()
    researchers = sorted({p.researcher for p in points})
    for n, who in enumerate(researchers):
        mine = [p for p in points if p.researcher == who and p.status == "ok" and p.pgr is not None]
        fig.add_trace(go.Scatter(
            x=[p.index for p in mine], y=[p.pgr for p in mine], mode="markers",
            name="attempts" if len(researchers) == 1 else f"attempts {who}",
            marker={"size": 8, "color": COLORS[n % len(COLORS)]},
            error_y={"type": "data", "array": [p.ci95 or 0.0 for p in mine], "thickness": 1, "width": 3},
            customdata=[attempt_url + p.attempt_id for p in mine], hovertext=[_hover(p) for p in mine],
            hoverinfo="text"))
    failed = [p for p in points if p.status != "ok" or p.pgr is None]
    if failed:
        floor = _floor(points, refs) + 0.03
        fig.add_trace(go.Scatter(
            x=[p.index for p in failed], y=[floor] * len(failed), mode="markers", name="failed",
            marker={"symbol": "x", "size": 9, "color": FAILED_COLOR},
            customdata=[attempt_url + p.attempt_id for p in failed], hovertext=[_hover(p) for p in failed],
            hoverinfo="text"))
    xs, ys = best_so_far(points)
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="best so far", hoverinfo="skip",
                                 line={"shape": "hv", "color": BEST_COLOR, "width": 2}))
    measured = 0
    for ref in refs:
        fixed = ref.source == "definition"
        where = "top left" if fixed else ("top right", "bottom right")[measured % 2]
        measured += not fixed
        fig.add_hline(y=ref.pgr, line={"dash": "dot" if fixed else "dash", "color": "#888", "width": 1},
                      annotation={"text": f"{ref.name} {ref.pgr:+.2f}", "font": {"size": 11, "color": "#555"}},
                      annotation_position=where)
    fig.update_layout(
        template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 30, "b": 45},
        xaxis={"title": {"text": "attempt (step)"}, "rangemode": "tozero"},
        yaxis={"title": {"text": "dev PGR"}, "zeroline": False},
        legend={"orientation": "h", "y": 1.12, "x": 0}, hovermode="closest")
    return json.loads(fig.to_json())
