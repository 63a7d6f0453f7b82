"""Session budgets: attempts, cost, wall-clock time, target PGR. Checked before every step."""

from __future__ import annotations

import re
import time

from agent.proposers.base import BudgetStop, Ending
from experiments.schemas import Budgets


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
    """Counts what a session has spent, including what it spent before a resume."""

    def __init__(self, budgets: Budgets, attempts: int = 0, cost_usd: float = 0.0,
                 elapsed_s: float = 0.0) -> None:
        self.budgets = budgets
        self.attempts = attempts
        self.cost_usd = cost_usd
        self._elapsed_before = elapsed_s
        self._started = time.monotonic()
        self.best_pgr: float | None = None
        self.stop_reason: str | None = None
        self.stop_ending: Ending = "budget"

    def elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

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
        if b.max_cost_usd is not None and self.cost_usd >= b.max_cost_usd:
            raise BudgetStop(f"cost budget reached (${self.cost_usd:.2f}/${b.max_cost_usd:.2f})")
        if b.max_time_s is not None and self.elapsed() >= b.max_time_s:
            raise BudgetStop(f"time budget reached ({self.elapsed():.0f}s/{b.max_time_s:.0f}s)")
        if b.target_pgr is not None and self.best_pgr is not None and self.best_pgr >= b.target_pgr:
            raise BudgetStop(f"target PGR reached ({self.best_pgr:.3f} ≥ {b.target_pgr})")

    def status(self) -> dict[str, float | int | None]:
        b = self.budgets
        left = lambda cap, used: None if cap is None else max(0, cap - used)  # noqa: E731
        return {
            "attempts_used": self.attempts, "attempts_left": left(b.max_attempts, self.attempts),
            "cost_usd": round(self.cost_usd, 4), "cost_left_usd": left(b.max_cost_usd, self.cost_usd),
            "elapsed_s": round(self.elapsed(), 1), "time_left_s": left(b.max_time_s, self.elapsed()),
        }
