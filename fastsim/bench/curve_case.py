"""Cache-size curve case: 64 sizes from one stack-distance pass against 64 replays.

The trace is the on-demand LRU case's (a generated ``switch-base-128`` trace, top-1, batch 1)
at a tenth of ``--tokens`` (64 replays of the full trace would dominate the run); the sizes run
from the working set to every key (1,536) in 64 steps, on an ``h100-pcie`` (the largest size,
29 GB of Switch experts, exceeds a 24 GB card). Both sides are timed warm (compiled, schedule
built) and must agree on every row.
"""
from __future__ import annotations

from .registry import register_case
from .timing import median, timed

MODEL = "switch-base-128"
HARDWARE = "h100-pcie"
SIZES = 64


@register_case("curve-64-sizes", "one-pass LRU cache curve (64 sizes) vs one replay per size",
               target="ratio >= 20")
def curve_vs_replays(ctx) -> dict:
    from ..curve import cache_curve

    trace = ctx.trace(MODEL, max(10_000, ctx.tokens // 10))
    total = trace.num_layers * trace.num_experts
    sizes = [max(1, round(total * (i + 1) / SIZES)) for i in range(SIZES)]

    def one_pass():
        return cache_curve(trace, sizes, model=MODEL, hardware=HARDWARE, method="stack")

    def replays():
        return cache_curve(trace, sizes, model=MODEL, hardware=HARDWARE, method="replay")

    fast_rows = one_pass().rows  # warm both paths
    slow_rows = replays().rows
    if fast_rows != slow_rows:
        raise AssertionError("the one-pass curve differs from the per-size replays")
    fast, slow = [], []
    for _ in range(ctx.repeat):
        fast.append(timed(one_pass)[0])
        slow.append(timed(replays)[0])
    accesses = SIZES * fast_rows[0]["accesses"]
    f, s = median(fast), median(slow)
    return {
        "fastsim_per_s": accesses / f, "baseline": "64 replays", "baseline_per_s": accesses / s,
        "ratio": s / f, "unit": "accesses x sizes/s", "one_pass_s": f, "replays_s": s,
        "tokens": trace.num_tokens,
    }
