"""The metrics of the execution path (SPEC section 7), counted from its event record.

Section 3's metrics come from :func:`fastsim.reference.timeline.metrics_from_events`; this adds
the phase split, CPU and zero-copy executions, the memory tiers' counts, ``peak_overflow`` and
the TTFT and TPOT figures (docs/model.md "Execution").
"""
from __future__ import annotations

import math

from .link import HOST_HIT, NVME_READ
from .timeline import ACCESS, CPU, EVICT, LOAD, PIN, STEP, ZERO_COPY, metrics_from_events

__all__ = ["execution_metrics", "percentile", "PHASES"]

PHASES = ("prefill", "decode")


def percentile(values, q: float) -> float:
    """The ``q`` quantile (``0 <= q <= 1``) of ``values``, linear between closest ranks: rank
    ``h = (n - 1) q``, ``i = floor(h)``, ``t = h - i``, between ``a = v_i`` and ``b = v_{i+1}``
    of the sorted values. Computed as numpy's default method does, to the last bit: ``a + (b -
    a) t`` when ``t < 0.5``, else ``b - (b - a) (1 - t)``. 0 over no values."""
    v = sorted(float(x) for x in values)
    if not v:
        return 0.0
    h = (len(v) - 1) * q
    i = math.floor(h)
    t = h - i
    a, b = v[i], v[min(i + 1, len(v) - 1)]
    return a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)


def _summary(prefix: str, values_ns) -> dict:
    """Mean, p50 and p99 of integer nanoseconds, in seconds (0 over no values)."""
    mean = sum(values_ns) / len(values_ns) if values_ns else 0.0
    return {
        f"{prefix}_s": mean / 1e9,
        f"{prefix}_p50_s": percentile(values_ns, 0.5) / 1e9,
        f"{prefix}_p99_s": percentile(values_ns, 0.99) / 1e9,
    }


def peak_overflow(events, layout) -> int:
    """The largest, after any load, of the sum over partitions of ``max(0, used - budget)``, in
    the cache's unit; residency replayed from the PIN, LOAD and EVICT events."""
    used = [0] * len(layout.budgets)
    peak = 0
    for e in events:
        if e[0] == PIN:
            used[layout.partition(e[1])] += layout.size(e[1])
        elif e[0] == LOAD:
            used[layout.partition(e[3])] += layout.size(e[3])
            peak = max(peak, sum(max(0, u - b) for u, b in zip(used, layout.budgets)))
        elif e[0] == EVICT:
            used[layout.partition(e[3])] -= layout.size(e[3])
    return peak


def execution_metrics(events, steps: int, tokens: int, layout):
    """``(metrics, step_time, step_stall)``: every metric of the execution path, per-step time
    and stall in integer nanoseconds."""
    metrics, step_time, step_stall = metrics_from_events(events, steps, tokens)
    accesses = [e for e in events if e[0] == ACCESS]
    for phase in PHASES:
        outcomes = [e[4] for e in accesses if e[5] == phase]
        hits = outcomes.count(0)
        metrics[f"{phase}_accesses"] = len(outcomes)
        metrics[f"{phase}_hits"] = hits
        metrics[f"{phase}_late"] = outcomes.count(1)
        metrics[f"{phase}_misses"] = outcomes.count(2)
        metrics[f"{phase}_hit_rate"] = hits / len(outcomes) if outcomes else 0.0
    metrics["cpu_executions"] = sum(1 for e in events if e[0] == CPU)
    metrics["zero_copy_executions"] = sum(1 for e in events if e[0] == ZERO_COPY)
    metrics["host_hits"] = sum(1 for e in events if e[0] == HOST_HIT)
    metrics["nvme_loads"] = sum(1 for e in events if e[0] == NVME_READ)
    metrics["peak_overflow"] = peak_overflow(events, layout)
    # a prefilled sequence's TTFT is its prefill step's time; a decode token's TPOT its step's
    ttft = [step_time[e[1]] for e in events if e[0] == STEP for _ in e[2]]
    tpot = [step_time[e[1]] for e in events if e[0] == STEP for _ in range(e[3])]
    metrics.update(_summary("ttft", ttft))
    metrics.update(_summary("tpot", tpot))
    return metrics, step_time, step_stall
