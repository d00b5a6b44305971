"""The timeline kernel equals the pure-Python reference, and keeps the SPEC's invariants."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import fastsim
from fastsim.reference import replay_reference
from fastsim.replay import schedule_for

from timeline_helpers import (
    accesses_of, fixed_keys_strategy, hardware, hardware_profiles, model_for, model_profiles, traces,
)


def _same(a, b):
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert len(a.wanted) == len(b.wanted)
    for x, y in zip(a.wanted, b.wanted):
        np.testing.assert_array_equal(x, y)


# A prefetch whose transfer ends exactly when its key is demanded is a hit; 1 ns later, late.
# One layer, two experts, two slots; the test strategy at seed 1 wants key 1 at step 0, so key 1
# loads right behind key 0's demand load: over [D, 2D) with D = load_ns. Every step takes
# dense_ns(1) + expert_ns(1) = 5 + 10 = 15 ns, so step 7 (which demands key 1) starts at D + 105:
# D = 105 (5 ns latency) arrives exactly then, D = 106 (6 ns) 1 ns after.
BOUNDARY_TRACE = fastsim.Trace.from_arrays(np.array([[[0]]] * 7 + [[[1]]]), 2, [8])
EXACT_ARRIVAL = hardware(1e10, 5e-9)
ONE_NS_LATE = hardware(1e10, 6e-9)
# A victim whose transfer ends exactly at the moment of the victim search is settled, so a
# prefetch may evict it (found by searching the reference's event record for such an eviction).
SETTLES_AT_G = [
    fastsim.Trace.from_arrays(np.array(rows)[:, :, None], 3, [len(rows)])
    for rows in ([[1, 1], [1, 1], [2, 1], [2, 2], [2, 2], [2, 2], [2, 0]],
                 [[1, 1], [1, 0], [1, 0], [0, 0], [0, 0], [1, 1]])
]


@given(
    trace=traces(),
    batch=st.integers(1, 8),
    extra=st.integers(0, 2000),
    eviction=st.sampled_from(["lru", "belady"]),
    want=st.integers(0, 12),
    seed=st.integers(0, 1000),
    cap=st.sampled_from([None, 0, 1, 3]),
    hw=hardware_profiles(),
    data=st.data(),
)
@example(trace=BOUNDARY_TRACE, batch=1, extra=1, eviction="lru", want=1, seed=1, cap=None, hw=EXACT_ARRIVAL, data=None)
@example(trace=BOUNDARY_TRACE, batch=1, extra=1, eviction="lru", want=1, seed=1, cap=None, hw=ONE_NS_LATE, data=None)
@example(trace=BOUNDARY_TRACE, batch=1, extra=1, eviction="belady", want=1, seed=1, cap=None, hw=EXACT_ARRIVAL, data=None)
@example(trace=SETTLES_AT_G[0], batch=1, extra=3, eviction="lru", want=2, seed=0, cap=None, hw=hardware(1e10, 5e-9), data=None)
@example(trace=SETTLES_AT_G[1], batch=1, extra=3, eviction="lru", want=2, seed=31, cap=None, hw=hardware(1e10, 5e-9), data=None)
def test_kernel_equals_reference(trace, batch, extra, eviction, want, seed, cap, hw, data):
    strategy = fixed_keys_strategy()
    ws = schedule_for(trace, batch, True).max_working_set
    keys = trace.num_layers * trace.num_experts
    # capacities from the working set to every key (and beyond)
    C = ws + extra % (keys - ws + 2)
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    model = model_for(L, E, K) if data is None else data.draw(model_profiles(L, E, K))
    kw = dict(
        model=model, hardware=hw, cache_slots=C, eviction=eviction, batch_size=batch,
        max_prefetch_loads=cap, per_step=True, record=True, seed=seed, count=want,
    )
    a = fastsim.replay(trace, strategy.name, **kw)
    b = replay_reference(trace, strategy.name, **kw)
    _same(a, b)
    m = a.metrics
    # counts against the recorded per-access outcomes and an access count made here
    assert len(a.outcomes) == m["accesses"] == accesses_of(trace, batch)
    assert (a.outcomes == 0).sum() == m["hits"]
    assert (a.outcomes == 1).sum() == m["late"]
    assert (a.outcomes == 2).sum() == m["misses"] == m["demand_loads"]
    assert m["prefetch_useful"] + m["prefetch_wasted"] == m["prefetch_loads"]
    assert m["h2d_bytes"] == (m["demand_loads"] + m["prefetch_loads"]) * 1000
    assert m["peak_resident"] <= C
    assert sum(len(w) for w in a.wanted) >= m["prefetch_loads"]
    if cap is not None:
        assert m["prefetch_loads"] <= cap * m["steps"] * trace.num_layers


@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference])
@pytest.mark.parametrize("gpu, outcome, stall_ns", [(EXACT_ARRIVAL, 0, 0), (ONE_NS_LATE, 1, 1)])
def test_boundary_examples_sit_on_the_boundary(impl, gpu, outcome, stall_ns):
    # the @example inputs above really are the exact-arrival and 1-ns-late cases
    fixed_keys_strategy()
    r = impl(
        BOUNDARY_TRACE, "test-fixed-keys", model=model_for(1, 2, 1), hardware=gpu, cache_slots=2,
        per_step=True, record=True, seed=1, count=1,
    )
    assert r.outcomes.tolist() == [2] + [0] * 6 + [outcome]
    assert r.metrics["prefetch_loads"] == 1 and r.metrics["prefetch_useful"] == 1
    assert round(r.step_stall_s[7] * 1e9) == stall_ns


@given(
    trace=traces(), batch=st.integers(1, 8), eviction=st.sampled_from(["lru", "belady"]), hw=hardware_profiles(),
    extra=st.integers(0, 30), data=st.data(),
)
def test_on_demand_equals_reference(trace, batch, eviction, hw, extra, data):
    # the working set itself, or more (the demand-only kernel has a path for each)
    ws = schedule_for(trace, batch, True).max_working_set
    kw = dict(
        model=data.draw(model_profiles(trace.num_layers, trace.num_experts, trace.top_k)), hardware=hw,
        cache_slots="working-set" if extra == 0 else ws + extra, eviction=eviction, batch_size=batch, per_step=True, record=True,
    )
    _same(fastsim.replay(trace, "on-demand", **kw), replay_reference(trace, "on-demand", **kw))


@given(
    trace=traces(), batch=st.integers(1, 8), extra=st.integers(0, 50), eviction=st.sampled_from(["lru", "belady"]),
    hw=hardware_profiles(),
)
def test_demand_only_path_equals_general_core(trace, batch, extra, eviction, hw):
    # on-demand runs a specialised timeline; a strategy that wants nothing runs the general one
    fixed_keys_strategy()
    C = schedule_for(trace, batch, True).max_working_set + extra
    kw = dict(
        model=model_for(trace.num_layers, trace.num_experts, trace.top_k), hardware=hw,
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
        batch_size=batch, record=True,
    )
    L, E = trace.num_layers, trace.num_experts
    keys = {l * E + int(e) for t in range(trace.num_tokens) for l in range(L) for e in trace.experts[t, l] if e >= 0}
    assert r.metrics["misses"] == (r.outcomes == 2).sum() == len(keys)
    assert (r.outcomes != 2).sum() == accesses_of(trace, batch) - len(keys)


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
