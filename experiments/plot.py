"""A small self-contained SVG chart of PGR over a session's attempts (no plotting dependency)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from experiments.ranking import rank_key

WIDTH, HEIGHT = 760, 340
Scale = Callable[[float], float]
MARGIN = {"left": 56, "right": 130, "top": 24, "bottom": 44}


@dataclass(frozen=True)
class Point:
    """One attempt on the chart."""

    step: int
    pgr: float | None
    ci95: float | None
    status: str
    label: str
    rejected: bool = False  # its latest review rejects it: drawn, never the best (experiments/ranking.py)


def _nice_step(span: float) -> float:
    raw = span / 6
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _y_range(points: list[Point], lines: list[float]) -> tuple[float, float]:
    values = [0.0, 1.0, *lines]
    for p in points:
        if p.pgr is not None:
            values += [p.pgr - (p.ci95 or 0), p.pgr + (p.ci95 or 0)]
    lo, hi = min(values), max(values)
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def pgr_svg(points: list[Point], title: str = "PGR over attempts",
            references: list[tuple[str, float]] | None = None) -> str:
    """SVG markup: dev PGR ± 95% CI per attempt, the running best, weak (0) and ceiling (1) lines,
    and ``references`` (name, PGR) such as vanilla and the best built-in baseline."""
    x0, x1 = MARGIN["left"], WIDTH - MARGIN["right"]
    y0, y1 = HEIGHT - MARGIN["bottom"], MARGIN["top"]
    steps = [p.step for p in points] or [1]
    s_lo, s_hi = min(steps), max(max(steps), min(steps) + 1)
    refs = [("weak", 0.0), ("ceiling", 1.0), *(references or [])]
    v_lo, v_hi = _y_range(points, [v for _, v in refs])

    def sx(step: float) -> float:
        return x0 + (step - s_lo) / (s_hi - s_lo) * (x1 - x0)

    def sy(value: float) -> float:
        return y0 - (value - v_lo) / (v_hi - v_lo) * (y0 - y1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(title)}</title>", f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    tick = _nice_step(v_hi - v_lo)
    value = math.ceil(v_lo / tick) * tick
    while value <= v_hi:
        y = sy(value)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2f}</text>')
        value += tick
    out += _reference_lines(refs, sy, x0, x1)
    x_tick = max(1, math.ceil((s_hi - s_lo) / 10))
    for step in range(s_lo, s_hi + 1, x_tick):
        out.append(f'<text x="{sx(step):.1f}" y="{y0 + 16}" text-anchor="middle">{step}</text>')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/>'
               f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>'
               f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 8}" text-anchor="middle">attempt</text>'
               f'<text x="14" y="{(y0 + y1) / 2}" transform="rotate(-90 14 {(y0 + y1) / 2})" '
               f'text-anchor="middle">dev PGR</text>')
    out += _best_line(points, sx, sy) + _marks(points, sx, sy, y0)
    out.append("</svg>")
    return "\n".join(out)


def _reference_lines(refs: list[tuple[str, float]], sy: Scale, x0: float, x1: float) -> list[str]:
    out: list[str] = []
    used: list[float] = []
    for name, value in refs:
        y = sy(value)
        label_y = y + 4
        while any(abs(label_y - u) < 11 for u in used):  # close lines: their labels go apart
            label_y += 11
        used.append(label_y)
        dash = "4 3" if name in ("weak", "ceiling") else "7 3"
        text = name if name in ("weak", "ceiling") else f"{name} {value:+.2f}"
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#888" stroke-dasharray="{dash}"/>'
                   f'<text x="{x1 + 4}" y="{label_y:.1f}" fill="#666">{escape(text)}</text>')
    return out


def _best_line(points: list[Point], sx: Scale, sy: Scale) -> list[str]:
    best, top, coords = None, None, []
    for p in sorted(points, key=lambda p: p.step):
        ranks = p.status == "ok" and not p.rejected and p.pgr is not None
        key = rank_key(p.pgr, p.ci95) if ranks else None  # the one ranking, drawn at its mean
        if key is not None and p.pgr is not None and (top is None or key > top):
            top = key
            if best is not None:
                coords.append(f"{sx(p.step):.1f},{sy(best):.1f}")
            best = key[1]  # the mean: what the line is drawn at
            coords.append(f"{sx(p.step):.1f},{sy(best):.1f}")
    if not coords:
        return []
    last = max(p.step for p in points)
    assert best is not None  # coords is non-empty only once a best was seen
    coords.append(f"{sx(last):.1f},{sy(best):.1f}")
    return [f'<polyline points="{" ".join(coords)}" fill="none" stroke="#2a9d8f" stroke-width="2"/>',
            f'<text x="{sx(last) + 4:.1f}" y="{sy(best) - 6:.1f}" fill="#2a9d8f">best {best:+.3f}</text>']


def _marks(points: list[Point], sx: Scale, sy: Scale, floor: float) -> list[str]:
    out = []
    for p in points:
        x = sx(p.step)
        tip = escape(f"#{p.step} {p.label}: {p.status}" + ("" if p.pgr is None else f", PGR {p.pgr:+.3f}"))
        if p.pgr is None or p.status != "ok":
            out.append(f'<g><title>{tip}</title><text x="{x:.1f}" y="{floor - 4}" text-anchor="middle" '
                       f'fill="#c0392b">×</text></g>')
            continue
        if p.ci95:
            out.append(f'<line x1="{x:.1f}" y1="{sy(p.pgr - p.ci95):.1f}" x2="{x:.1f}" '
                       f'y2="{sy(p.pgr + p.ci95):.1f}" stroke="#457b9d"/>')
        out.append(f'<g><title>{tip}</title><circle cx="{x:.1f}" cy="{sy(p.pgr):.1f}" r="3.5" '
                   f'fill="#1d3557"/></g>')
    return out
