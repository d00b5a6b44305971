"""Strategy cases: every prefetching kernel against its pure-Python reference, and kernel throughput.

``<strategy>-vs-reference`` (oracle, multi-look, top-k, intelligent; on-demand has
``kernel-vs-reference``) replays one generated trace with the jitted kernel and, on a prefix of it,
with :func:`fastsim.reference.replay_reference`. ``<strategy>-throughput`` (every built-in strategy)
times the kernel alone on a large ``switch-base-128`` trace and a ``qwen2-57b-a14b`` trace.
The seed's variants (:data:`VARIANTS`: ``adaptive-top-k`` and the options of top-k and
intelligent) get both cases under names of their own, and so do today's prefetchers
(:data:`TODAY`: noisy-oracle, pre-gated, cross-layer, moe-infinity, fine-moe, hybrimoe).
"""
from __future__ import annotations

import numpy as np

from ..replay import kernel_inputs, metrics_from_counters, resolve_config, uses_demand_path
from .registry import register_case
from .timing import median, timed, timed_at_least

__all__ = [
    "STRATEGIES", "PREFETCHING", "VARIANTS", "TODAY", "SWITCH", "QWEN", "prefix", "kernel_call", "compare_tokens",
    "multi_look_sizes", "quadratic_fit",
]

#: ``(model, hardware, cache slots)`` of the throughput traces. 512 of switch's 12 x 128 = 1536 keys
#: and 1024 of qwen's 28 x 64 = 1792: room to prefetch without thrashing. qwen's 1024 experts
#: (56 GB) need an 80 GB GPU.
SWITCH = ("switch-base-128", "rtx3090", 512)
QWEN = ("qwen2-57b-a14b", "h100-pcie", 1024)
STRATEGIES = ("on-demand", "oracle", "multi-look", "top-k", "intelligent")
PREFETCHING = ("oracle", "multi-look", "top-k", "intelligent")
#: The seed's variants (docs/strategies/): ``(case name, strategy, parameters)``.
VARIANTS = (
    ("adaptive-top-k", "adaptive-top-k", {}),
    ("top-k-weighted", "top-k", {"weighting": 1}),
    ("top-k-call-order", "top-k", {"order": 1}),
    ("intelligent-inverse-error", "intelligent", {"weight_update": 1}),
    ("intelligent-sparse", "intelligent", {"max_transitions": 32}),
)
#: Today's prefetchers (docs/strategies/), at their default parameters.
TODAY = ("noisy-oracle", "pre-gated", "cross-layer", "moe-infinity", "fine-moe", "hybrimoe")

#: The kernel-vs-reference trace has ``tokens // COMPARE_DIVISOR`` tokens (20k at the default 1M).
COMPARE_DIVISOR = 50
COMPARE_MIN_TOKENS = 400
#: The reference's first prefix; it doubles until one reference replay lasts REFERENCE_MIN_S.
FIRST_PREFIX = 125
REFERENCE_MIN_S = 2.0
KERNEL_MIN_S = 0.2
#: multi-look's reference re-counts its whole history on every call (quadratic in steps): it is
#: timed on prefixes of ``tokens // MULTI_LOOK_PREFIX_DIVISOR`` tokens and half that, on a
#: one-layer trace, and extrapolated to the full trace.
MULTI_LOOK_PREFIX_DIVISOR = 250
MULTI_LOOK_MIN_PREFIX = 200
#: multi-look's one-layer trace: 1 x 128 keys, so a cache of half the keys.
MULTI_LOOK_SLOTS = 64
#: The qwen throughput trace has ``tokens // QWEN_DIVISOR`` tokens (100k at the default 1M).
QWEN_DIVISOR = 10


def prefix(trace, tokens: int):
    """The first ``tokens`` tokens of ``trace`` as a trace of their own (sequences cut there)."""
    from ..trace.model import Trace

    tokens = min(int(tokens), trace.num_tokens)
    if tokens == trace.num_tokens:
        return trace
    ends = np.cumsum(trace.sequence_lengths)
    starts = ends - trace.sequence_lengths
    lengths = np.clip(tokens - starts, 0, trace.sequence_lengths)
    lengths = lengths[: max(1, int(np.searchsorted(starts, tokens, side="left")))]
    return Trace.from_arrays(
        np.ascontiguousarray(trace.experts[:tokens]), trace.num_experts, sequence_lengths=lengths,
        model=trace.model, source=f"first {tokens} tokens of {trace.source}",
    )


def kernel_call(trace, strategy: str, model, hardware: str, slots: int, params: dict | None = None):
    """A strategy's entry point bound to its arguments, schedule built and config resolved.

    Returns ``(call, finish)``: ``call()`` runs only the jitted replay and returns its outputs;
    ``finish(outputs)`` turns them into the SPEC metrics.
    """
    cfg, sched = resolve_config(trace, strategy, model, hardware, cache_slots=slots, eviction="lru", params=params)
    entry, args = kernel_inputs(cfg, sched, trace.top_k)

    def call():
        return entry(*args)

    def finish(outputs):
        return metrics_from_counters(
            outputs[0], sched, trace.num_tokens, cfg.model.expert_bytes, sizes_counted=not uses_demand_path(cfg)
        )

    return call, finish


def compare_tokens(ctx) -> int:
    """Tokens of the kernel-vs-reference trace (20k at the default 1M)."""
    return max(COMPARE_MIN_TOKENS, ctx.tokens // COMPARE_DIVISOR)


def multi_look_sizes(ctx) -> tuple[int, int, int]:
    """``(full, short prefix, long prefix)`` tokens of multi-look's one-layer trace."""
    full = compare_tokens(ctx)
    long = min(full, max(MULTI_LOOK_MIN_PREFIX, ctx.tokens // MULTI_LOOK_PREFIX_DIVISOR))
    return full, max(1, long // 2), long


def quadratic_fit(n1: float, t1: float, n2: float, t2: float) -> tuple[float, float]:
    """``(a, b)`` of ``t = a n + b n**2`` through two points, with ``a, b >= 0``.

    Where the exact fit has a negative coefficient (noise, or growth a little faster than
    quadratic), the curve is the pure line or pure parabola through the longer point ``(n2, t2)``.
    """
    b = (t2 / n2 - t1 / n1) / (n2 - n1) if n2 != n1 else 0.0
    if b <= 0:
        return t2 / n2, 0.0
    a = t2 / n2 - b * n2
    if a < 0:
        return 0.0, t2 / (n2 * n2)
    return a, b


def _one_layer_model(name: str) -> dict:
    from ..profiles import model_profile

    m = model_profile(name).as_dict()
    m.update(num_layers=1, name=f"{name}-1-layer")
    return m


def _one_layer_trace(ctx, tokens: int):
    """A generated one-layer trace with switch-base-128's shape otherwise (seed 0)."""
    from ..trace.generate import generate_trace
    from .context import SEED, SEQUENCE_TOKENS

    # kept with the context's traces, so it is released when the run ends
    key = ("one-layer", tokens)
    memo = ctx._traces
    if key not in memo:
        ctx.log(f"generating a {tokens}-token one-layer trace")
        memo[key] = generate_trace((1, 128, 1), tokens=tokens, sequences=max(1, -(-tokens // SEQUENCE_TOKENS)), seed=SEED)
    return memo[key]


def _reference_seconds(trace, strategy: str, args: dict, min_s: float):
    """Seconds per reference replay (repeated until ``min_s`` passed) and its last metrics."""
    from ..reference import replay_reference

    box = {}

    def run():
        box["metrics"] = replay_reference(trace, strategy, **args).metrics

    seconds, _ = timed_at_least(run, min_s)
    return seconds, box["metrics"]


def _kernel_seconds(call, min_s: float = KERNEL_MIN_S) -> float:
    return timed_at_least(call, min_s)[0]


def _vs_reference(ctx, strategy: str, params: dict | None = None) -> dict:
    model, hardware, slots = SWITCH
    full = ctx.trace(model, compare_tokens(ctx))
    args = dict(model=model, hardware=hardware, cache_slots=slots, eviction="lru", **(params or {}))
    call_full, finish_full = kernel_call(full, strategy, model, hardware, slots, params)
    ctx.log(f"{strategy}-vs-reference: compiling or loading the kernel")
    full_metrics = finish_full(call_full())
    # the shortest prefix whose reference replay lasts REFERENCE_MIN_S (the reference's cost per
    # access does not grow with the history for these strategies)
    n = min(FIRST_PREFIX, full.num_tokens)
    while True:
        part = prefix(full, n)
        ctx.log(f"{strategy}-vs-reference: reference on {n} tokens")
        r_s, ref_metrics = _reference_seconds(part, strategy, args, 0.0)
        if r_s >= REFERENCE_MIN_S or n == full.num_tokens:
            break
        n = min(full.num_tokens, 2 * n)
    call_part, finish_part = kernel_call(part, strategy, model, hardware, slots, params)
    part_metrics = finish_part(call_part())
    r_times, k_times, f_times = [], [], []
    for i in range(ctx.repeat):
        ctx.log(f"{strategy}-vs-reference: run {i + 1} of {ctx.repeat}")
        k_times.append(_kernel_seconds(call_part))
        f_times.append(_kernel_seconds(call_full))
        r_times.append(_reference_seconds(part, strategy, args, REFERENCE_MIN_S)[0])
    k_s, f_s, r_s = median(k_times), median(f_times), median(r_times)
    accesses = part_metrics["accesses"]
    return {
        "fastsim_per_s": accesses / k_s,
        "baseline": "fastsim.reference.replay_reference",
        "baseline_per_s": accesses / r_s,
        "ratio": r_s / k_s,
        "unit": "accesses/s",
        "tokens": part.num_tokens,
        "ratio_full": (full_metrics["accesses"] / f_s) / (accesses / r_s),
        "metrics_agree": part_metrics == ref_metrics,
        "fastsim_s": k_s,
        "baseline_s": r_s,
        "accesses": accesses,
        "full_tokens": full.num_tokens,
        "full_accesses": full_metrics["accesses"],
        "kernel_full_s": f_s,
        "kernel_full_per_s": full_metrics["accesses"] / f_s,
        "cache_slots": slots,
        "hit_rate": part_metrics["hit_rate"],
        "prefetch_loads": part_metrics["prefetch_loads"],
    }


def _multi_look_vs_reference(ctx) -> dict:
    strategy = "multi-look"
    model = _one_layer_model(SWITCH[0])
    hardware, slots = SWITCH[1], MULTI_LOOK_SLOTS
    full_n, short_n, long_n = multi_look_sizes(ctx)
    full = _one_layer_trace(ctx, full_n)
    short, long = prefix(full, short_n), prefix(full, long_n)
    args = dict(model=model, hardware=hardware, cache_slots=slots, eviction="lru")
    call_full, finish_full = kernel_call(full, strategy, model, hardware, slots)
    call_long, finish_long = kernel_call(long, strategy, model, hardware, slots)
    ctx.log("multi-look-vs-reference: compiling or loading the kernel")
    full_metrics = finish_full(call_full())
    long_metrics = finish_long(call_long())
    k_times, f_times, rs_times, rl_times = [], [], [], []
    ref_metrics = None
    for i in range(ctx.repeat):
        ctx.log(f"multi-look-vs-reference: run {i + 1} of {ctx.repeat} (reference on {short_n} and {long_n} tokens)")
        k_times.append(_kernel_seconds(call_long))
        f_times.append(_kernel_seconds(call_full))
        rs_times.append(_reference_seconds(short, strategy, args, 0.0)[0])
        seconds, ref_metrics = _reference_seconds(long, strategy, args, 0.0)
        rl_times.append(seconds)
    k_s, f_s = median(k_times), median(f_times)
    rs_s, rl_s = median(rs_times), median(rl_times)
    a, b = quadratic_fit(short.num_tokens, rs_s, long.num_tokens, rl_s)
    ref_full_s = a * full.num_tokens + b * full.num_tokens ** 2
    accesses = long_metrics["accesses"]
    full_accesses = full_metrics["accesses"]
    return {
        "fastsim_per_s": accesses / k_s,
        "baseline": "fastsim.reference.replay_reference",
        "baseline_per_s": accesses / rl_s,
        "ratio": rl_s / k_s,
        "unit": "accesses/s",
        "tokens": long.num_tokens,
        "ratio_full_extrapolated": ref_full_s / f_s,
        "full_tokens": full.num_tokens,
        "metrics_agree": long_metrics == ref_metrics,
        "fastsim_s": k_s,
        "baseline_s": rl_s,
        "accesses": accesses,
        "layers": 1,
        "short_prefix_tokens": short.num_tokens,
        "baseline_short_s": rs_s,
        "full_accesses": full_accesses,
        "kernel_full_s": f_s,
        "kernel_full_per_s": full_accesses / f_s,
        "baseline_full_s_extrapolated": ref_full_s,
        "baseline_full_per_s_extrapolated": full_accesses / ref_full_s,
        "fit_linear_s_per_token": a,
        "fit_quadratic_s_per_token2": b,
        "cache_slots": slots,
        "hit_rate": long_metrics["hit_rate"],
        "prefetch_loads": long_metrics["prefetch_loads"],
    }


def _throughput(ctx, strategy: str, params: dict | None = None) -> dict:
    out: dict = {"baseline": None, "baseline_per_s": None, "ratio": None, "unit": "accesses/s"}
    for label, (model, hardware, slots), tokens in (
        ("switch", SWITCH, ctx.tokens),
        ("qwen", QWEN, max(1, ctx.tokens // QWEN_DIVISOR)),
    ):
        trace = ctx.trace(model, tokens)
        call, finish = kernel_call(trace, strategy, model, hardware, slots, params)
        # compile or load the entry point on a short prefix, so the timed runs measure replays only
        warm, _ = kernel_call(prefix(trace, 64), strategy, model, hardware, slots, params)
        warm()
        times = []
        metrics = None
        for i in range(ctx.repeat):
            ctx.log(f"{strategy}-throughput: {label} run {i + 1} of {ctx.repeat}")
            seconds, outputs = timed(call)
            times.append(seconds)
            metrics = finish(outputs)
        seconds = median(times)
        out.update({
            f"{label}_tokens": trace.num_tokens,
            f"{label}_accesses": metrics["accesses"],
            f"{label}_s": seconds,
            f"{label}_per_s": metrics["accesses"] / seconds,
            f"{label}_cache_slots": slots,
            f"{label}_hit_rate": metrics["hit_rate"],
            f"{label}_prefetch_loads": metrics["prefetch_loads"],
        })
    out["fastsim_per_s"] = out["switch_per_s"]
    return out


def _register() -> None:
    for strategy in PREFETCHING:
        if strategy == "multi-look":
            continue
        register_case(
            f"{strategy}-vs-reference",
            f"{strategy} LRU replay, 512 slots, of a generated switch-base-128 trace: jitted kernel vs "
            "the pure-Python reference on the prefix it replays in >= 2 s",
            target="ratio >= 100",
        )(lambda ctx, s=strategy: _vs_reference(ctx, s))
        if strategy == "oracle":
            # the table lists the cases in registration order: A-E, as the seed does
            register_case(
                "multi-look-vs-reference",
                "multi-look LRU replay, 64 slots, of a one-layer switch-like trace (20k tokens at the "
                "default size): kernel vs reference on a prefix, extrapolated to the whole trace",
                target="ratio >= 1000 at 20k tokens",
            )(_multi_look_vs_reference)
    for strategy in STRATEGIES:
        register_case(
            f"{strategy}-throughput",
            f"{strategy} kernel replay (LRU, batch 1, default parameters) of a generated switch-base-128 "
            "trace (512 slots) and a qwen2-57b-a14b trace of a tenth the tokens (1024 slots)",
            target="1M-token switch replay < 20 s",
        )(lambda ctx, s=strategy: _throughput(ctx, s))
    for case, strategy, params in VARIANTS:
        given = ", ".join(f"{k}={v}" for k, v in params.items()) or "default parameters"
        register_case(
            f"{case}-vs-reference",
            f"{strategy} ({given}) LRU replay, 512 slots, of a generated switch-base-128 trace: jitted "
            "kernel vs the pure-Python reference on the prefix it replays in >= 2 s",
            target="ratio >= 100",
        )(lambda ctx, s=strategy, p=params: _vs_reference(ctx, s, p))
        register_case(
            f"{case}-throughput",
            f"{strategy} ({given}) kernel replay (LRU, batch 1) of a generated switch-base-128 trace "
            "(512 slots) and a qwen2-57b-a14b trace of a tenth the tokens (1024 slots)",
            target=">= 2 M accesses/s on both",
        )(lambda ctx, s=strategy, p=params: _throughput(ctx, s, p))
    for strategy in TODAY:
        register_case(
            f"{strategy}-vs-reference",
            f"{strategy} LRU replay, 512 slots, of a generated switch-base-128 trace: jitted kernel vs "
            "the pure-Python reference on the prefix it replays in >= 2 s",
            target="ratio >= 100",
        )(lambda ctx, s=strategy: _vs_reference(ctx, s))
        register_case(
            f"{strategy}-throughput",
            f"{strategy} kernel replay (LRU, batch 1, default parameters) of a generated switch-base-128 "
            "trace (512 slots) and a qwen2-57b-a14b trace of a tenth the tokens (1024 slots)",
            target=">= 2 M accesses/s on both",
        )(lambda ctx, s=strategy: _throughput(ctx, s))


_register()
