"""The session page's held-out-vs-dev scatter and per-seed strips (SVG from experiments/scatter.py)."""

from __future__ import annotations

from urllib.parse import quote

from markupsafe import Markup

from agent.ui.lab import READ_ERRORS
from agent.ui.queries import ChartPoint
from experiments import ranking
from experiments.layout import StoreError
from experiments.scatter import ScatterPoint, Strip, scatter_svg, strips_svg
from experiments.store import LabStore

MAX_STRIPS = 12  # the leading attempts get a strip each (each one reads its result from git)


def _href(attempt_id: str) -> str:
    return f"/attempts/{quote(attempt_id)}"


def _label(p: ChartPoint) -> str:
    return f"#{p.index} {p.name}" + ("" if p.researcher == "r0" else f" ({p.researcher})")


def _leaders(points: list[ChartPoint]) -> list[ChartPoint]:
    """Attempts that rank, best first (the one ranking), then rejected scored ones."""
    scored = [p for p in points if p.status == "ok" and p.pgr is not None]
    ranked = ranking.ranked([p for p in scored if not p.rejected], lambda p: ranking.rank_key(p.pgr, p.ci95))
    return ranked + [p for p in scored if p.rejected]


def scatter_html(points: list[ChartPoint]) -> Markup | None:
    """Held-out vs dev PGR of every scored attempt; None when none has both."""
    leaders = _leaders(points)
    best = next((p.attempt_id for p in leaders if not p.rejected), None)
    dots = [ScatterPoint(p.attempt_id, _label(p), p.pgr, p.heldout_pgr, p.rejected, p.attempt_id == best)
            for p in leaders if p.pgr is not None and p.heldout_pgr is not None]
    return Markup(scatter_svg(dots, _href)) if dots else None


def strips_html(store: LabStore, points: list[ChartPoint], limit: int = MAX_STRIPS) -> Markup | None:
    """Per-seed dev and held-out PGR of the leading attempts; None when nothing is scored."""
    strips = []
    for p in _leaders(points)[:limit]:
        try:
            result = store.get_attempt(p.attempt_id).result
        except (StoreError, *READ_ERRORS):
            continue  # a damaged attempt has its own error page; the others still show
        seeds = [s for s in (result.seeds if result else []) if s.status == "ok"]
        strips.append(Strip(p.attempt_id, _label(p), [s.pgr for s in seeds if s.pgr is not None],
                            [s.heldout_pgr for s in seeds if s.heldout_pgr is not None]))
    return Markup(strips_svg(strips, _href)) if strips else None
