"""Strategy B (oracle): kernel == reference exactly; reference == the seed's class as sets."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.errors import ConfigError
from fastsim.reference import replay_reference
from fastsim.reference.oracle import OracleReference
from fastsim.strategies import get_strategy
from fastsim.strategies import oracle
from fastsim.timeline.schedule import schedule_from_sets

import strategy_helpers
from seed_literal_oracle import OracleStrategy
from strategy_helpers import random_sets


def kernel_lists(sched, top_k, **params):
    return strategy_helpers.kernel_lists(oracle.STRATEGY, sched, top_k, params)


def reference_lists(sched, sets, top_k, **params):
    return strategy_helpers.reference_lists(OracleReference, sched, top_k, params)


dims = st.tuples(
    st.integers(0, 2**32 - 1),  # seed
    st.integers(1, 60),  # steps
    st.integers(1, 4),  # layers
    st.integers(2, 64),  # experts
    st.integers(1, 8),  # top_k
)


def test_hand_example():
    # layer 0 demands {0,1}, {3}, {1}, {1,2}; layer 1 demands {2}, {1,2}, {0}, {}
    sets = [[[0, 1], [2]], [[3], [1, 2]], [[1], [0]], [[1, 2], []]]
    sched = schedule_from_sets(sets, 4)
    E = 4
    got = kernel_lists(sched, 2, lookahead=2)
    want = [
        [3, 1],  # (0,0): step 1 {3}, then step 2 {1}
        [E + 1, E + 2, E + 0],  # (0,1): step 1 {1,2}, then step 2 {0}
        [1, 2],  # (1,0): step 2 {1}, then step 3 adds only 2
        [E + 0],  # (1,1): step 2 {0}, step 3 empty
        [1, 2],  # (2,0): step 3 only (the window stops at the last step)
        [],  # (2,1)
        [],  # (3,0): nothing after the last step
        [],
    ]
    assert got == want
    assert kernel_lists(sched, 2, lookahead=1)[0] == [3]


@given(dims, st.integers(1, 12))
def test_kernel_equals_reference(dim, lookahead):
    seed, steps, layers, E, K = dim
    K = min(K, E)
    sets = random_sets(seed, steps, layers, E, K)
    sched = schedule_from_sets(sets, E)
    assert kernel_lists(sched, K, lookahead=lookahead) == reference_lists(sched, sets, K, lookahead=lookahead)


@given(dims)
def test_reference_matches_seed_class(dim):
    """With the seed's window of 8, the reference predicts the seed's sets at every call."""
    seed, steps, layers, E, K = dim
    K = min(K, E)
    sets = random_sets(seed, min(steps, 30), layers, E, K)
    sched = schedule_from_sets(sets, E)
    ref = OracleReference(layers, E, K, sched)  # default lookahead 8
    seeds = []
    for l in range(layers):
        literal = OracleStrategy(config=None)
        literal.set_future_routing([sets[s][l] for s in range(len(sets))])
        seeds.append(literal)
    for s in range(len(sets)):
        for l in range(layers):
            got = ref.observe(s, l, sets[s][l], [1] * len(sets[s][l]))
            history = [sets[t][l] for t in range(s + 1)]
            want = seeds[l].predict_experts(history, s)
            assert len(got) == len(set(got))
            assert set(got) == {l * E + e for e in want}


def test_seed_returns_nothing_past_the_end():
    sched = schedule_from_sets([[[0]], [[1]]], 2)
    ref = OracleReference(1, 2, 1, sched)
    layer = ref.layers[0]
    assert layer.predict_experts([[0], [1]], 2) == []
    assert layer.predict_experts([[0], [1]], 5) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, float("nan"), float("inf"), "8", True])
def test_bad_lookahead_rejected(bad):
    with pytest.raises(ConfigError, match="lookahead"):
        get_strategy("oracle").resolve({"lookahead": bad})


def test_unknown_parameter_rejected():
    with pytest.raises(ConfigError, match="window"):
        get_strategy("oracle").resolve({"window": 3})


def test_registered_with_seed_default():
    defn = get_strategy("oracle")
    assert defn is oracle.STRATEGY
    assert defn.defaults() == {"lookahead": 8}


MODEL = dict(
    name="tiny", num_layers=2, num_experts=8, top_k=2, expert_bytes=2_000_000,
    dense_bytes_per_layer=1_000_000, expert_flops_per_token=4_000_000, dense_flops_per_token=8_000_000,
)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 40),
    st.integers(1, 3),
    st.integers(2, 16),
    st.sampled_from(["lru", "belady"]),
    st.integers(1, 6),
)
def test_replay_equals_reference_timeline(seed, tokens, batch, slots, eviction, lookahead):
    rng = np.random.default_rng(seed)
    L, E, K = MODEL["num_layers"], MODEL["num_experts"], MODEL["top_k"]
    experts = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)]) for _ in range(tokens)])
    experts[rng.random(experts.shape) < 0.05] = -1
    cut = sorted(rng.integers(0, tokens + 1, size=2).tolist())
    lengths = [cut[0], cut[1] - cut[0], tokens - cut[1]]
    trace = fastsim.Trace.from_arrays(experts.astype(np.int16), num_experts=E, sequence_lengths=lengths)
    slots = max(slots, K * batch)
    kw = dict(strategy="oracle", model=MODEL, hardware="rtx3090", cache_slots=slots, eviction=eviction,
              batch_size=batch, lookahead=lookahead)
    fast = fastsim.replay(trace, record=True, **kw)
    slow = replay_reference(trace, record=True, **kw)
    assert fast.metrics == slow.metrics
    assert np.array_equal(fast.outcomes, slow.outcomes)
    assert [w.tolist() for w in fast.wanted] == [w.tolist() for w in slow.wanted]
