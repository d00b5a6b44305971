"""Strategy C, multi-look: kernel == reference (exact lists), reference == the seed's class (sets)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsim.errors import ConfigError
from fastsim.reference.multi_look import MultiLookReference
from fastsim.strategies import get_strategy
from fastsim.strategies.multi_look import STRATEGY
from fastsim.timeline.schedule import schedule_from_sets

import strategy_helpers
from seed_literal_multi_look import MultiLookStrategy


@st.composite
def schedules(draw, max_steps=60, max_experts=40):
    num_experts = draw(st.integers(2, max_experts))
    num_layers = draw(st.integers(1, 4))
    top = draw(st.integers(1, min(8, num_experts)))
    steps = draw(st.integers(0, max_steps))
    # a few hot experts make patterns repeat, so thresholds are crossed
    pool = draw(st.integers(1, num_experts))
    sets = [
        [sorted(draw(st.sets(st.integers(0, pool - 1), max_size=min(top, pool)))) for _ in range(num_layers)]
        for _ in range(steps)
    ]
    return sets, num_experts, num_layers


param_draws = st.fixed_dictionaries(
    {},
    optional={
        "pattern_length": st.integers(1, 4),
        "lookahead_steps": st.integers(1, 6),
        "min_pattern_frequency": st.sampled_from([0, 0.5, 1, 2, 3, 4, 7.5, 12]),
        "max_predictions": st.integers(1, 40),
        "max_patterns": st.sampled_from([1, 2, 5, 1 << 20]),
        "max_successors": st.sampled_from([1, 3, 10, 1 << 22]),
        "temporal_period": st.sampled_from([1, 3, 7, 64]),
        "temporal_window": st.sampled_from([1, 2, 10, 13]),
    },
)


def kernel_lists(sets, num_experts, num_layers, params):
    if not sets:
        return []
    return strategy_helpers.kernel_lists(STRATEGY, schedule_from_sets(sets, num_experts), 1, params)


def reference_lists(sets, num_experts, num_layers, params):
    if not sets:
        return []
    return strategy_helpers.reference_lists(MultiLookReference, schedule_from_sets(sets, num_experts), 1, params)


@given(schedules(), param_draws)
def test_kernel_equals_reference(sched, params):
    sets, num_experts, num_layers = sched
    assert kernel_lists(sets, num_experts, num_layers, params) == reference_lists(sets, num_experts, num_layers, params)


def test_kernel_equals_reference_with_index_growth():
    # more than a thousand distinct patterns: the kernel's index doubles several times, and the
    # full table (max_patterns) is reached part way through
    rng = np.random.default_rng(7)
    sets = [[[int(rng.integers(0, 48))], sorted(rng.choice(12, 2, replace=False).tolist())] for _ in range(1400)]
    for params in ({}, {"max_patterns": 700, "max_successors": 900, "min_pattern_frequency": 5}):
        assert kernel_lists(sets, 48, 2, params) == reference_lists(sets, 48, 2, params)


def literal_sets(sets, num_layers):
    """The seed class's predicted sets before truncation, per (step, layer)."""
    layers = [MultiLookStrategy(None) for _ in range(num_layers)]
    histories = [[] for _ in range(num_layers)]
    result = []
    for s, row in enumerate(sets):
        for l in range(num_layers):
            histories[l].append(list(row[l]))
            seed, h = layers[l], histories[l]
            returned = seed.predict_experts(h, s)
            if len(h) < seed.pattern_length:
                full = set()
            else:
                # the component predictors only read state, so calling them again after
                # predict_experts gives its set before the [:32] cut
                full = set().union(
                    seed._predict_from_sequences(h),
                    seed._predict_from_cooccurrence(h),
                    seed._predict_from_temporal(s),
                    seed._predict_from_chains(h),
                )
            assert set(returned) <= full and len(returned) == min(32, len(full))
            result.append(full)
    return result


@given(schedules(max_steps=45))
def test_reference_equals_seed_class(sched):
    sets, num_experts, num_layers = sched
    ref = MultiLookReference(num_layers, num_experts, 1, None, max_predictions=num_experts + 1)
    ours = [set(e - l * num_experts for e in ref.observe(s, l, sets[s][l], None))
            for s in range(len(sets)) for l in range(num_layers)]
    assert ours == literal_sets(sets, num_layers)


def test_recount_algebra_by_hand():
    # history A B A B A ... with A = {1}, B = {2}; pattern (A, B, A) starts at steps 0, 2, 4, ...
    sets = [[[1]] if s % 2 == 0 else [[2]] for s in range(8)]
    seed = MultiLookStrategy(None)
    history = []
    for s in range(8):
        history.append(sets[s][0])
        seed.predict_experts(history, s)
    # at H = 8 occurrences start at 0..4 (next set at i + 3 <= 7); each was counted H - i - 3 times
    aba = seed.sequence_patterns[((1,), (2,), (1,))]
    assert aba["frequency"] == (8 - 0 - 3) + (8 - 2 - 3) + (8 - 4 - 3)
    assert aba["next_experts"] == {2: 9}
    bab = seed.sequence_patterns[((2,), (1,), (2,))]
    assert bab["frequency"] == (8 - 1 - 3) + (8 - 3 - 3)
    # the transition 0 -> 1 is never counted (the call at H = 2 returns before updating)
    assert seed.expert_cooccurrence == {1: {2: 3}, 2: {1: 3}}
    assert seed.transition_chains == {}
    # at step 7 the current pattern (B, A, B) has frequency 6 >= 3 and predicts its next expert 1;
    # co-occurrence 2 -> 1 has count 3 and predicts 1; position 7 got no sets (for H < 10 set j goes
    # to (j + H - 10) % 64, which is never 7 for j < H <= 8): the kernel predicts exactly [1]
    lists = kernel_lists(sets, 4, 1, {})
    assert lists[:3] == [[], [], []]
    assert lists[7] == [1]


def test_temporal_positions_wrap_negative():
    # with the window longer than the history, positions start below zero and wrap like Python's %
    sets = [[[s]] for s in range(5)]
    params = {"pattern_length": 1, "min_pattern_frequency": 1, "temporal_period": 4, "temporal_window": 10}
    ref = MultiLookReference(1, 8, 1, None, **params)
    for s in range(5):
        ref.observe(s, 0, sets[s][0], None)
    temporal = ref.layers[0].temporal_patterns
    # call at H = 1 puts set 0 at (1 - 10) % 4 = 3; at H = 2 sets 0, 1 at 0, 1; ...
    assert 0 in temporal[3] and temporal[3][0] >= 1
    assert kernel_lists(sets, 8, 1, params) == reference_lists(sets, 8, 1, params)


def test_lookahead_steps_has_no_effect():
    rng = np.random.default_rng(3)
    sets = [[sorted(rng.choice(6, 2, replace=False).tolist())] for _ in range(80)]
    base = kernel_lists(sets, 6, 1, {})
    assert any(base)
    assert kernel_lists(sets, 6, 1, {"lookahead_steps": 17}) == base


@pytest.mark.parametrize(
    "name, value",
    [
        ("pattern_length", 0),
        ("pattern_length", 2.5),
        ("lookahead_steps", 0),
        ("min_pattern_frequency", -1),
        ("min_pattern_frequency", float("nan")),
        ("max_predictions", 0),
        ("max_patterns", 0),
        ("max_successors", 0),
        ("temporal_period", 0),
        ("temporal_window", 0),
        ("max_patterns", 1 << 40),
    ],
)
def test_bad_parameters_rejected(name, value):
    with pytest.raises(ConfigError, match=name):
        STRATEGY.resolve({name: value})


def test_registered():
    assert get_strategy("multi-look") is STRATEGY
    assert STRATEGY.defaults()["pattern_length"] == 3
    assert STRATEGY.defaults()["max_predictions"] == 32
