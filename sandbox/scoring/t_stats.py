"""Student-t statistics for scoring: the 95% interval of a mean and a one-sample p-value.

scipy.stats is imported on first use only (it costs ~1.2 s, which a command that never scores
should not pay); a session imports it ahead of time with ``scipy_stats`` on a thread of its own
(``Evaluator.warm_up``)."""

from __future__ import annotations

from types import ModuleType

import numpy as np


def scipy_stats() -> ModuleType:
    """scipy.stats, imported on the first call."""
    from scipy import stats

    return stats


def t_half_width(values: list[float]) -> float | None:
    """Half-width of the 95% t-interval of the mean (None below two values)."""
    if len(values) < 2:
        return None
    return float(scipy_stats().t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def t_test_p_value(values: list[float]) -> float:
    """Two-sided p-value of a one-sample t-test against a mean of 0 (needs two values or more)."""
    return float(scipy_stats().ttest_1samp(values, 0.0).pvalue)
