"""intelligent's options from the seed's "Advanced Features": ``weight_update=1`` (the seed's
``adaptive_weight_update``) and ``max_transitions=N`` (its ``SparseTransitionMatrix``).

Kernel and reference agree key for key on drawn schedules; the reference's weight update equals
the literal function (``tests/seed_literal_intelligent_variants.py``) bit for bit on the
reference's own components; its sparse rows equal the literal class's on streams without ties,
and on the strategy's own stream up to the first tie at a cut (the seed drops the latest of the
tied entries in dict order, fastsim the highest id).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsim.errors import ConfigError
from fastsim.reference.intelligent import IntelligentLayer, IntelligentReference
from fastsim.strategies import get_strategy
from fastsim.strategies.intelligent import STRATEGY
from fastsim.timeline.schedule import schedule_from_sets

import strategy_helpers
from seed_literal_intelligent_variants import SparseTransitionMatrix, adaptive_weight_update
from test_strategy_intelligent import param_draws, schedules


@st.composite
def variant_draws(draw):
    params = draw(param_draws())
    params["weight_update"] = draw(st.integers(0, 1))
    params["max_transitions"] = draw(st.sampled_from([0, 1, 2, 3, 5, 32]))
    return params


@given(schedules(), variant_draws())
def test_kernel_equals_reference(drawn, params):
    sets, E, K = drawn
    sched = schedule_from_sets(sets, E)
    assert strategy_helpers.kernel_lists(STRATEGY, sched, K, params) == strategy_helpers.reference_lists(
        IntelligentReference, sched, K, params)


def test_sparse_kernel_equals_reference_through_renormalisation():
    # decay 0.01 renormalises every ~75 calls; 3 entries per row of 10 used experts prune often
    rng = np.random.default_rng(11)
    E, K, L = 24, 3, 2
    sets = [[sorted(rng.choice(10, size=K, replace=False).tolist()) for _ in range(L)] for _ in range(400)]
    sched = schedule_from_sets(sets, E)
    params = {"decay_rate": 0.01, "max_transitions": 3, "weight_update": 1}
    assert strategy_helpers.kernel_lists(STRATEGY, sched, K, params) == strategy_helpers.reference_lists(
        IntelligentReference, sched, K, params)


@given(schedules(max_layers=1), variant_draws())
def test_weight_update_equals_seed_function(drawn, params):
    sets, E, K = drawn
    params["weight_update"] = 1
    layer = IntelligentLayer(E, **params)
    history = []
    for s, row in enumerate(sets):
        history.append(row[0])
        layer.predict_experts(history, s)
        literal = SimpleNamespace(fusion_weights=dict(layer.last["weights_before"]))
        adaptive_weight_update(literal, layer.last["components"], row[0], layer.weight_learning_rate)
        assert literal.fusion_weights == layer.fusion_weights


def test_weight_update_by_hand():
    # E = 4, R = {0}, no decay: frequency lists 0 first then 1, 2, 3 (limit 8 > E), recency the
    # same; transition and pattern are empty (error 1). frequency and recency: precision 1/4,
    # recall 1, f1 = 0.4, error 0.6; inverse errors 1/1.1, 1/0.7, 1/0.7, 1/1.1.
    layer = IntelligentLayer(4, weight_update=1, weight_learning_rate=0.5, decay_rate=1.0)
    layer.predict_experts([[0]], 0)
    inv = [1 / 1.1, 1 / 0.7, 1 / 0.7, 1 / 1.1]
    total = sum(inv)
    want = [0.5 * w + 0.5 * (i / total) for w, i in zip((0.4, 0.3, 0.2, 0.1), inv)]
    got = [layer.fusion_weights[c] for c in ("transition", "frequency", "recency", "pattern")]
    assert got == pytest.approx(want, rel=1e-9)  # f1's 1e-10 guard moves the errors by ~1e-10


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(2, 12), st.integers(1, 300))
def test_sparse_rows_equal_seed_class_without_ties(seed, cap, E, updates):
    rng = np.random.default_rng(seed)
    literal = SparseTransitionMatrix(E, max_entries_per_expert=cap)
    ours = IntelligentLayer(E, max_transitions=cap)
    for _ in range(updates):
        a, b = (int(x) for x in rng.integers(0, E, size=2))
        w = float(rng.random()) + 1e-3  # distinct weights: no ties at a cut
        literal.update_transition(a, b, w)
        ours.update_transition(a, b, w)
        kept = literal.transitions[a]
        assert set(kept) == ours.live[a]
        assert all(kept[e] == ours.transition_scaled[a][e] for e in kept)
        assert np.count_nonzero(ours.transition_scaled[a]) <= cap


class _Parted(Exception):
    """The literal class and the reference broke a tie at a cut differently."""


@given(schedules(max_layers=1, max_experts=24, max_steps=40), st.integers(1, 4),
       st.sampled_from([1.0, 0.99, 0.5]))
def test_sparse_rows_equal_seed_class_on_the_strategys_stream(drawn, cap, decay):
    sets, E, K = drawn
    layer = IntelligentLayer(E, max_transitions=cap, decay_rate=decay)
    literal = SparseTransitionMatrix(E, max_entries_per_expert=cap)
    stream = []
    original = layer.update_transition

    def recording(a, b, w):
        stream.append((a, b, w))
        original(a, b, w)
        # the same addition to the literal class, in the same (scaled) units
        before = dict(literal.transitions.get(a, {}))
        literal.update_transition(a, b, w)
        kept = literal.transitions[a]
        if set(kept) != layer.live[a]:
            # only a tie at the cut may part them: what each dropped weighed the same
            dropped = (set(before) | {b}) - set(kept)
            ours_dropped = (set(before) | {b}) - layer.live[a]
            value = {**before, b: before.get(b, 0.0) + w}
            assert {value[e] for e in dropped} == {value[e] for e in ours_dropped}
            raise _Parted

    layer.update_transition = recording
    history = []
    try:
        for s, row in enumerate(sets):
            history.append(row[0])
            layer.predict_experts(history, s)
    except _Parted:
        pass


def test_sparse_row_by_hand():
    # sets {1}, {2}, {1}, {3} without decay: step 3 re-adds (1,2) (2,1) (1,3); row 1 then holds
    # 2 (added at steps 1, 2 and 3) and 3 (once): with one entry per row, 3 goes
    layer = IntelligentLayer(8, max_transitions=1, decay_rate=1.0, adaptation_rate=0.5)
    history = []
    for s, R in enumerate([[1], [2], [1], [3]]):
        history.append(R)
        layer.predict_experts(history, s)
    assert layer.live[1] == {2}
    assert layer.transition_scaled[1][3] == 0.0 and layer.transition_scaled[1][2] == 1.5
    assert layer.row_sum_scaled[1] == 1.5


def test_defaults_keep_the_seed_class():
    d = STRATEGY.defaults()
    assert d["weight_update"] == 0 and d["max_transitions"] == 0


@pytest.mark.parametrize("name,bad", [
    ("weight_update", 2), ("weight_update", 0.5), ("max_transitions", -1), ("max_transitions", 2.5),
])
def test_bad_parameters_rejected(name, bad):
    with pytest.raises(ConfigError, match=name):
        get_strategy("intelligent").resolve({name: bad})
