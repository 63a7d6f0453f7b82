"""Two small self-contained SVG charts of a session (no plotting dependency), shared by the
dashboard and ``aar export``: held-out vs dev PGR of every scored attempt (points under the
diagonal did better on the feedback than on data the search never saw: overfitting), and
per-seed strips (each seed's dev and held-out PGR of the leading attempts)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

SIZE = 360
PAD = {"left": 52, "right": 16, "top": 16, "bottom": 40}
STRIP_WIDTH, STRIP_ROW, STRIP_LABEL = 640, 22, 190
DEV_COLOR, HELDOUT_COLOR, REJECTED_COLOR = "#1d3557", "#8250df", "#c0392b"


@dataclass(frozen=True)
class ScatterPoint:
    """One scored attempt: its dev and held-out PGR means."""

    attempt_id: str
    label: str
    dev: float
    heldout: float
    rejected: bool = False
    best: bool = False


@dataclass(frozen=True)
class Strip:
    """One attempt's per-seed PGR values."""

    attempt_id: str
    label: str
    dev: list[float] = field(default_factory=list)
    heldout: list[float] = field(default_factory=list)


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min([0.0, 1.0, *values]), max([0.0, 1.0, *values])
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float) -> list[float]:
    raw = (hi - lo) / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _link(inner: str, attempt_id: str, href: Callable[[str], str] | None) -> str:
    return inner if href is None else f'<a href="{escape(href(attempt_id))}">{inner}</a>'


def scatter_svg(points: list[ScatterPoint], href: Callable[[str], str] | None = None,
                title: str = "held-out vs dev PGR") -> str:
    """SVG: one dot per scored attempt at (dev PGR, held-out PGR) with the y = x diagonal;
    rejected attempts hollow red, the best (by the one ranking) ringed. ``href`` links each dot."""
    lo, hi = _span([v for p in points for v in (p.dev, p.heldout)])
    x0, x1, y0, y1 = PAD["left"], SIZE - PAD["right"], SIZE - PAD["bottom"], PAD["top"]

    def sx(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    def sy(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="scatter" width="{SIZE}" height="{SIZE}" '
           f'viewBox="0 0 {SIZE} {SIZE}" font-family="sans-serif" font-size="11" role="img">',
           f"<title>{escape(title)}</title>", f'<rect width="{SIZE}" height="{SIZE}" fill="white"/>']
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{x0}" y1="{sy(t):.1f}" x2="{x1}" y2="{sy(t):.1f}" stroke="#eee"/>'
                   f'<text x="{x0 - 5}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>'
                   f'<text x="{sx(t):.1f}" y="{y0 + 14}" text-anchor="middle">{t:.2f}</text>')
    out.append(f'<line class="diagonal" x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" '
               f'stroke="#888" stroke-dasharray="4 3"/>'
               f'<text x="{sx(hi) - 4:.1f}" y="{sy(hi) + 14:.1f}" text-anchor="end" fill="#666">held-out = dev</text>'
               f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/>'
               f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>'
               f'<text x="{(x0 + x1) / 2}" y="{SIZE - 6}" text-anchor="middle">dev PGR (what the search saw)</text>'
               f'<text x="12" y="{(y0 + y1) / 2}" transform="rotate(-90 12 {(y0 + y1) / 2})" '
               f'text-anchor="middle">held-out PGR</text>')
    for p in points:
        tip = escape(f"{p.label}: dev {p.dev:+.3f}, held-out {p.heldout:+.3f}" + (" (rejected)" if p.rejected else ""))
        fill = f'fill="none" stroke="{REJECTED_COLOR}"' if p.rejected else f'fill="{DEV_COLOR}" fill-opacity=".75"'
        ring = (f'<circle cx="{sx(p.dev):.1f}" cy="{sy(p.heldout):.1f}" r="8" fill="none" stroke="#2a9d8f" '
                'stroke-width="2"/>') if p.best else ""
        dot = (f'<g class="dot" data-attempt="{escape(p.attempt_id)}"><title>{tip}</title>{ring}'
               f'<circle cx="{sx(p.dev):.1f}" cy="{sy(p.heldout):.1f}" r="4.5" {fill}/></g>')
        out.append(_link(dot, p.attempt_id, href))
    out.append("</svg>")
    return "\n".join(out)


def strips_svg(strips: list[Strip], href: Callable[[str], str] | None = None,
               title: str = "PGR of each seed") -> str:
    """SVG: one row per attempt, a dot per seed: dev PGR filled, held-out PGR hollow, on one
    shared axis, so the spread over seeds (what the 95% interval summarises) is visible."""
    lo, hi = _span([v for s in strips for v in (*s.dev, *s.heldout)])
    height = PAD["top"] + STRIP_ROW * max(1, len(strips)) + PAD["bottom"]
    x0, x1 = STRIP_LABEL, STRIP_WIDTH - PAD["right"]

    def sx(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    axis_y = PAD["top"] + STRIP_ROW * max(1, len(strips))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="strips" width="{STRIP_WIDTH}" height="{height}" '
           f'viewBox="0 0 {STRIP_WIDTH} {height}" font-family="sans-serif" font-size="11" role="img">',
           f"<title>{escape(title)}</title>", f'<rect width="{STRIP_WIDTH}" height="{height}" fill="white"/>']
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{sx(t):.1f}" y1="{PAD["top"]}" x2="{sx(t):.1f}" y2="{axis_y}" stroke="#eee"/>'
                   f'<text x="{sx(t):.1f}" y="{axis_y + 14}" text-anchor="middle">{t:.2f}</text>')
    out.append(f'<text x="{(x0 + x1) / 2}" y="{height - 6}" text-anchor="middle">PGR per seed: '
               f'● dev, ○ held-out</text>')
    for n, s in enumerate(strips):
        y = PAD["top"] + STRIP_ROW * n + STRIP_ROW / 2
        label = escape(s.label if len(s.label) <= 30 else s.label[:29] + "…")
        out.append(_link(f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>', s.attempt_id, href))
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#f3f3f3"/>')
        out += [f'<circle class="seed-dev" cx="{sx(v):.1f}" cy="{y - 3:.1f}" r="3.5" fill="{DEV_COLOR}" '
                f'fill-opacity=".8"><title>dev {v:+.3f}</title></circle>' for v in s.dev]
        out += [f'<circle class="seed-heldout" cx="{sx(v):.1f}" cy="{y + 3:.1f}" r="3.5" fill="none" '
                f'stroke="{HELDOUT_COLOR}"><title>held-out {v:+.3f}</title></circle>' for v in s.heldout]
    out.append("</svg>")
    return "\n".join(out)
