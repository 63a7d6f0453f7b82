"""The PGR-over-attempts chart of a session: a Plotly figure in its JSON form (built here as plain
data, which is much faster than figure objects for thousands of points), drawn in the browser by
the plotly.js file that ships inside the ``plotly`` package (served locally, no CDN)."""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

import plotly

from agent.ui.queries import ChartPoint
from agent.ui.references import Reference
from experiments.ranking import RankKey, rank_key

COLORS = ("#1d3557", "#e76f51", "#2a9d8f", "#8338ec", "#f4a261", "#3a86ff", "#6d597a", "#588157")
BEST_COLOR = "#2a9d8f"
FAILED_COLOR = "#c0392b"
TEMPLATE_FILE = Path(plotly.__file__).parent / "package_data" / "templates" / "plotly_white.json"


@cache
def plotly_template() -> dict[str, Any]:
    """Plotly's own "plotly_white" theme, as the JSON the plotly package ships."""
    return json.loads(TEMPLATE_FILE.read_text())


def best_so_far(points: list[ChartPoint]) -> tuple[list[int], list[float]]:
    """The running best of ok attempts by the one ranking (experiments/ranking.py: rejected
    attempts never lead), drawn at its dev PGR mean, by step number (ties across researchers merged)."""
    xs: list[int] = []
    ys: list[float] = []
    best: float | None = None
    top: RankKey | None = None
    for p in sorted(points, key=lambda p: (p.index, p.created_at)):
        key = rank_key(p.pgr, p.ci95) if p.status == "ok" and not p.rejected else None
        if key is not None and (top is None or key > top):
            top, best = key, key[1]
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


def _scatter(points: list[ChartPoint], name: str, marker: dict[str, Any], ys: list[float] | None = None,
             ci: bool = False, attempt_url: str = "/attempts/", shift: float = 0.0) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "type": "scatter", "mode": "markers", "name": name, "marker": marker, "hoverinfo": "text",
        "x": [p.index + shift for p in points], "y": ys if ys is not None else [p.pgr for p in points],
        "customdata": [attempt_url + p.attempt_id for p in points], "hovertext": [_hover(p) for p in points]}
    if ci:
        trace["error_y"] = {"type": "data", "array": [p.ci95 or 0.0 for p in points], "thickness": 1, "width": 3}
    return trace


def _reference_line(ref: Reference, position: str) -> tuple[dict[str, Any], dict[str, Any]]:
    fixed = ref.source == "definition"
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": ref.pgr, "y1": ref.pgr,
             "line": {"dash": "dot" if fixed else "dash", "color": "#888", "width": 1}}
    left = position.endswith("left")
    label = {"xref": "paper", "x": 0 if left else 1, "xanchor": "left" if left else "right", "yref": "y",
             "y": ref.pgr, "yanchor": "bottom" if position.startswith("top") else "top", "showarrow": False,
             "text": f"{escape(ref.name)} {ref.pgr:+.2f}", "font": {"size": 11, "color": "#555"}}
    return shape, label


def figure(points: list[ChartPoint], refs: list[Reference], attempt_url: str = "/attempts/") -> dict[str, Any]:
    """A Plotly figure (its JSON form): scored attempts with 95% CI bars (one trace per
    researcher), failed attempts as crosses along the bottom, the best-so-far step line, and
    horizontal reference lines (weak = 0, ceiling = 1, vanilla, best built-in baseline)."""
    data = []
    researchers = sorted({p.researcher for p in points})
    for n, who in enumerate(researchers):
        mine = [p for p in points if p.researcher == who and p.status == "ok" and p.pgr is not None]
        shift = (n - (len(researchers) - 1) / 2) * min(0.12, 0.6 / len(researchers))  # side by side per step
        data.append(_scatter(mine, "attempts" if len(researchers) == 1 else f"attempts {who}",
                             {"size": 8, "color": COLORS[n % len(COLORS)]}, ci=True, attempt_url=attempt_url,
                             shift=shift))
    failed = [p for p in points if p.status != "ok" or p.pgr is None]
    if failed:
        floor = _floor(points, refs) + 0.03
        data.append(_scatter(failed, "failed", {"symbol": "x", "size": 9, "color": FAILED_COLOR},
                             [floor] * len(failed), attempt_url=attempt_url))
    xs, ys = best_so_far(points)
    if xs:
        data.append({"type": "scatter", "mode": "lines", "name": "best so far", "x": xs, "y": ys,
                     "hoverinfo": "skip", "line": {"shape": "hv", "color": BEST_COLOR, "width": 2}})
    shapes, labels = [], []
    lowest = min((r.pgr for r in refs if r.source != "definition"), default=None)
    measured = sum(r.source != "definition" for r in refs)
    for ref in refs:
        if ref.source == "definition":
            where = "top left"
        else:  # labels of close lines go apart: the lowest below its line, the others above
            where = "bottom right" if measured > 1 and ref.pgr == lowest else "top right"
        shape, label = _reference_line(ref, where)
        shapes.append(shape)
        labels.append(label)
    return {"data": data, "layout": {
        "template": plotly_template(), "height": 380, "margin": {"l": 60, "r": 20, "t": 30, "b": 45},
        "xaxis": {"title": {"text": "attempt (step)"}, "rangemode": "tozero",
                  **({"dtick": 1} if max((p.index for p in points), default=0) <= 20 else {})},
        "yaxis": {"title": {"text": "dev PGR"}, "zeroline": False},
        "legend": {"orientation": "h", "y": 1.12, "x": 0}, "hovermode": "closest",
        "shapes": shapes, "annotations": labels}}
