"""Reference lines for a session's PGR chart: weak (0) and ceiling (1) by definition, vanilla and
the best built-in baseline from the task cache's baseline summary, else vanilla from the lab."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.ui.queries import vanilla_from_lab
from experiments.index import LabIndex
from experiments.schemas import SessionManifest
from sandbox.baseline_ideas import VANILLA_NAMES
from sandbox.cache.task_cache import find_baseline_summary
from sandbox.paths import cache_root


@dataclass(frozen=True)
class Reference:
    """A horizontal line on the PGR chart."""

    name: str
    pgr: float
    source: str


def baseline_summary(manifest: SessionManifest, root: Path | None = None) -> tuple[list[dict], str]:
    """The scored rows of the built-in baselines' summary for the session's cache and seeds, and
    where they come from (no rows when the summary is missing or unreadable)."""
    path = find_baseline_summary(manifest.cache_key, manifest.seeds, root or cache_root())
    if path is None:
        return [], ""
    try:
        rows = [r for r in json.loads(path.read_text()) if r.get("status") == "ok" and r.get("pgr") is not None]
    except (OSError, ValueError, AttributeError):
        return [], ""
    return rows, f"baseline summary in {path.parent.name}"


def _from_cache(manifest: SessionManifest, root: Path) -> list[Reference]:
    rows, where = baseline_summary(manifest, root)
    out = [Reference("vanilla", float(r["pgr"]), where) for r in rows if r.get("name") in VANILLA_NAMES.values()]
    best = max(rows, key=lambda r: r["pgr"], default=None)
    if best is not None and best.get("name") not in VANILLA_NAMES.values():
        out.append(Reference(f"best baseline ({best['name']})", float(best["pgr"]), where))
    return out


def references(manifest: SessionManifest, index: LabIndex, root: Path | None = None,
               sessions: list[str] | None = None) -> list[Reference]:
    """The chart's reference lines for one session (or a group of sessions on the same task cache
    and seeds, ``manifest`` being one of them)."""
    out = [Reference("weak", 0.0, "definition"), Reference("ceiling", 1.0, "definition")]
    found = _from_cache(manifest, root or cache_root())
    if not any(r.name == "vanilla" for r in found):
        vanilla = vanilla_from_lab(index, sessions or [manifest.session_id])
        if vanilla is not None:
            found.insert(0, Reference("vanilla", vanilla, "paired differences recorded in the lab"))
    return out + found
