"""Replay cases: the on-demand kernel against libCacheSim and against the pure-Python reference."""
from __future__ import annotations

from ..replay import kernel_inputs, resolve_config, run_config
from . import peers
from .registry import register_case
from .timing import median, timed, timed_at_least

MODEL = "switch-base-128"
HARDWARE = "rtx3090"
SLOTS = 256
#: Tokens of the short trace the pure-Python reference replays.
REFERENCE_TOKENS = 2000
REFERENCE_MIN_S = 2.0
KERNEL_MIN_S = 0.2


def kernel_call(trace, eviction: str, slots: int = SLOTS):
    """The on-demand entry point and its arguments, schedule built and config resolved.

    Returns ``(call, sched)`` where ``call()`` runs only the jitted replay.
    """
    cfg, sched = resolve_config(trace, "on-demand", MODEL, HARDWARE, cache_slots=slots, eviction=eviction)
    entry, args = kernel_inputs(cfg, sched, trace.top_k)
    return (lambda: entry(*args)), sched


def vs_libcachesim(ctx, eviction: str) -> dict:
    """The on-demand replay of ``eviction`` against libCacheSim's policy of the same name."""
    peers.require()
    trace = ctx.trace(MODEL)
    call, sched = kernel_call(trace, eviction)
    accesses = sched.accesses
    ctx.log(f"{eviction}: compiling or loading the kernel")
    counters = call()[0]
    fastsim_hits = int(counters[0])
    path = ctx.file(f"{MODEL}-{ctx.tokens}.oracleGeneral.bin", lambda p: peers.write_oracle_general(p, peers.key_stream(trace)))
    policy = eviction  # libCacheSim's policy of the same name (peers.POLICIES)
    fs_times, lc_times = [], []
    lc_hits = None
    n = path.stat().st_size // peers.ORACLE_GENERAL.itemsize
    for i in range(ctx.repeat):
        # fastsim and libCacheSim alternate so that machine noise falls on both alike
        ctx.log(f"{eviction}: run {i + 1} of {ctx.repeat}")
        seconds, _ = timed(call)
        fs_times.append(seconds)
        cache = peers.make_cache(policy, SLOTS, trace.num_layers * trace.num_experts)
        rd = peers.reader(path)
        seconds, (miss_ratio, _) = timed(lambda: cache.process_trace(rd))
        lc_times.append(seconds)
        lc_hits = int(round((1.0 - miss_ratio) * n))
    fs_s = median(fs_times)
    lc_s = median(lc_times)
    return {
        "fastsim_per_s": accesses / fs_s,
        "baseline": f"libCacheSim {peers.LABELS[policy]}",
        "baseline_per_s": n / lc_s,
        "ratio": (accesses / fs_s) / (n / lc_s),
        "unit": "accesses/s",
        "fastsim_s": fs_s,
        "baseline_s": lc_s,
        "accesses": accesses,
        "tokens": trace.num_tokens,
        "cache_slots": SLOTS,
        "fastsim_hits": fastsim_hits,
        "baseline_hits": lc_hits,
        "hits_agree": fastsim_hits == lc_hits and accesses == n,
        "baseline_hashpower": peers.hashpower_for(trace.num_layers * trace.num_experts),
    }


@register_case(
    "lru-vs-libcachesim",
    "on-demand LRU replay of a generated switch-base-128 trace, 256 slots, vs libCacheSim LRU",
    target="ratio >= 3",
)
def lru_vs_libcachesim(ctx) -> dict:
    return vs_libcachesim(ctx, "lru")


@register_case(
    "belady-vs-libcachesim",
    "on-demand Belady replay of the same trace and cache vs libCacheSim Belady",
    target="ratio >= 2",
)
def belady_vs_libcachesim(ctx) -> dict:
    return vs_libcachesim(ctx, "belady")


@register_case(
    "kernel-vs-reference",
    "on-demand LRU replay of a short trace: jitted kernel vs the pure-Python reference",
    target="ratio >= 100",
)
def kernel_vs_reference(ctx) -> dict:
    import fastsim
    from ..reference import replay_reference

    trace = ctx.trace(MODEL, min(ctx.tokens, REFERENCE_TOKENS))
    args = dict(model=MODEL, hardware=HARDWARE, cache_slots=SLOTS, eviction="lru")
    fast = fastsim.replay(trace, "on-demand", **args).metrics
    ref = replay_reference(trace, "on-demand", **args).metrics
    accesses = fast["accesses"]
    k_times, r_times = [], []
    for i in range(ctx.repeat):
        ctx.log(f"kernel-vs-reference: run {i + 1} of {ctx.repeat}")
        k_times.append(timed_at_least(lambda: fastsim.replay(trace, "on-demand", **args), KERNEL_MIN_S)[0])
        r_times.append(timed_at_least(lambda: replay_reference(trace, "on-demand", **args), REFERENCE_MIN_S)[0])
    k_s = median(k_times)
    r_s = median(r_times)
    return {
        "fastsim_per_s": accesses / k_s,
        "baseline": "fastsim.reference.replay_reference",
        "baseline_per_s": accesses / r_s,
        "ratio": r_s / k_s,
        "unit": "accesses/s",
        "fastsim_s": k_s,
        "baseline_s": r_s,
        "accesses": accesses,
        "tokens": trace.num_tokens,
        "cache_slots": SLOTS,
        "metrics_agree": fast == ref,
    }
