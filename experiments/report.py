"""``aar export``: a session as a Markdown or HTML report with a PGR-over-attempts chart."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

import numpy as np

from experiments import ranking
from experiments.layout import ATTEMPTS_DIR, StoreError
from experiments.plot import Point, pgr_svg
from experiments.scatter import ScatterPoint, scatter_svg
from experiments.schemas import Attempt, AttemptSummary, SessionManifest, SessionSummary
from experiments.store import LabStore
from sandbox.baseline_ideas import VANILLA_NAMES
from sandbox.cache.task_cache import find_baseline_summary
from sandbox.scoring.evaluator import paired_difference
from sandbox.scoring.t_stats import t_half_width

FORMATS = ("md", "html")
_CSS = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"
        "pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:12px}")


@dataclass
class SessionData:
    """Everything a report shows about one session."""

    manifest: SessionManifest
    rows: list[AttemptSummary]
    best: Attempt | None
    totals: SessionSummary  # cost and tokens of every call, those after the last attempt too
    seed_runs: int = 0  # seeds scored over all attempts (racing spends more on promising ideas)
    skipped: dict[str, str] = field(default_factory=dict)  # attempt folder -> why it could not be read

    @property
    def cost(self) -> float:
        return self.totals.cost_usd

    def chart(self) -> str:
        """PGR over attempts with the running best (rejected attempts never lead) and the
        vanilla and best built-in baseline lines the dashboard draws."""
        points = [Point(r.index, r.pgr, r.pgr_ci95, r.status, r.name, r.rejected) for r in self.rows]
        return pgr_svg(points, f"PGR over attempts, session {self.manifest.session_id}",
                       baseline_lines(self.manifest))

    def scatter(self) -> str:
        """Held-out vs dev PGR of every scored attempt (below the diagonal: overfit the feedback)."""
        best = self.best.attempt_id if self.best else None
        dots = [ScatterPoint(r.attempt_id, f"#{r.index} {r.name}", r.pgr, r.heldout_pgr, r.rejected,
                             r.attempt_id == best)
                for r in self.rows if r.status == "ok" and r.pgr is not None and r.heldout_pgr is not None]
        return scatter_svg(dots, title=f"held-out vs dev PGR, session {self.manifest.session_id}")


def baseline_summary_rows(manifest: SessionManifest) -> list[dict]:
    """The built-in baselines' scored rows on the session's seeds (none if the summary is gone)."""
    path = find_baseline_summary(manifest.cache_key, manifest.seeds)
    if path is None:
        return []
    try:
        return [r for r in json.loads(path.read_text()) if r.get("pgr") is not None and r.get("status", "ok") == "ok"]
    except (OSError, ValueError, AttributeError):
        return []


def baseline_lines(manifest: SessionManifest) -> list[tuple[str, float]]:
    """The chart's reference lines: vanilla and the best built-in baseline (when not vanilla)."""
    rows = baseline_summary_rows(manifest)
    out = [("vanilla", float(r["pgr"])) for r in rows if r.get("name") in VANILLA_NAMES.values()][:1]
    top = max(rows, key=lambda r: r["pgr"], default=None)
    if top is not None and top.get("name") not in VANILLA_NAMES.values():
        out.append(("best baseline", float(top["pgr"])))
    return out


def best_baseline(manifest: SessionManifest) -> dict | None:
    """The built-in baseline with the best dev PGR on the session's seeds, from the task cache's
    private store (written when the session started), or None if that file is gone."""
    path = find_baseline_summary(manifest.cache_key, manifest.seeds)
    if path is None:
        return None
    rows = [r for r in json.loads(path.read_text()) if r.get("pgr") is not None]
    return max(rows, key=lambda r: r["pgr"], default=None)


def gain_verdict(gain: float, half_width: float | None, paired: bool) -> str:
    """Words for a gain that respect its 95% interval: it "holds" only when the interval excludes 0."""
    if half_width is None:
        return "untested (one seed: no interval)"
    how = "paired over seeds" if paired else "the attempt's own interval; the baseline taken as fixed"
    lo, hi = gain - half_width, gain + half_width
    if lo > 0:
        return f"holds (95% interval [{lo:+.3f}, {hi:+.3f}] excludes 0; {how})"
    if hi < 0:
        return f"reversed: the baseline is better (95% interval [{lo:+.3f}, {hi:+.3f}]; {how})"
    return f"not shown: the 95% interval [{lo:+.3f}, {hi:+.3f}] includes 0 ({how})"


def _gain(attempt_values: list[float], base_values: list[float] | None,
          base_mean: float) -> tuple[float, float | None, bool]:
    """(mean gain, 95% half-width, paired?) of an attempt over a baseline on the same seeds."""
    if base_values and len(base_values) == len(attempt_values):
        diff = paired_difference(dict(enumerate(attempt_values)), dict(enumerate(base_values)))
        if diff is not None:
            return diff.mean, diff.ci95, True
    return float(np.mean(attempt_values)) - base_mean, t_half_width(attempt_values), False


def holdout_verdict(data: SessionData) -> str:
    """One paragraph: best attempt vs best built-in baseline on each part of the test split, each
    gain judged by its 95% interval (paired over seeds when the baseline's per-seed values are
    kept) and labelled by the data it comes from: only the parts the search never chose on (dev's
    confirmation part, held-out) can say a gain holds; the dev selection part's verdict is dev-only."""
    best = next((r for r in data.rows if data.best and r.attempt_id == data.best.attempt_id), None)
    base = best_baseline(data.manifest)
    if best is None or base is None:
        return "Not available: no scored attempt, or the task cache's baseline summary is missing."
    ho = base.get("heldout_pgr")
    result = data.best.result if data.best else None
    confirm = result.confirm_pgr if result else None
    text = (f"Best attempt #{best.index}: dev PGR {_num(best.pgr, True)} (selection part), confirmation part "
            f"{_num(confirm.mean if confirm else None, True)}, held-out PGR {_num(best.heldout_pgr, True)}. "
            f"Best built-in baseline ({base['name']}): dev PGR {_num(base['pgr'], True)}, confirmation part "
            f"{_num(base.get('confirm_pgr'), True)}, held-out PGR {_num(ho, True)}.")
    if result is None or result.pgr is None:
        return text
    verdicts = [f"dev selection part {_part_verdict(result.pgr.values, base, 'pgr')} — dev-only: the search "
                "chose on these rows, so this says nothing about data it never saw"]
    if confirm is not None and base.get("confirm_pgr") is not None:
        verdicts.append(f"dev confirmation part (rows whose scores no proposer saw) "
                        f"{_part_verdict(confirm.values, base, 'confirm_pgr')}")
    if result.heldout_pgr is not None and ho is not None:
        verdicts.append(f"held-out {_part_verdict(result.heldout_pgr.values, base, 'heldout_pgr')}")
    return (f"{text} Gain over the baseline, by the data it comes from: {'; '.join(verdicts)}. A gain holds "
            "only where its interval excludes 0 on data the search did not choose on (the confirmation part, "
            "held-out).")


def _part_verdict(values: list[float], base: dict, key: str) -> str:
    gain = _gain(values, base.get(key + "_values"), base[key])
    return f"{gain[0]:+.3f}: {gain_verdict(*gain)}"


def load(store: LabStore, session_id: str) -> SessionData:
    sid = store.resolve_session(session_id)
    attempts, skipped = store.readable_attempts(sid)  # an unreadable attempt is named, not fatal
    readable = {a.attempt_id: a for a in attempts}
    rows = [r for r in store.index.ideas(session=sid, sort="index") if r.attempt_id in readable]
    best = ranking.best((r for r in rows if r.status == "ok" and not r.rejected),
                        lambda r: ranking.rank_key(r.pgr, r.pgr_ci95))  # as every leaderboard ranks
    totals = next(s for s in store.sessions() if s.session_id == sid)
    seed_runs = sum(len(a.result.seeds) for a in attempts if a.result is not None)
    return SessionData(store.manifest(sid), rows, readable[best.attempt_id] if best else None, totals,
                       seed_runs, skipped)


def _skipped_lines(data: SessionData) -> list[str]:
    return [f"{ATTEMPTS_DIR}/{folder}: {why}" for folder, why in sorted(data.skipped.items())]


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _facts(data: SessionData) -> list[tuple[str, str]]:
    m = data.manifest
    ok = sum(r.status == "ok" for r in data.rows)
    return [
        ("task", f"{m.task} (cache {m.cache_key}{', sizes ' + m.run.split_sizes if m.run.split_sizes else ''})"),
        ("proposer", m.proposer + (f" / {m.model}" if m.model else "")), ("status", m.status),
        ("started", m.created_at), ("seeds", ", ".join(map(str, m.seeds))),
        ("direction", m.direction or "—"), ("parent session", m.parent_session or "—"),
        ("attempts", f"{len(data.rows)} ({ok} ok), {data.seed_runs} seed-runs"),
        ("time", f"{m.elapsed_s:.0f}s of research (what the time budget counts); setup {m.setup_s:.0f}s and "
                 f"confirmation and transfer checks {m.checks_s:.0f}s not charged"),
        ("model cost", f"${data.cost:.4f}, {data.totals.tokens:,} tokens"),
        ("budgets", ", ".join(f"{k}={v}" for k, v in m.run.budgets.model_dump(exclude_none=True).items()) or "—"),
        ("prompt versions", ", ".join(f"{k}@{v[:8]}" for k, v in m.prompt_versions.items()) or "—"),
        ("packages", ", ".join(f"{k} {v}" for k, v in m.package_versions.items()) or "—"),
    ]


def _table_rows(data: SessionData) -> list[list[str]]:
    out = []
    for r in data.rows:
        pgr = "—" if r.pgr is None else _num(r.pgr, True) + ("" if r.pgr_ci95 is None else f" ± {r.pgr_ci95:.3f}")
        vs = "—" if r.vs_vanilla is None else _num(r.vs_vanilla, True) + (
            "" if r.vs_vanilla_p is None else f" (p={r.vs_vanilla_p:.2f})")
        out.append([str(r.index), r.name, r.status, pgr, vs, _num(r.dev_acc), _num(r.heldout_acc),
                    f"${r.cost_usd:.4f}", r.review or "", r.attempt_id])
    return out


HEADERS = ["#", "idea", "status", "dev PGR ± 95% CI", "Δ vs vanilla", "dev acc", "held-out acc", "cost",
           "review", "attempt"]


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def to_markdown(data: SessionData, chart_href: str | None = None, scatter_href: str | None = None) -> str:
    """Markdown; the charts are linked when ``chart_href``/``scatter_href`` are given, else inlined as SVG."""
    lines = [f"# Session {data.manifest.session_id}", ""]
    lines += [f"- **{k}**: {_md_cell(v)}" for k, v in _facts(data)]
    lines += ["", "## PGR over attempts", ""]
    lines += [f"![PGR over attempts]({chart_href})" if chart_href else data.chart(), ""]
    lines += ["## Held-out vs dev PGR", "", "Points below the diagonal did better on the feedback (dev) than on "
              "the held-out rows no proposer saw: the picture of overfitting.", ""]
    lines += [f"![held-out vs dev PGR]({scatter_href})" if scatter_href else data.scatter(), ""]
    lines += ["## Attempts", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in _table_rows(data)]
    if data.skipped:
        lines += ["", f"Left out, unreadable in the lab (`aar check` says more): {len(data.skipped)} attempt(s)", ""]
        lines += [f"- {_md_cell(line)}" for line in _skipped_lines(data)]
    lines += ["", "## Does the gain hold on the held-out split?", "", holdout_verdict(data)]
    if data.best:
        b = data.best
        lines += ["", f"## Best attempt: #{b.index} {b.name} ({b.attempt_id})", "", b.rationale.strip(), "",
                  "```python", b.code.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def to_html(data: SessionData) -> str:
    title = f"Session {data.manifest.session_id}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><table>"]
    parts += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _facts(data)]
    parts += ["</table><h2>PGR over attempts</h2>", data.chart(), "<h2>Held-out vs dev PGR</h2>",
              "<p>Points below the diagonal did better on the feedback (dev) than on the held-out rows no "
              "proposer saw: the picture of overfitting.</p>", data.scatter(), "<h2>Attempts</h2><table><tr>"]
    parts += [f"<th>{escape(h)}</th>" for h in HEADERS] + ["</tr>"]
    for row in _table_rows(data):
        parts.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    if data.skipped:
        parts.append(f"<p>Left out, unreadable in the lab (<code>aar check</code> says more): "
                     f"{len(data.skipped)} attempt(s)</p><ul>")
        parts += [f"<li>{escape(line)}</li>" for line in _skipped_lines(data)] + ["</ul>"]
    parts += ["<h2>Does the gain hold on the held-out split?</h2>", f"<p>{escape(holdout_verdict(data))}</p>"]
    if data.best:
        b = data.best
        parts += [f"<h2>Best attempt: #{b.index} {escape(b.name)} ({b.attempt_id})</h2>",
                  f"<p>{escape(b.rationale.strip())}</p>", f"<pre><code>{escape(b.code)}</code></pre>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(store: LabStore, session_id: str, fmt: str, chart_href: str | None = None,
           on_skipped: Callable[[str], None] | None = None) -> tuple[str, str]:
    """(report text, chart SVG) of a session; ``on_skipped`` hears of each attempt left out
    because it cannot be read."""
    text, chart, _ = render_all(store, session_id, fmt, chart_href, on_skipped=on_skipped)
    return text, chart


def render_all(store: LabStore, session_id: str, fmt: str, chart_href: str | None = None,
               scatter_href: str | None = None,
               on_skipped: Callable[[str], None] | None = None) -> tuple[str, str, str]:
    """(report text, PGR chart SVG, held-out vs dev scatter SVG) of a session; ``on_skipped``
    hears of each attempt left out because it cannot be read."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown format {fmt!r}: use md or html")
    data = load(store, session_id)
    if on_skipped is not None:
        for line in _skipped_lines(data):
            on_skipped(line)
    text = to_html(data) if fmt == "html" else to_markdown(data, chart_href, scatter_href)
    return text, data.chart(), data.scatter()
