"""Progress of a research session: a live terminal panel, or one plain line per event."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sandbox.untrusted import plain, rich_text


def _fmt_pgr(result: dict[str, Any] | None) -> str:
    if not result or not result.get("pgr"):
        return "—"
    ci = result.get("pgr_ci95")
    return f"{result['pgr']['mean']:+.3f}" + (f" ± {ci:.3f}" if ci is not None else "")


def best_text_of(best: tuple[str, float, float]) -> str:
    """The best attempt's PGR mean and the lower 95% bound it is ranked by."""
    return f"{best[1]:+.3f} (lower {best[2]:+.3f})"


def seed_runs_text(budget: dict[str, Any]) -> str:
    """Seed-runs spent (one idea on one seed: what racing spends), and what the budget has left."""
    used, left = budget.get("seed_runs_used") or 0, budget.get("seed_runs_left")
    return f"{used}" + (f" ({left} left)" if left is not None else "")


class Reporter:
    """Plain mode: one line per event, good for logs and CI."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.state: dict[str, Any] = {"step": "starting", "n": 0, "best": None, "last": None,
                                      "tokens": 0, "cost": 0.0}

    def start(self, session_id: str, total: int | None, budget: dict[str, Any]) -> None:
        self.state.update(session=session_id, total=total, budget=budget, started=time.monotonic())
        self.line(f"session {session_id} started")

    def line(self, text: str) -> None:
        self.console.print(f"[aar] {plain(text)}", soft_wrap=True, markup=False)

    def step(self, text: str) -> None:
        self.state["step"] = text
        self.line(text)

    def model_call(self, tokens: int, cost: float) -> None:
        self.state["tokens"] += tokens
        self.state["cost"] += cost

    def attempt_done(self, n: int, attempt_id: str, name: str, result: dict[str, Any] | None,
                     status: str, best: tuple[str, float, float] | None, budget: dict[str, Any]) -> None:
        self.state.update(n=n, best=best, budget=budget, budget_at=time.monotonic(),
                          last=f"{name[:50]}: {status} {_fmt_pgr(result)}")
        best_text = f"best {best_text_of(best)} ({best[0]})" if best else "best —"
        self.line(f"attempt {n} {attempt_id} {status} PGR {_fmt_pgr(result)} | {best_text} | "
                  f"seed-runs {seed_runs_text(budget)} | {name[:60]}")

    def stop(self, reason: str) -> None:
        self.line(f"stopped: {reason}")

    def close(self) -> None:
        return None


class LiveReporter(Reporter):
    """A live panel: attempt n of N, current step, best PGR, last result, tokens, cost, time."""

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()
        # get_renderable: each refresh renders anew, so the elapsed time ticks between events
        self._live = Live(console=self.console, refresh_per_second=4, transient=False,
                          get_renderable=self._render)
        self._live.start()

    def _render(self) -> Panel:
        s = self.state
        table = Table.grid(padding=(0, 2))
        total = s.get("total")
        budget = s.get("budget") or {}
        best = s.get("best")
        rows = [
            ("attempt", f"{s['n']}" + (f" of {total}" if total else "")),  # no total: a time or cost budget
            ("step", rich_text(s["step"], 90)),
            ("best PGR", rich_text(f"{best_text_of(best)} ({best[0]})" if best else "—")),
            ("last", rich_text(s.get("last") or "—")),
            ("seed-runs", seed_runs_text(budget)),
            ("tokens / cost", f"{s['tokens']:,} / ${s['cost']:.2f}"),
            ("elapsed", f"{self._elapsed(budget):.0f}s"
             + (f", {self._time_left(budget):.0f}s left" if budget.get("time_left_s") is not None else "")),
        ]
        for key, value in rows:
            table.add_row(Text(key, style="bold"), value)  # a style, not markup: nothing to print literally
        return Panel(Group(table), title=f"aar research {s.get('session', '')}")

    def _elapsed(self, budget: dict[str, Any]) -> float:
        """The budget's research time when it last arrived, plus the time since (the panel ticks)."""
        since: float = self.state.get("budget_at") or self._started
        return float(budget.get("elapsed_s", 0)) + time.monotonic() - since

    def _time_left(self, budget: dict[str, Any]) -> float:
        return max(0.0, float(budget["time_left_s"]) - (self._elapsed(budget) - float(budget.get("elapsed_s", 0))))

    def line(self, text: str) -> None:
        if getattr(self, "_live", None):
            self._live.update(self._render())
        else:
            super().line(text)

    def attempt_done(self, *args: Any, **kwargs: Any) -> None:
        super().attempt_done(*args, **kwargs)
        self._live.console.print(f"  {self.state['n']}: {plain(self.state['last'])}", highlight=False, markup=False)

    def close(self) -> None:
        self._live.update(self._render())
        self._live.stop()


QUIET = {"on": False}  # set by the CLI's --quiet: no progress lines, errors and results only


def make_reporter(plain: bool | None = None) -> Reporter:
    """Live panel on an interactive terminal, plain lines otherwise (CI, pipes, --plain);
    silent under ``aar --quiet``."""
    if QUIET["on"]:
        return Reporter(Console(stderr=True, quiet=True))
    if plain is None:
        plain = not sys.stderr.isatty() or bool(os.environ.get("CI"))
    return Reporter() if plain else LiveReporter()
