"""Timing helpers: medians of repeated runs, and runs repeated until they last long enough."""
from __future__ import annotations

import statistics
import time
from typing import Callable

__all__ = ["clock", "timed", "timed_at_least", "median", "alternating_medians", "rates"]

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


def alternating_medians(call: Callable[[], object], base: Callable[[], object], repeat: int,
                        log: Callable[[str], None], label: str) -> tuple[float, float, object, object]:
    """``(call seconds, base seconds, call result, base result)``: the medians of ``repeat`` timed
    runs of each, alternating so that drift in the machine's speed reaches both alike.

    Each is called once first, untimed, so that compiling or loading its kernels is not timed;
    the results are those of that first call. ``log`` gets progress lines that start with ``label``.
    """
    log(f"{label}: compiling or loading the kernels")
    first = call()
    base_first = base()
    call_times, base_times = [], []
    for i in range(repeat):
        log(f"{label}: run {i + 1} of {repeat}")
        call_times.append(timed(call)[0])
        base_times.append(timed(base)[0])
    return median(call_times), median(base_times), first, base_first


def rates(count: int, call_s: float, base_s: float, baseline: str, unit: str) -> dict:
    """The rate fields of a case that times fastsim against a fastsim baseline: ``count`` things
    (``unit``) done in ``call_s`` and in ``base_s`` seconds; the ratio is the call's rate over
    the baseline's."""
    return {
        "fastsim_per_s": count / call_s,
        "baseline": baseline,
        "baseline_per_s": count / base_s,
        "ratio": base_s / call_s,
        "unit": unit,
        "fastsim_s": call_s,
        "baseline_s": base_s,
    }
