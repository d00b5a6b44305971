"""The timeline kernel equals the pure-Python reference, and keeps the SPEC's invariants."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.reference import replay_reference
from fastsim.replay import schedule_for

from timeline_helpers import fixed_keys_strategy, hardware, model_for, traces


def _same(a, b):
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert len(a.wanted) == len(b.wanted)
    for x, y in zip(a.wanted, b.wanted):
        np.testing.assert_array_equal(x, y)


@given(
    trace=traces(),
    batch=st.integers(1, 8),
    extra=st.integers(0, 2000),
    eviction=st.sampled_from(["lru", "belady"]),
    want=st.integers(0, 12),
    seed=st.integers(0, 1000),
    cap=st.sampled_from([None, 0, 1, 3]),
    h2d=st.sampled_from([1e8, 1e9, 1e10, 1e12]),
    latency=st.sampled_from([0.0, 3e-8]),
)
def test_kernel_equals_reference(trace, batch, extra, eviction, want, seed, cap, h2d, latency):
    strategy = fixed_keys_strategy()
    ws = schedule_for(trace, batch, True).max_working_set
    keys = trace.num_layers * trace.num_experts
    # capacities from the working set to every key (and beyond)
    C = ws + extra % (keys - ws + 2)
    kw = dict(
        model=model_for(trace.num_layers, trace.num_experts, trace.top_k),
        hardware=hardware(h2d, latency), cache_slots=C, eviction=eviction, batch_size=batch,
        max_prefetch_loads=cap, per_step=True, record=True, seed=seed, count=want,
    )
    a = fastsim.replay(trace, strategy.name, **kw)
    b = replay_reference(trace, strategy.name, **kw)
    _same(a, b)
    m = a.metrics
    assert m["hits"] + m["late"] + m["misses"] == m["accesses"]
    assert m["prefetch_useful"] + m["prefetch_wasted"] == m["prefetch_loads"]
    assert m["h2d_bytes"] == (m["demand_loads"] + m["prefetch_loads"]) * 1000
    assert m["peak_resident"] <= C
    if cap is not None:
        assert m["prefetch_loads"] <= cap * m["steps"] * trace.num_layers


@given(trace=traces(), batch=st.integers(1, 8), eviction=st.sampled_from(["lru", "belady"]))
def test_on_demand_equals_reference(trace, batch, eviction):
    kw = dict(
        model=model_for(trace.num_layers, trace.num_experts, trace.top_k), hardware=hardware(1e9, 1e-8),
        cache_slots="working-set", eviction=eviction, batch_size=batch, per_step=True, record=True,
    )
    _same(fastsim.replay(trace, "on-demand", **kw), replay_reference(trace, "on-demand", **kw))


@given(trace=traces(), batch=st.integers(1, 8), extra=st.integers(0, 50), eviction=st.sampled_from(["lru", "belady"]))
def test_demand_only_path_equals_general_core(trace, batch, extra, eviction):
    # on-demand runs a specialised timeline; a strategy that wants nothing runs the general one
    fixed_keys_strategy()
    C = schedule_for(trace, batch, True).max_working_set + extra
    kw = dict(
        model=model_for(trace.num_layers, trace.num_experts, trace.top_k), hardware=hardware(1e9, 2e-8),
        cache_slots=C, eviction=eviction, batch_size=batch, per_step=True, record=True,
    )
    _same(fastsim.replay(trace, "on-demand", **kw), fastsim.replay(trace, "test-fixed-keys", count=0, **kw))


@given(trace=traces(), batch=st.integers(1, 8), want=st.integers(0, 8), eviction=st.sampled_from(["lru", "belady"]))
def test_infinite_bandwidth_never_stalls(trace, batch, want, eviction):
    fixed_keys_strategy()
    ws = schedule_for(trace, batch, True).max_working_set
    r = fastsim.replay(
        trace, "test-fixed-keys", model=model_for(trace.num_layers, trace.num_experts, trace.top_k),
        hardware=hardware(float("inf"), 0.0), cache_slots=ws, eviction=eviction, batch_size=batch,
        seed=1, count=want,
    )
    assert r.metrics["stall_s"] == 0
    assert r.metrics["late"] == 0


@given(trace=traces(), batch=st.integers(1, 8), eviction=st.sampled_from(["lru", "belady"]))
def test_cache_of_every_key_misses_each_key_once(trace, batch, eviction):
    r = fastsim.replay(
        trace, "on-demand", model=model_for(trace.num_layers, trace.num_experts, trace.top_k),
        hardware=hardware(), cache_slots=trace.num_layers * trace.num_experts, eviction=eviction,
        batch_size=batch,
    )
    L, E = trace.num_layers, trace.num_experts
    keys = {l * E + int(e) for t in range(trace.num_tokens) for l in range(L) for e in trace.experts[t, l] if e >= 0}
    assert r.metrics["misses"] == len(keys)
    assert r.metrics["hits"] + r.metrics["late"] == r.metrics["accesses"] - len(keys)


def test_tokens_and_steps_follow_continuous_batching():
    # sequences of 3, 0, 5 and 1 tokens on two slots: slot 0 runs seq 0 then seq 3, slot 1 seq 2
    experts = np.zeros((9, 1, 1), np.int64)
    trace = fastsim.Trace.from_arrays(experts, 4, [3, 0, 5, 1])
    r = fastsim.replay(trace, "on-demand", model=model_for(1, 4, 1), hardware=hardware(), batch_size=2)
    assert r.metrics["tokens"] == 9
    assert r.metrics["steps"] == 5
    sched = schedule_for(trace, 2, False)
    assert sched.active.tolist() == [2, 2, 2, 2, 1]


def test_empty_trace_and_all_gaps():
    empty = fastsim.Trace.from_arrays(np.zeros((0, 2, 2), np.int64), 4)
    r = fastsim.replay(empty, "on-demand", model=model_for(2, 4, 2), hardware=hardware())
    assert r.metrics["accesses"] == 0 and r.metrics["hit_rate"] == 0.0 and r.metrics["tokens_per_s"] == 0.0
    gaps = fastsim.Trace.from_arrays(np.full((3, 2, 2), -1), 4)
    r = fastsim.replay(gaps, "on-demand", model=model_for(2, 4, 2), hardware=hardware())
    assert r.metrics["tokens"] == 3 and r.metrics["steps"] == 3 and r.metrics["accesses"] == 0
    assert r.metrics["total_time_s"] > 0  # dense work still runs
