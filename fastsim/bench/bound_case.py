"""The bound's cost (SPEC section 8): ``fastsim.bound`` against one replay of the same trace.

``bound-vs-replay`` computes the lower bound (default horizon) of a generated ``switch-base-128``
trace at 256 slots, batch 1, on an ``rtx3090``, and replays the oracle with Belady eviction at the
same cache (the strongest built-in pair), alternating; its ratio is the bound's rate over the
replay's (both jitted parts only: the schedule and the bound's inputs are built once, outside the
timing). The bound and the replay's time travel along, so the run also shows how close the
best built-in pair comes to the bound.
"""
from __future__ import annotations

from ..bound import DEFAULT_HORIZON
from ..bound.api import bound_inputs
from ..bound.kernels import chain_bound
from ..replay import kernel_inputs, resolve_config
from ..timeline.core import N_TOTAL_NS
from .registry import register_case
from .timing import median, timed

MODEL = "switch-base-128"
HARDWARE = "rtx3090"
SLOTS = 256
#: Tokens of the case's trace per ``--tokens`` (the replay prefetches, the bound runs windows).
DIVISOR = 10


@register_case(
    "bound-vs-replay",
    f"lower bound (horizon {DEFAULT_HORIZON}) of a generated {MODEL} trace at {SLOTS} slots vs one oracle/belady replay",
    target="ratio >= 0.1",
)
def bound_vs_replay(ctx) -> dict:
    trace = ctx.trace(MODEL, max(400, ctx.tokens // DIVISOR))
    inputs = bound_inputs(trace, MODEL, HARDWARE, SLOTS, 1)
    args = (inputs.ptr, inputs.keys, inputs.nxt, inputs.compute_ns, inputs.part_of_key, inputs.cap,
            inputs.part_load_ns, DEFAULT_HORIZON)
    cfg, sched = resolve_config(trace, "oracle", MODEL, HARDWARE, cache_slots=SLOTS, eviction="belady")
    entry, rargs = kernel_inputs(cfg, sched, trace.top_k)
    ctx.log("bound-vs-replay: compiling or loading the kernels")
    total_ns = int(chain_bound(*args)[0])
    replay_ns = int(entry(*rargs)[0][N_TOTAL_NS])
    b_times, r_times = [], []
    for i in range(ctx.repeat):
        ctx.log(f"bound-vs-replay: run {i + 1} of {ctx.repeat}")
        b_times.append(timed(lambda: chain_bound(*args))[0])
        r_times.append(timed(lambda: entry(*rargs))[0])
    b_s, r_s = median(b_times), median(r_times)
    positions = int(inputs.compute_ns.shape[0])
    return {
        "fastsim_per_s": positions / b_s,
        "baseline": "one oracle replay with belady eviction (same trace and cache)",
        "baseline_per_s": positions / r_s,
        "ratio": r_s / b_s,
        "unit": "positions/s",
        "bound_s": b_s,
        "replay_s": r_s,
        "positions": positions,
        "tokens": trace.num_tokens,
        "cache_slots": SLOTS,
        "horizon": DEFAULT_HORIZON,
        "bound_total_time_s": total_ns / 1e9,
        "replay_total_time_s": replay_ns / 1e9,
        "replay_over_bound": replay_ns / total_ns if total_ns else None,
    }
