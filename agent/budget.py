"""Session budgets: attempts, cost, wall-clock time, target PGR. Checked before every step."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from agent.proposers.base import BudgetStop, Ending
from experiments.schemas import Budgets
from sandbox.errors import HarnessError


class BudgetExhaustedForAnalysis(HarnessError):
    """No analysis time is left: the model hears it and may still run experiments."""


def parse_duration(text: str | None) -> float | None:
    """'90s', '15m', '2h', '1h30m' or plain seconds."""
    if text is None:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"duration {text!r}: use forms like 90s, 15m, 2h or 1h30m")
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)


class BudgetTracker:
    """Counts what a session has spent, including what it spent before a resume.

    The clock runs only while the research runs: it starts with the proposer's first step
    (``start_clock``), not with the session's setup (task cache, teachers, ceilings, baselines:
    minutes on a new task, which would otherwise eat a short time budget before the first
    attempt), and it stops for confirmation and transfer checks (``off_the_clock``). Both are counted apart.
    """

    def __init__(self, budgets: Budgets, attempts: int = 0, cost_usd: float = 0.0,
                 elapsed_s: float = 0.0, seed_runs: int = 0) -> None:
        self.budgets = budgets
        self.attempts = attempts
        self.seed_runs = seed_runs
        self.cost_usd = cost_usd
        self._elapsed_before = elapsed_s
        self._since: float | None = None  # when the clock last started; None while stopped
        self.off_clock_s = 0.0  # confirmation and transfer checks of this run (not charged)
        self.analysis_s = 0.0  # sandbox seconds of analysis runs, earlier runs included (from the lab)
        self.analysis_runs = 0
        self.best_lower: float | None = None  # the best attempt's lower 95% bound (experiments/ranking.py)
        self.stop_reason: str | None = None
        self.stop_ending: Ending = "budget"

    def start_clock(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def _stop_clock(self) -> None:
        if self._since is not None:
            self._elapsed_before += time.monotonic() - self._since
            self._since = None

    @contextmanager
    def off_the_clock(self) -> Iterator[None]:
        """Work the time budget does not count (it is added to ``off_clock_s`` instead)."""
        running, started = self._since is not None, time.monotonic()
        self._stop_clock()
        try:
            yield
        finally:
            self.off_clock_s += time.monotonic() - started
            if running:
                self.start_clock()

    def elapsed(self) -> float:
        return self._elapsed_before + (time.monotonic() - self._since if self._since is not None else 0.0)

    def seed_runs_left(self) -> int | None:
        cap = self.budgets.max_seed_runs
        return None if cap is None else max(0, cap - self.seed_runs)

    def analysis_left(self) -> float | None:
        cap = self.budgets.max_analysis_s
        return None if cap is None else max(0.0, cap - self.analysis_s)

    def check_analysis(self) -> None:
        """Refuse an analysis run once the analysis time is spent (the session goes on)."""
        left = self.analysis_left()
        if left is not None and left <= 0:
            raise BudgetExhaustedForAnalysis(
                f"the analysis budget is spent ({self.analysis_s:.0f}s of {self.budgets.max_analysis_s:.0f}s): "
                "run_experiment or finish instead (resume with a larger --max-analysis-time for more)")

    def request_stop(self, reason: str, ending: Ending = "budget") -> None:
        """Stop before the next step (the first request wins)."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_ending = reason, ending

    def check(self) -> None:
        """Raise BudgetStop if anything is spent (or a stop was requested)."""
        b = self.budgets
        if self.stop_reason:
            raise BudgetStop(self.stop_reason, self.stop_ending)
        if b.max_attempts is not None and self.attempts >= b.max_attempts:
            raise BudgetStop(f"attempt budget reached ({self.attempts}/{b.max_attempts})")
        if b.max_seed_runs is not None and self.seed_runs >= b.max_seed_runs:
            raise BudgetStop(f"seed-run budget reached ({self.seed_runs}/{b.max_seed_runs})")
        if b.max_cost_usd is not None and self.cost_usd >= b.max_cost_usd:
            raise BudgetStop(f"cost budget reached (${self.cost_usd:.2f}/${b.max_cost_usd:.2f})")
        if b.max_time_s is not None and self.elapsed() >= b.max_time_s:
            raise BudgetStop(f"time budget reached ({self.elapsed():.0f}s/{b.max_time_s:.0f}s)")
        # The best attempt's lower bound, not its mean: one lucky seed does not end the session.
        if b.target_pgr is not None and self.best_lower is not None and self.best_lower >= b.target_pgr:
            raise BudgetStop(f"target PGR reached (lower 95% bound {self.best_lower:.3f} ≥ {b.target_pgr})")

    def status(self) -> dict[str, float | int | None]:
        b = self.budgets
        left = lambda cap, used: None if cap is None else max(0, cap - used)  # noqa: E731
        return {
            "attempts_used": self.attempts, "attempts_left": left(b.max_attempts, self.attempts),
            "seed_runs_used": self.seed_runs, "seed_runs_left": self.seed_runs_left(),
            "cost_usd": round(self.cost_usd, 4), "cost_left_usd": left(b.max_cost_usd, self.cost_usd),
            "elapsed_s": round(self.elapsed(), 1), "time_left_s": left(b.max_time_s, self.elapsed()),
            "analysis_runs": self.analysis_runs, "analysis_s_used": round(self.analysis_s, 1),
            "analysis_s_left": None if self.analysis_left() is None else round(self.analysis_left() or 0.0, 1),
        }
