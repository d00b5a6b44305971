"""Strategy E (intelligent): kernel == reference exactly; reference == the literal seed class.

Kernel and reference share the lazy-decay algebra, so their wanted lists must match key for key.
The literal class decays its matrix eagerly and sums rows afresh, so its probabilities differ from
the reference's in the last bits: transition and pattern candidate sets are compared allowing a
difference only for experts whose probability lies within ``REL_TIE`` (relative) of the
threshold, and truncated lists (where the seed uses set order or an unstable argsort) are compared
as sets allowing differences only among experts tied at the cut.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.errors import ConfigError
from fastsim.reference.intelligent import IntelligentLayer, IntelligentReference
from fastsim.strategies import get_strategy
from fastsim.strategies.intelligent import STRATEGY
from fastsim.timeline.schedule import schedule_from_sets

import strategy_helpers
from seed_literal_intelligent import Config, IntelligentStrategy

#: Relative distance from a threshold inside which kernel and literal may disagree.
REL_TIE = 1e-9


@st.composite
def schedules(draw, max_experts=64, max_k=8, max_layers=4, max_steps=60):
    E = draw(st.integers(2, max_experts))
    K = draw(st.integers(1, min(max_k, E)))
    L = draw(st.integers(1, max_layers))
    S = draw(st.integers(1, max_steps))
    # a small pool per layer makes transitions repeat, so probabilities pass the thresholds
    pool = draw(st.integers(K, E))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(S):
        row = []
        for _ in range(L):
            size = int(rng.integers(0, K + 1)) if rng.random() < 0.1 else K
            row.append(sorted(rng.choice(pool, size=size, replace=False).tolist()))
        sets.append(row)
    return sets, E, K


@st.composite
def param_draws(draw):
    params = {}
    if draw(st.booleans()):
        params["adaptation_rate"] = draw(st.sampled_from([0.1, 1.0, 0.37, 1e-3]))
        params["decay_rate"] = draw(st.sampled_from([0.99, 1.0, 0.5, 0.9, 1e-100, 1e-200]))
        params["weight_learning_rate"] = draw(st.sampled_from([0.01, 0.0, 0.3, 2.0]))
        params["max_predictions"] = draw(st.integers(1, 70))
        params["transition_limit"] = draw(st.integers(0, 20))
        params["frequency_limit"] = draw(st.integers(0, 12))
        params["recency_limit"] = draw(st.integers(0, 10))
        params["pattern_limit"] = draw(st.integers(0, 12))
        params["transition_threshold"] = draw(st.sampled_from([0.05, 0.0, 0.2, 0.5]))
        params["pattern_threshold"] = draw(st.sampled_from([0.1, 0.0, 0.02, 0.3]))
        params["history_window"] = draw(st.integers(1, 14))
        params["zero_score_fill"] = draw(st.booleans())
    return params


def reference_lists(sched, K, params):
    return strategy_helpers.reference_lists(IntelligentReference, sched, K, params)


def kernel_lists(sched, K, params):
    return strategy_helpers.kernel_lists(STRATEGY, sched, K, params)


@given(schedules(), param_draws())
def test_kernel_equals_reference(drawn, params):
    sets, E, K = drawn
    sched = schedule_from_sets(sets, E)
    assert kernel_lists(sched, K, params) == reference_lists(sched, K, params)


def test_kernel_equals_reference_through_renormalisation():
    # decay 0.01 drives the scale below the renormalisation bound every ~75 calls
    rng = np.random.default_rng(7)
    E, K, L = 24, 3, 2
    sets = [[sorted(rng.choice(10, size=K, replace=False).tolist()) for _ in range(L)] for _ in range(400)]
    sched = schedule_from_sets(sets, E)
    params = {"decay_rate": 0.01}
    assert kernel_lists(sched, K, params) == reference_lists(sched, K, params)


def test_first_call_by_hand():
    # Step 0, R = {5}, E = 40: frequency 0.99 for expert 5, recency 1 for it, no transitions or
    # patterns. Frequency names 5 then the lowest zero ids 0,1,2,3,4,6,7 (weight 0.3); recency 5
    # then 0..4 (0.2). So 0..5 score 0.5, 6 and 7 score 0.3, the rest 0.
    sched = schedule_from_sets([[[5]]], 40)
    assert kernel_lists(sched, 1, {}) == [[0, 1, 2, 3, 4, 5, 6, 7] + list(range(8, 32))]
    assert kernel_lists(sched, 1, {"zero_score_fill": False}) == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert kernel_lists(sched, 1, {"max_predictions": 3}) == [[0, 1, 2]]


def test_transition_component_by_hand():
    # Layer sets 0: {1}, 1: {2}, 2: {1}. At step 2 (time_step 3) the window re-adds (1,2) twice
    # and (2,1) once in all; from the current expert 1 only expert 2 has probability (1.0), so
    # transition and pattern both predict {2}. Weights before step 2 follow two adaptations;
    # expert 2 gets transition + pattern + frequency + recency weights and leads the list.
    sched = schedule_from_sets([[[1]], [[2]], [[1]]], 40)
    ref = IntelligentReference(1, 40, 1, sched, zero_score_fill=False)
    for s in range(3):
        out = ref.observe(s, 0, sched.R(s, 0)[0].tolist(), [1])
    layer = ref.layers[0]
    assert layer.last["transition_all"] == {2: 1.0}
    assert layer.last["pattern_all"] == {2: 1.0}
    assert out[0] == 2
    assert kernel_lists(sched, 1, {"zero_score_fill": False})[-1] == out


def test_cold_start_never_fires():
    layer = IntelligentLayer(8)
    assert layer.predict_experts([], 0) == list(range(8))  # the seed's cold start, if ever called
    ref = IntelligentReference(1, 8, 1, None)
    ref.observe(0, 0, [3], [1])
    assert ref.layers[0].time_step == 1  # the driver always passes the current set


def test_registry_and_defaults():
    assert get_strategy("intelligent") is STRATEGY
    d = STRATEGY.defaults()
    assert d["adaptation_rate"] == 0.1 and d["decay_rate"] == 0.99
    assert d["weight_learning_rate"] == 0.01 and d["max_predictions"] == 32
    assert (d["transition_limit"], d["frequency_limit"], d["recency_limit"], d["pattern_limit"]) == (12, 8, 6, 8)
    assert d["transition_threshold"] == 0.05 and d["pattern_threshold"] == 0.1
    assert d["history_window"] == 10 and d["zero_score_fill"]


@pytest.mark.parametrize(
    "name,value",
    [
        ("adaptation_rate", 0.0),
        ("adaptation_rate", -1.0),
        ("decay_rate", 0.0),
        ("decay_rate", 1.5),
        ("weight_learning_rate", -0.1),
        ("max_predictions", 0),
        ("max_predictions", 2.5),
        ("transition_limit", -1),
        ("frequency_limit", 1.5),
        ("recency_limit", -2),
        ("pattern_limit", -1),
        ("transition_threshold", 1.0),
        ("transition_threshold", -0.1),
        ("pattern_threshold", 1.0),
        ("history_window", 0),
        ("zero_score_fill", 2),
        ("decay_rate", float("nan")),
        ("no_such_parameter", 1.0),
    ],
)
def test_bad_parameters_rejected(name, value):
    with pytest.raises(ConfigError, match=name):
        STRATEGY.resolve({name: value})
    # and through a replay (the reference trusts its inputs: the kernel side validates them)
    trace = fastsim.Trace.from_arrays(np.zeros((2, 1, 1), np.int16), num_experts=8)
    model = dict(name="m", num_layers=1, num_experts=8, top_k=1, expert_bytes=1000, dense_bytes_per_layer=0,
                 expert_flops_per_token=1.0, dense_flops_per_token=1.0)
    with pytest.raises(ConfigError, match=name):
        fastsim.replay(trace, "intelligent", model=model, cache_slots=8, **{name: value})


# --- the reference against the literal seed class -------------------------------------------


def literal_candidates(lit, current, threshold):
    """The literal class's transition/pattern candidates before truncation, by its own formula."""
    found = {}
    for expert_id in current:
        transitions = lit.transition_matrix[expert_id]
        if transitions.sum() > 0:
            probabilities = transitions / transitions.sum()
            for e in np.where(probabilities > threshold)[0].tolist():
                found[e] = max(found.get(e, 0.0), float(probabilities[e]))
    return found


def assert_candidates_match(ours, theirs, threshold):
    for e in set(ours) ^ set(theirs):
        p = theirs.get(e, ours.get(e))
        assert abs(p - threshold) <= REL_TIE * max(threshold, 1e-300), (e, p, threshold)
    for e in set(ours) & set(theirs):
        assert ours[e] == pytest.approx(theirs[e], rel=REL_TIE)


def assert_same_top(ours, theirs, score):
    """Two top-n lists agree as sets except among experts tied at the cut."""
    assert len(ours) == len(theirs)
    if not ours:
        return
    cut = min(score[e] for e in ours)
    assert min(score[e] for e in theirs) == cut
    for e in set(ours) ^ set(theirs):
        assert score[e] == cut


@given(schedules(max_experts=40, max_k=6, max_layers=1, max_steps=40), st.data())
def test_reference_matches_literal_seed(drawn, data):
    sets, E, K = drawn
    rate = data.draw(st.sampled_from([0.1, 1.0, 0.37]))
    decay = data.draw(st.sampled_from([0.99, 1.0, 0.5, 0.8]))
    lr = data.draw(st.sampled_from([0.01, 0.2]))
    ref = IntelligentLayer(E, adaptation_rate=rate, decay_rate=decay, weight_learning_rate=lr)
    lit = IntelligentStrategy(Config(E))
    lit.adaptation_rate, lit.decay_rate, lit.weight_learning_rate = rate, decay, lr
    history = []
    for s, (R,) in enumerate(sets):
        history.append(list(R))
        # the components may differ where the seed truncates by set order: start each call from
        # the same weights so one step's choice does not carry into the next
        lit.fusion_weights = dict(ref.fusion_weights)
        lit_out = lit.predict_experts(history, s)
        ref_out = ref.predict_experts(history, s)
        last = ref.last

        assert lit.time_step == ref.time_step == s + 1
        assert np.array_equal(lit.expert_frequency, ref.expert_frequency)
        assert np.array_equal(lit.expert_recency, ref.expert_recency)
        np.testing.assert_allclose(ref.transition_matrix, lit.transition_matrix, rtol=REL_TIE, atol=1e-300)

        # transition and pattern candidates before truncation
        want_t = literal_candidates(lit, history[-1], 0.05) if len(history) >= 2 else {}
        want_p = literal_candidates(lit, set(history[-1]), 0.1) if len(history) >= 3 else {}
        assert_candidates_match(last["transition_all"], want_t, 0.05)
        assert_candidates_match(last["pattern_all"], want_p, 0.1)

        # truncated components: same sizes; the literal's picks come from the same candidates
        comps = last["components"]
        lit_t = lit._predict_from_transitions(history)
        lit_p = lit._predict_from_patterns(history)
        if set(want_t) == set(last["transition_all"]):
            assert len(lit_t) == len(comps["transition"]) and set(lit_t) <= set(want_t)
            assert set(comps["transition"]) <= set(want_t)
        if set(want_p) == set(last["pattern_all"]):
            assert len(lit_p) == len(comps["pattern"]) and set(lit_p) <= set(want_p)
        assert_same_top(comps["frequency"], lit._predict_from_frequency(), ref.expert_frequency)
        assert_same_top(comps["recency"], lit._predict_from_recency(), ref.expert_recency)

        # fusion and weight adaptation: the literal's own methods on the reference's components
        probe = copy.deepcopy(lit)
        probe.fusion_weights = dict(last["weights_before"])
        fused = probe._fuse_predictions(copy.deepcopy(comps))
        assert_same_top(ref_out, fused, last["scores"])
        probe._adapt_fusion_weights(comps, history)
        assert probe.fusion_weights == ref.fusion_weights

        # and when the literal picked the same component sets itself, its answer agrees too
        same = (
            set(lit_t) == set(comps["transition"])
            and set(lit_p) == set(comps["pattern"])
            and set(lit._predict_from_frequency()) == set(comps["frequency"])
            and set(lit._predict_from_recency()) == set(comps["recency"])
        )
        if same:
            assert_same_top(ref_out, lit_out, last["scores"])
            assert lit.fusion_weights == ref.fusion_weights


def test_replay_matches_reference_replay():
    import fastsim
    from fastsim.reference import replay_reference

    rng = np.random.default_rng(3)
    T, L, K, E = 60, 2, 2, 16
    experts = np.stack([np.stack([rng.choice(6, size=K, replace=False) for _ in range(L)]) for _ in range(T)])
    trace = fastsim.Trace.from_arrays(experts.astype(np.int32), num_experts=E, sequence_lengths=[25, 35])
    model = dict(
        name="tiny", num_layers=L, num_experts=E, top_k=K, expert_bytes=2_000_000,
        dense_bytes_per_layer=1_000_000, expert_flops_per_token=4_000_000, dense_flops_per_token=8_000_000,
    )
    for batch, kw in ((1, {}), (2, {"zero_score_fill": False, "decay_rate": 0.5})):
        args = dict(strategy="intelligent", model=model, hardware="rtx3090", cache_slots=12, batch_size=batch, **kw)
        got = fastsim.replay(trace, record=True, **args)
        want = replay_reference(trace, record=True, **args)
        assert got.metrics == want.metrics
        assert [w.tolist() for w in got.wanted] == [list(w) for w in want.wanted]
