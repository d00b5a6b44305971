"""Timing helpers: medians of repeated runs, and runs repeated until they last long enough."""
from __future__ import annotations

import statistics
import time
from typing import Callable

__all__ = ["clock", "timed", "timed_at_least", "median"]

clock = time.perf_counter


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """``(seconds, result)`` of one call."""
    t0 = clock()
    out = fn()
    return clock() - t0, out


def timed_at_least(fn: Callable[[], object], min_s: float) -> tuple[float, int]:
    """Call ``fn`` until ``min_s`` seconds have passed; ``(seconds per call, calls)``.

    Short runs are repeated so that timer resolution and one-off stalls do not dominate.
    """
    calls = 0
    t0 = clock()
    while True:
        fn()
        calls += 1
        elapsed = clock() - t0
        if elapsed >= min_s:
            return elapsed / calls, calls


def median(values) -> float:
    return float(statistics.median(values))
