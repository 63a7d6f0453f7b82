"""Retries of model calls: exponential backoff with jitter, up to minutes (overloads last that
long), honouring a server's Retry-After, each wait announced (the live view shows it).

The SDKs' own retries are switched off so that one policy, configurable per proposer
(``max_retries``, ``retry_base_s``, ``retry_max_wait_s``), applies to every back end.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
Notice = Callable[[str], None]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, retry-after seconds or an HTTP date."""
    for key, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(key)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


RETRY_STATUSES = (408, 409, 429)  # and every 5xx (529: overloaded)


def status_wait_hint(status: int | None, headers: Mapping[str, str]) -> float | None:
    """For ``call_with_retries``: None when an answer with ``status`` is final, else the
    server's Retry-After (0: none given). ``status`` None: no answer (connection, timeout)."""
    if status is None:
        return 0.0
    if status not in RETRY_STATUSES and status < 500:
        return None
    return retry_after(headers) or 0.0


def backoff(attempt: int, base_s: float, max_wait_s: float, rng: random.Random | None = None) -> float:
    """Seconds before retry ``attempt`` (0-based): base·2^attempt, capped, times a jitter in
    [0.5, 1] so that many clients do not retry in step."""
    jitter = 0.5 + 0.5 * (rng or random).random()
    return min(base_s * 2 ** attempt, max_wait_s) * jitter


def call_with_retries(call: Callable[[], T], errors: tuple[type[Exception], ...],
                      wait_hint: Callable[[Exception], float | None], *, max_retries: int, base_s: float,
                      max_wait_s: float, notice: Notice, what: Callable[[Exception], str] = str) -> T:
    """``call()``, retried on ``errors`` for which ``wait_hint`` is not None (its value: the
    server's Retry-After in seconds, or 0 for none). The last error propagates."""
    for attempt in range(max_retries + 1):
        try:
            return call()
        except errors as exc:
            hint = wait_hint(exc)
            if hint is None or attempt == max_retries:
                raise
            wait = min(hint, max_wait_s) if hint > 0 else backoff(attempt, base_s, max_wait_s)
            notice(f"model API: {what(exc)}; retry {attempt + 1} of {max_retries} in {wait:.1f}s")
            time.sleep(wait)
    raise AssertionError("unreachable")
