"""Eviction cases: ``fifo`` and ``lfu`` against libCacheSim's, and every policy's replay rate
against ``lru``'s through the same general core, in one run.

``fifo-vs-libcachesim`` and ``lfu-vs-libcachesim`` replay the on-demand LRU case's trace and cache
(a generated ``switch-base-128`` trace, 256 slots, top-1, batch 1: a plain cache over the key
stream) against libCacheSim's C loop over the same stream: ``fifo`` on the specialised
demand-only timeline (LRU's list without the move on a hit), ``lfu`` on the demand-only timeline
that takes any policy.
``eviction-<policy>`` replays the top-k strategy (k = 32, its defaults) on a generated
``mixtral-8x7b`` trace (top-2, 32 layers) at batch 4 and 96 slots on an ``h100-pcie``, with that policy and with
``lru``, alternating; its ratio is the policy's rate over ``lru``'s. Score-aware reads router
scores, which generated traces lack: the case gives the trace seeded random weights.
"""
from __future__ import annotations

import numpy as np

from .registry import register_case
from .replay_cases import vs_libcachesim
from .timing import alternating_medians, rates
from ..eviction import BUILTIN_MODULES
from ..replay import kernel_inputs, resolve_config

__all__ = ["POLICY_TRACE", "POLICY_SLOTS"]

HARDWARE = "rtx3090"
POLICY_HARDWARE = "h100-pcie"  # 96 Mixtral experts (34 GB) do not fit a 24 GB card
SLOTS = 256
POLICY_TRACE = "mixtral-8x7b"
POLICY_SLOTS = 96
POLICY_BATCH = 4
#: Tokens of the policy cases' trace per ``--tokens`` (they replay a prefetching strategy).
POLICY_DIVISOR = 10


def _call(trace, strategy, eviction, slots, batch=1, hardware=HARDWARE, **kw):
    cfg, sched = resolve_config(trace, strategy, trace.model, hardware, cache_slots=slots, eviction=eviction,
                                batch_size=batch, **kw)
    entry, args = kernel_inputs(cfg, sched, trace.top_k)
    return (lambda: entry(*args)), sched


@register_case("fifo-vs-libcachesim", "on-demand FIFO replay of the LRU case's trace vs libCacheSim FIFO",
               target="ratio >= 3")
def fifo_vs_libcachesim(ctx) -> dict:
    return vs_libcachesim(ctx, "fifo")


@register_case("lfu-vs-libcachesim", "on-demand LFU replay of the LRU case's trace vs libCacheSim LFU",
               target="ratio >= 3")
def lfu_vs_libcachesim(ctx) -> dict:
    return vs_libcachesim(ctx, "lfu")


def _policy_trace(ctx):
    trace = ctx.trace(POLICY_TRACE, max(400, ctx.tokens // POLICY_DIVISOR))
    if trace.scores is None:
        import fastsim

        rng = np.random.default_rng(0)
        scores = rng.random(trace.experts.shape).astype(np.float32)
        trace = fastsim.Trace.from_arrays(
            trace.experts, trace.num_experts, trace.sequence_lengths, scores=scores, model=trace.model,
            source=f"{trace.source} with seeded random router weights",
        )
    return trace


def _policy_case(ctx, policy: str) -> dict:
    trace = _policy_trace(ctx)
    call, sched = _call(trace, "top-k", policy, POLICY_SLOTS, POLICY_BATCH, POLICY_HARDWARE)
    base, _ = _call(trace, "top-k", "lru", POLICY_SLOTS, POLICY_BATCH, POLICY_HARDWARE)
    p_s, b_s, out, base_out = alternating_medians(call, base, ctx.repeat, ctx.log, f"eviction-{policy}")
    hits = int(out[0][0])
    base_hits = int(base_out[0][0])
    accesses = sched.accesses
    return {
        **rates(accesses, p_s, b_s, "fastsim lru (same core, strategy, trace and cache)", "accesses/s"),
        "accesses": accesses,
        "tokens": trace.num_tokens,
        "cache_slots": POLICY_SLOTS,
        "batch_size": POLICY_BATCH,
        "hit_rate": hits / accesses if accesses else 0.0,
        "lru_hit_rate": base_hits / accesses if accesses else 0.0,
    }


def _register(policy: str) -> None:
    @register_case(
        f"eviction-{policy}",
        f"top-k on a generated {POLICY_TRACE} trace, batch {POLICY_BATCH}, {POLICY_SLOTS} slots: "
        f"{policy} eviction vs lru through the same core",
        target="ratio >= 0.33",
    )
    def case(ctx) -> dict:
        return _policy_case(ctx, policy)


for _module in BUILTIN_MODULES:
    _register(_module.replace("_", "-"))
