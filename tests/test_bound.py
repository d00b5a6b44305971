"""The lower bound (SPEC section 8, docs/bounds.md): the kernel equals its pure-Python reference,
it never exceeds any replay's total time (every strategy, eviction, partition, pins, prefetch
cap), it beats the sum of compute times, and it gives the hand-worked numbers of the docs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import fastsim
from fastsim.bound import bound
from fastsim.reference.bound import bound_reference
from fastsim.replay import schedule_for

from hypothesis_budget import examples
from test_strategies_replay import PARAMS
from timeline_helpers import fixed_keys_strategy, hardware, hardware_profiles, model_for, traces

STRATEGIES = ["on-demand", "oracle", "multi-look", "top-k", "intelligent", "test-fixed-keys"]
POLICIES = ["lru", "belady", "fifo", "lfu", "lfru", "activation-aware"]


@st.composite
def configurations(draw, max_tokens=24, max_experts=8, max_layers=3, max_k=3):
    """A trace with a cache organisation that replays: partition, pins, per-layer sizes, batch
    size and batching (continuous slots, or one step per recorded pass)."""
    trace = draw(traces(max_tokens=max_tokens, max_experts=max_experts, max_layers=max_layers, max_k=max_k))
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    if draw(st.booleans()):
        model = model_for(L, E, K)
    else:
        model = model_for(L, E, K, expert_bytes=draw(st.lists(st.sampled_from([700, 1000, 1300]), min_size=L, max_size=L)))
    batching = draw(st.sampled_from(["continuous", "recorded"]))
    batch = 1 if batching == "recorded" else draw(st.integers(1, 4))
    sched = schedule_for(trace, batch, False, batching=batching)
    partition = draw(st.sampled_from(["global", "per-layer", "list"]))
    pinned = draw(st.sampled_from([None, 0, 1, 2, "keys"]))
    if pinned == "keys":
        pinned = sorted(set(draw(st.lists(st.integers(0, L * E - 1), max_size=3))))
    n_pins = 0 if pinned is None else (pinned if isinstance(pinned, int) else len(pinned))
    sizes = np.diff(sched.r_ptr).reshape(-1, L).max(axis=0) if sched.num_steps else np.zeros(L, int)
    if partition == "global":
        slots = int(sched.max_working_set) + n_pins + draw(st.integers(0, 6))
    else:
        per = [int(v) + n_pins + draw(st.integers(0, 3)) for v in sizes]
        slots = sum(per)
        if partition == "per-layer":
            per = [slots // L + (1 if l < slots % L else 0) for l in range(L)]
            assume(all(p >= int(v) + n_pins for p, v in zip(per, sizes)))
        else:
            partition = per
    return trace, model, batch, slots, partition, pinned, batching


def _bound_or_skip(trace, model, hw, slots, batch, partition, pinned, batching, horizon=64):
    try:
        return bound(trace, model, hw, slots, batch, cache_partition=partition, pinned=pinned, batching=batching,
                     horizon=horizon)
    except fastsim.ConfigError:
        assume(False)  # pins that crowd a partition below its working set


@examples(0.5)
@given(configurations(), hardware_profiles(), st.sampled_from([0, 1, 2, 5, 64, None]))
def test_kernel_equals_reference(case, hw, horizon):
    trace, model, batch, slots, partition, pinned, batching = case
    got = _bound_or_skip(trace, model, hw, slots, batch, partition, pinned, batching, horizon)
    want = bound_reference(trace, model, hw, slots, batch, cache_partition=partition, pinned=pinned, horizon=horizon,
                           batching=batching)
    assert got.config["batching"] == batching
    assert got.total_ns == want


@examples(0.15)
@given(configurations(max_tokens=16), hardware_profiles(), st.data())
def test_bound_never_exceeds_a_replay(case, hw, data):
    """Every strategy (one that wants arbitrary keys of any layer included) x every policy, with
    and without a cap on prefetch loads, at the configuration's own partition, pins and batching."""
    trace, model, batch, slots, partition, pinned, batching = case
    b = _bound_or_skip(trace, model, hw, slots, batch, partition, pinned, batching)
    fixed_keys_strategy()
    strategy = data.draw(st.sampled_from(STRATEGIES))
    if strategy == "test-fixed-keys":
        params = {"seed": data.draw(st.integers(0, 1000)), "count": data.draw(st.integers(0, 10))}
    else:
        params = data.draw(st.fixed_dictionaries(PARAMS[strategy]))
    cap = data.draw(st.sampled_from([None, 0, 1, 3]))
    for policy in POLICIES:
        r = fastsim.replay(trace, strategy, model, hw, cache_slots=slots, eviction=policy, batch_size=batch,
                           cache_partition=partition, pinned=pinned, max_prefetch_loads=cap, batching=batching,
                           **params)
        assert b.total_ns <= round(r.metrics["total_time_s"] * 1e9), (strategy, policy)


@examples(0.3)
@given(configurations(), hardware_profiles())
def test_bound_beats_the_sum_of_compute(case, hw):
    """Always at least the compute; strictly more when the cache holds fewer keys than the trace
    demands and the first position must load (its keys cannot be resident at time 0)."""
    trace, model, batch, slots, partition, pinned, batching = case
    b = _bound_or_skip(trace, model, hw, slots, batch, partition, pinned, batching)
    assert b.total_time_s >= b.compute_s - 1e-15
    sched = schedule_for(trace, batch, False, batching=batching)
    first = sched.R(0, 0)[0] if sched.num_steps else []
    pins = set(b.config["pinned"])
    distinct = {l * trace.num_experts + int(e) for s in range(sched.num_steps) for l in range(trace.num_layers)
                for e in sched.R(s, l)[0]} - pins
    if any(int(e) not in pins for e in first) and slots - len(pins) < len(distinct):
        assert b.total_ns > round(b.compute_s * 1e9)


def _trace(keys, E):
    return fastsim.Trace.from_arrays(np.array(keys, np.int64).reshape(-1, 1, 1), E, None)


# docs/bounds.md, "Worked examples": loads of 100 ns, each position computes 15 ns
GOLDEN = [
    (1, 360, 360),  # C = 1: no slot for a prefetch; the windows make the bound exact
    (2, 315, 315),  # C = 2: the fewest loads from the empty cache decide
]


@pytest.mark.parametrize("slots, bound_ns, oracle2_ns", GOLDEN)
def test_worked_examples(slots, bound_ns, oracle2_ns):
    trace = _trace([0, 1, 1, 2], 3)
    model, hw = model_for(1, 3, 1), hardware()
    b = bound(trace, model, hw, slots, 1)
    assert b.total_ns == bound_ns
    assert b.total_ns == bound_reference(trace, model, hw, slots, 1)
    assert round(b.compute_s * 1e9) == 60
    r = fastsim.replay(trace, "oracle", model, hw, cache_slots=slots, lookahead=2, eviction="belady")
    assert round(r.metrics["total_time_s"] * 1e9) == oracle2_ns


def test_worked_example_windows():
    """C = 1: the prefix floor alone gives 300 + 15; each window adds a load after a compute."""
    trace = _trace([0, 1, 1, 2], 3)
    model, hw = model_for(1, 3, 1), hardware()
    assert bound(trace, model, hw, 1, 1, horizon=0).total_ns == 315
    assert bound(trace, model, hw, 1, 1, horizon=1).total_ns == 360
    assert bound(trace, model, hw, 1, 1).load_floor_s == pytest.approx(300e-9)


def test_pins_and_partitions_bound_their_own_cache():
    """A pinned key is never loaded: pinning the only key leaves the compute alone."""
    trace = _trace([0, 0, 0], 2)
    model, hw = model_for(1, 2, 1), hardware()
    assert bound(trace, model, hw, 1, 1, pinned=[0]).total_ns == 45
    assert bound(trace, model, hw, 1, 1).total_ns == 145
    two = fastsim.Trace.from_arrays(np.array([[[0], [1]], [[1], [0]]]), 2, None)
    m2 = model_for(2, 2, 1)
    per_layer = bound(two, m2, hw, 2, 1, cache_partition="per-layer")
    assert per_layer.config["partition_sizes"] == [1, 1]
    assert per_layer.total_ns >= bound(two, m2, hw, 2, 1).total_ns


def test_empty_trace():
    trace = fastsim.Trace.from_arrays(np.zeros((0, 1, 1), np.int64), 2, None)
    b = bound(trace, model_for(1, 2, 1), hardware(), 1, 1)
    assert b.total_ns == 0 and b.load_floor_s == 0


def test_callable_package_and_float():
    trace = _trace([0, 1], 2)
    b = fastsim.bound(trace, model_for(1, 2, 1), hardware(), 1, 1)
    assert float(b) == b.total_time_s == pytest.approx(b.total_ns / 1e9)


def test_reference_shares_no_code_with_the_bound():
    """The bound's reference reaches neither the bound's kernels nor the kernel side, and the
    bound reaches no reference (import statements, followed through fastsim's modules)."""
    from test_reference_independence import KERNEL, closure, under

    reached = closure(["fastsim.reference.bound"])
    assert "fastsim.reference.timeline" in reached  # the walk does follow imports
    assert not {m for m in reached if under(m, KERNEL + ("fastsim.bound",))}
    for mod in ("fastsim.bound", "fastsim.bound.api", "fastsim.bound.kernels", "fastsim.bound.exact",
                "fastsim.bound.sweep_columns"):
        assert not {m for m in closure([mod]) if under(m, ("fastsim.reference",))}, mod
