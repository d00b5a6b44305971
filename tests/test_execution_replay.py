"""The execution timeline's kernel equals its reference (SPEC section 7): every metric, every
access outcome, per-step times and wanted lists, on drawn traces with every option and every
combination of them a sweep can produce, every strategy and every eviction policy, partitions,
pins, byte budgets, memory tiers, prompts and batch sizes 1-8."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.reference import replay_reference
from fastsim.replay import resolve_config, run_config, schedule_for
from fastsim.replay_execution import EXECUTION_METRICS, run_execution_config

from hypothesis_budget import examples
from test_strategies_replay import PARAMS
from timeline_helpers import fixed_keys_strategy, hardware_profiles, model_for, traces

# Every strategy and every policy appears; each pair compiles its own entry point, so the
# pairs are a covering set rather than the full product.
PAIRS = [
    ("on-demand", "lru"), ("on-demand", "belady"), ("oracle", "lru"), ("oracle", "belady"),
    ("top-k", "lru"), ("multi-look", "fifo"), ("intelligent", "lfu"), ("test-fixed-keys", "lru"),
    ("test-fixed-keys", "belady"), ("test-fixed-keys", "lfru"), ("test-fixed-keys", "activation-aware"),
    ("test-fixed-keys", "score-aware"),
]
EVICTION_PARAMS = {
    "activation-aware": {"smoothing": st.sampled_from([1e-3, 0.5, 4.0])},
    "score-aware": {"alpha": st.sampled_from([0.1, 0.5, 1.0])},
}


def test_pairs_cover_every_strategy_and_policy():
    from fastsim.eviction import get_eviction, list_evictions
    from fastsim.strategies import list_strategies

    builtin_strategies = {"on-demand", "oracle", "multi-look", "top-k", "intelligent"}
    assert builtin_strategies <= {s for s, _ in PAIRS}
    # built-in policies only: tests run earlier in this process may have registered their own
    builtin_policies = {name for name in list_evictions() if get_eviction(name).builtin}
    assert builtin_policies - {"mru"} <= {p for _, p in PAIRS} | {"fifo", "lfu"}
    assert builtin_strategies <= set(list_strategies())


@st.composite
def prompts(draw, trace):
    """Prompt marks: none, or a prompt length per sequence (0 up to the whole sequence)."""
    if not draw(st.booleans()):
        return trace
    marks = [draw(st.integers(0, int(n))) for n in trace.sequence_lengths]
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scores = rng.random(trace.experts.shape).astype(np.float32)
    return fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths, scores=scores,
                                     prompt_tokens=marks)


@st.composite
def execution_hardware(draw, model):
    """A hardware profile with host CPU figures (faster or slower than the link) and maybe a
    host tier smaller than the experts."""
    hw = draw(hardware_profiles())
    hw["cpu_flops_per_s"] = draw(st.sampled_from([1e8, 1e9, 5e9]))
    hw["cpu_mem_bytes_per_s"] = draw(st.sampled_from([3e9, 5e10, math.inf]))
    hw["cpu_overhead_s"] = draw(st.sampled_from([0.0, 3.1e-9, 2e-7]))
    if draw(st.booleans()):
        sizes = model["expert_bytes"] if isinstance(model["expert_bytes"], list) else [model["expert_bytes"]]
        hw["host_bytes"] = draw(st.integers(max(sizes), max(sizes) * model["num_layers"] * model["num_experts"]))
        hw["nvme_bytes_per_s"] = draw(st.sampled_from([1e8, 2e9, 1e11]))
    return hw


@st.composite
def options(draw, has_prompts):
    miss = draw(st.sampled_from(["load", "cpu", "zero-copy"]))
    return dict(
        timeline=draw(st.sampled_from(["simple", "layered"])),
        link=draw(st.sampled_from(["fifo", "demand-first"])),
        max_inflight_prefetches=draw(st.sampled_from([None, 1, 2, 5])),
        miss_execution=miss,
        max_uploads_per_layer=None if miss == "load" else draw(st.sampled_from([None, 0, 1, 3])),
        overflow=draw(st.sampled_from(["error", "exceed"])),
        prefill=has_prompts and draw(st.booleans()),
    )


@st.composite
def cases(draw, strategy, policy):
    base = draw(traces(max_tokens=24, max_experts=10, max_layers=3, max_k=3, max_sequences=4))
    trace = draw(prompts(base))
    if trace.scores is None:
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        trace = fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths,
                                          scores=rng.random(trace.experts.shape).astype(np.float32))
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    if strategy == "test-fixed-keys":
        params = {"seed": draw(st.integers(0, 1000)), "count": draw(st.integers(0, 8))}
    else:
        params = draw(st.fixed_dictionaries(PARAMS[strategy]))
    mixed = draw(st.booleans())
    model = model_for(L, E, K, dense_bytes_per_layer=draw(st.sampled_from([0, 700])),
                      expert_bytes=draw(st.lists(st.sampled_from([700, 1000, 1300]), min_size=L, max_size=L))
                      if mixed else 1000)
    opts = draw(options(trace.prompt_tokens is not None))
    batch = draw(st.integers(1, 8))
    sched = schedule_for(trace, batch, True, prefill=opts["prefill"])
    ws = sched.max_working_set
    partition = draw(st.sampled_from(["global", "per-layer"]))
    pinned = draw(st.sampled_from([None, 0, 1, 3]))
    pins = 0 if pinned is None else pinned
    least = 1 if opts["overflow"] == "exceed" else ws + pins * (L if partition == "per-layer" else 1)
    if partition == "per-layer" and opts["overflow"] == "error":
        per_layer = [max([0] + [len(sched.R(s, l)[0]) for s in range(sched.num_steps)]) for l in range(L)]
        least = L * (max(per_layer) + pins)
    slots = draw(st.integers(max(1, least), max(1, least) + 6))
    if mixed and draw(st.booleans()):
        cache = dict(cache_bytes=slots * max(model["expert_bytes"]) + draw(st.integers(0, 999)))
    else:
        cache = dict(cache_slots=slots)
    ev = {name: draw(s) for name, s in EVICTION_PARAMS.get(policy, {}).items()}
    kw = dict(
        model=model, hardware=draw(execution_hardware(model)), eviction=policy, batch_size=batch,
        eviction_params=ev or None, cache_partition=partition, pinned=pinned,
        max_prefetch_loads=draw(st.sampled_from([None, 0, 2])), per_step=True, record=True,
        **opts, **cache, **params,
    )
    return trace, kw


def _replay_both(trace, strategy, kw):
    try:
        a = fastsim.replay(trace, strategy, **kw)
    except fastsim.ConfigError:
        with pytest.raises(ValueError):
            replay_reference(trace, strategy, **kw)
        return None, None
    return a, replay_reference(trace, strategy, **kw)


@pytest.mark.parametrize("strategy,policy", PAIRS)
@examples(0.4)
@given(data=st.data())
def test_kernel_equals_reference(strategy, policy, data):
    fixed_keys_strategy()
    trace, kw = data.draw(cases(strategy, policy))
    a, b = _replay_both(trace, strategy, kw)
    if a is None:
        return
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert [w.tolist() for w in a.wanted] == [w.tolist() for w in b.wanted]
    m = a.metrics
    if "cpu_executions" not in m:  # every option at its default: section 3's timeline ran
        return
    assert m["misses"] == m["demand_loads"] + m["cpu_executions"] + m["zero_copy_executions"]
    assert m["prefill_accesses"] + m["decode_accesses"] == m["accesses"]
    if kw["overflow"] == "error":
        assert m["peak_overflow"] == 0


@pytest.mark.parametrize("strategy,policy", [("on-demand", "lru"), ("top-k", "lru"), ("test-fixed-keys", "belady")])
@examples(0.3)
@given(data=st.data())
def test_defaults_through_the_execution_timeline_equal_the_core(strategy, policy, data):
    """With every option at its default, the execution kernel gives the section 3 core's
    results exactly (replays with default options keep running the core)."""
    fixed_keys_strategy()
    trace, kw = data.draw(cases(strategy, policy))
    for name in ("timeline", "link", "max_inflight_prefetches", "miss_execution", "max_uploads_per_layer",
                 "overflow", "prefill"):
        kw.pop(name)
    kw["hardware"] = {k: v for k, v in kw["hardware"].items() if k not in ("host_bytes", "nvme_bytes_per_s")}
    kw.pop("per_step")
    kw.pop("record")
    params = {k: kw.pop(k) for k in list(kw) if k not in (
        "model", "hardware", "eviction", "batch_size", "eviction_params", "cache_partition", "pinned",
        "max_prefetch_loads", "cache_slots", "cache_bytes")}
    try:
        cfg, sched = resolve_config(
            trace, strategy, kw["model"], kw["hardware"], kw.get("cache_slots"), kw.get("cache_bytes"),
            kw["eviction"], kw["batch_size"], kw["max_prefetch_loads"], params,
            eviction_params=kw["eviction_params"], cache_partition=kw["cache_partition"], pinned=kw["pinned"],
        )
    except fastsim.ConfigError:
        return
    assert not cfg.uses_execution
    a = run_config(trace, cfg, sched, per_step=True, record=True)
    b = run_execution_config(trace, cfg, sched, per_step=True, record=True)
    assert {k: b.metrics[k] for k in a.metrics} == a.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert set(b.metrics) == set(a.metrics) | set(EXECUTION_METRICS)


def test_belady_keeps_a_key_needed_before_a_cpu_run_key_is_needed_again():
    """A key of the current position whose miss ran on the CPU is wanted again by the oracle:
    Belady compares it by its next use, not this one, and keeps the resident key needed first."""
    experts = np.array([[[1], [1], [1]], [[0], [0], [0]], [[0], [0], [0]]], np.int16)
    trace = fastsim.Trace.from_arrays(experts, 2, [3], scores=np.full(experts.shape, 0.5, np.float32))
    model = model_for(3, 2, 1, dense_bytes_per_layer=0, expert_bytes=1000)
    hw = dict(name="test-gpu", h2d_bytes_per_s=1e8, transfer_latency_s=0.0, mem_bytes_per_s=1e18, flops_per_s=1e9,
              memory_bytes=10**15, launch_s=0.0, cpu_flops_per_s=1e8, cpu_mem_bytes_per_s=3e9, cpu_overhead_s=0.0)
    kw = dict(model=model, hardware=hw, eviction="belady", cache_slots=1, miss_execution="cpu", record=True)
    a, b = _replay_both(trace, "oracle", kw)
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    # the expert-1 keys run on the CPU; layer 0's expert 0 is prefetched once and kept for step 2
    assert a.metrics["prefetch_loads"] == 1 and a.metrics["hits"] == 1
