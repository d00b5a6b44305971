"""Today's prefetchers (noisy-oracle, pre-gated, cross-layer, moe-infinity, fine-moe, hybrimoe):
full kernel replays equal the reference timeline driving each reference strategy (metrics, every
access outcome, per-step times, every wanted list), with and without router scores; noisy-oracle's
limits equal oracle and on-demand; its noise reaches the recall and precision asked for; hand-worked
lists; bad parameters rejected.

Every parameter is drawn, small enough that libraries and stores fill and replace, thresholds both
pass and fail, and windows reach the end of the schedule.
"""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.reference import replay_reference
from fastsim.replay import schedule_for
from fastsim.strategies import get_strategy, list_strategies
from fastsim.timeline.schedule import schedule_from_sets

from hypothesis_budget import examples
from strategy_helpers import kernel_lists, random_sets
from timeline_helpers import hardware_profiles, model_for, model_profiles, traces

TODAY = ["noisy-oracle", "pre-gated", "cross-layer", "moe-infinity", "fine-moe", "hybrimoe"]

UNIT = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])
PARAMS = {
    "noisy-oracle": {
        "recall": UNIT, "precision": st.sampled_from([0.05, 0.3, 0.5, 0.9, 1.0]), "lookahead": st.integers(1, 6),
        "layer_distance": st.integers(0, 4), "seed": st.integers(0, 2**40),
    },
    "pre-gated": {"recall": UNIT, "seed": st.integers(0, 2**40)},
    "cross-layer": {"threshold": st.sampled_from([0.0, 0.2, 0.5, 1.0]), "depth": st.integers(1, 3)},
    # library: a file of the trace's shape, written by draw_library
    "moe-infinity": {"capacity": st.integers(1, 4), "max_predictions": st.integers(1, 40), "library": st.none()},
    "fine-moe": {"capacity": st.integers(1, 5), "prefetch_distance": st.integers(1, 3), "min_experts": st.integers(0, 4)},
    "hybrimoe": {"alpha": st.sampled_from([0.1, 0.5, 1.0]), "prefetch_size": st.integers(0, 5)},
}


def test_every_prefetcher_is_registered():
    assert set(TODAY) <= set(list_strategies())


@pytest.mark.parametrize("name", TODAY)
def test_every_parameter_is_drawn(name):
    # a parameter added to a strategy must be added to the draws above
    assert set(PARAMS[name]) == set(get_strategy(name).param_names())


def with_scores(trace, seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(trace.experts.shape).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = 0.5  # exact ties between weights
    scores[rng.random(scores.shape) < 0.05] = 0.0  # and zero weights
    return fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths, scores=scores)


def draw_library(data, trace, params, folder) -> dict:
    """``params`` with, half the time, a ``library`` file of 1 .. capacity matrices of the
    trace's shape (sparse counts, none all zero), as MoE-Infinity saves its EAM collection."""
    if not data.draw(st.booleans()):
        return params
    n = data.draw(st.integers(1, int(params["capacity"])))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    shape = (n, trace.num_layers, trace.num_experts)
    counts = rng.integers(0, 4, shape) * (rng.random(shape) < 0.3)
    counts[np.arange(n), rng.integers(0, shape[1], n), rng.integers(0, shape[2], n)] += 1
    path = Path(folder) / f"library-{data.draw(st.integers(0, 10**9))}.npy"
    np.save(path, counts.astype(data.draw(st.sampled_from([np.int64, np.float32]))))
    return {**params, "library": str(path)}


def replay_kwargs(data, trace, params):
    batch = data.draw(st.integers(1, 4))
    ws = schedule_for(trace, batch, True).max_working_set
    return dict(
        model=data.draw(model_profiles(trace.num_layers, trace.num_experts, trace.top_k)),
        hardware=data.draw(hardware_profiles()),
        cache_slots=ws + data.draw(st.integers(0, trace.num_layers * trace.num_experts)),
        eviction=data.draw(st.sampled_from(["lru", "belady"])), batch_size=batch,
        max_prefetch_loads=data.draw(st.sampled_from([None, 0, 2])), per_step=True, record=True, **params,
    )


def assert_same(a, b):
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert [list(map(int, w)) for w in a.wanted] == [list(map(int, w)) for w in b.wanted]


@pytest.mark.parametrize("name", TODAY)
@examples(0.3)
@given(data=st.data(), trace=traces(max_tokens=48, max_experts=30, max_layers=4, max_k=4, max_sequences=4))
def test_kernel_replay_equals_reference_replay(name, data, trace):
    if data.draw(st.booleans()):
        trace = with_scores(trace, data.draw(st.integers(0, 2**31)))
    params = data.draw(st.fixed_dictionaries(PARAMS[name]))
    with tempfile.TemporaryDirectory() as folder:
        if name == "moe-infinity":
            params = draw_library(data, trace, params, folder)
        kw = replay_kwargs(data, trace, params)
        assert_same(fastsim.replay(trace, name, **kw), replay_reference(trace, name, **kw))


@examples(0.3)
@given(data=st.data(), trace=traces(max_tokens=40, max_experts=30, max_layers=4, max_k=4, max_sequences=3))
def test_perfect_noisy_oracle_is_oracle(data, trace):
    lookahead = data.draw(st.integers(1, 8))
    kw = replay_kwargs(data, trace, {})
    a = fastsim.replay(trace, "noisy-oracle", recall=1.0, precision=1.0, lookahead=lookahead, layer_distance=0,
                       seed=data.draw(st.integers(0, 2**40)), **kw)
    assert_same(a, fastsim.replay(trace, "oracle", lookahead=lookahead, **kw))


@examples(0.3)
@given(data=st.data(), trace=traces(max_tokens=40, max_experts=30, max_layers=4, max_k=4, max_sequences=3))
def test_blind_noisy_oracle_is_on_demand(data, trace):
    kw = replay_kwargs(data, trace, {})
    kw.update(per_step=False, record=False)
    a = fastsim.replay(trace, "noisy-oracle", recall=0.0, precision=1.0, lookahead=data.draw(st.integers(1, 8)),
                       layer_distance=data.draw(st.integers(0, 3)), seed=data.draw(st.integers(0, 2**40)), **kw)
    assert a.metrics == fastsim.replay(trace, "on-demand", **kw).metrics
    assert a.metrics["prefetch_loads"] == 0


@pytest.mark.parametrize("recall, precision", [(0.8, 1.0), (0.5, 0.5), (1.0, 0.25), (0.3, 0.75)])
def test_noise_reaches_the_recall_and_precision_asked_for(recall, precision):
    E, L = 128, 2
    sched = schedule_from_sets(random_sets(3, 400, L, E, 6), E)
    defn = get_strategy("noisy-oracle")
    params = dict(recall=recall, precision=precision, lookahead=3, layer_distance=1, seed=11)
    truth_total = kept_true = emitted = 0
    lists = kernel_lists(defn, sched, 6, params)
    for p, wanted in enumerate(lists):
        s, l = divmod(p, L)
        target = (l + 1) % L
        first = s + 1 if target <= l else s
        truth = {target * E + e for step in range(first, min(first + 3, sched.num_steps)) for e in sched.R(step, target)[0]}
        assert len(wanted) == len(set(wanted))
        assert all(k // E == target for k in wanted)
        truth_total += len(truth)
        kept_true += len(truth & set(wanted))
        emitted += len(wanted)
    assert abs(kept_true / truth_total - recall) < 0.03
    assert abs(kept_true / emitted - precision) < 0.03


def test_noise_depends_on_the_seed_and_only_on_it():
    E = 20
    sched = schedule_from_sets(random_sets(5, 60, 2, E, 4), E)
    defn = get_strategy("noisy-oracle")
    one = kernel_lists(defn, sched, 4, dict(recall=0.5, precision=0.5, seed=1))
    assert one == kernel_lists(defn, sched, 4, dict(recall=0.5, precision=0.5, seed=1))
    assert one != kernel_lists(defn, sched, 4, dict(recall=0.5, precision=0.5, seed=2))


def test_pre_gated_at_full_recall_wants_the_next_layer_most_tokens_first():
    sets = [[[1, 2], [0, 3, 4]], [[2], [4]]]
    counts = [[[1, 1], [1, 3, 2]], [[1], [1]]]
    sched = schedule_from_sets(sets, 5, counts=counts)
    lists = kernel_lists(get_strategy("pre-gated"), sched, 3, {})
    # (0, 0) -> layer 1 of step 0 by tokens: 3 (3 tokens), 4 (2), 0 (1); keys 5 + e; last layer: nothing
    assert lists == [[8, 9, 5], [], [9], []]


def test_cross_layer_hand_worked():
    # layer 0 -> layer 1: after steps 0-1, P(1-of-layer-1 | 0) = 2/2, P(2 | 0) = 1/2, P(3 | 1) = 1/1
    sets = [[[0], [1]], [[0, 1], [1, 2, 3]], [[0, 1], [2]]]
    sched = schedule_from_sets(sets, 4)
    lists = kernel_lists(get_strategy("cross-layer"), sched, 3, {"threshold": 0.5, "depth": 1})
    assert lists[0] == [] and lists[1] == []  # no step before step 0
    assert lists[2] == [5]  # step 1, R = {0, 1}: N(0) = 1, N(1) = 0 -> P(1) = 1
    # step 2, R = {0, 1}: P(1) = max(2/2, 1/1) = 1, P(2) = max(1/2, 1/1) = 1, P(3) = max(1/2, 1/1) = 1
    assert lists[4] == [5, 6, 7]


def test_hybrimoe_hand_worked():
    # one token per step, scores given: layer 1's S after step 0 = 0.5 * w
    experts = np.array([[[0, 1], [2, 3]], [[0, 2], [1, 3]]], np.int16)
    scores = np.array([[[0.6, 0.4], [0.3, 0.7]], [[0.5, 0.5], [0.9, 0.1]]], np.float32)
    trace = fastsim.Trace.from_arrays(experts, 4, scores=scores)
    model = model_for(2, 4, 2)
    r = fastsim.replay(trace, "hybrimoe", model=model, hardware="rtx3090", cache_slots=8, record=True,
                       alpha=0.5, prefetch_size=1)
    w = [x.tolist() for x in r.wanted]
    # step 0: layer 1 has no score yet; step 1 at layer 0: S(layer 1) = 0.5*0.3, 0.5*0.7 -> expert 3
    assert w == [[], [], [4 + 3], []]


def test_moe_infinity_needs_the_request_releases():
    sched = schedule_from_sets([[[0]], [[1]]], 2)
    with pytest.raises(ValueError, match="request releases"):
        kernel_lists(get_strategy("moe-infinity"), sched, 1, {})


@pytest.mark.parametrize("name, param, value", [
    ("noisy-oracle", "recall", 1.5), ("noisy-oracle", "precision", 0.0), ("noisy-oracle", "lookahead", 0),
    ("noisy-oracle", "layer_distance", -1), ("noisy-oracle", "seed", 0.5), ("pre-gated", "recall", -0.1),
    ("cross-layer", "threshold", 2.0), ("cross-layer", "depth", 0), ("moe-infinity", "capacity", 0),
    ("moe-infinity", "max_predictions", 0), ("fine-moe", "capacity", 0), ("fine-moe", "prefetch_distance", 0),
    ("fine-moe", "min_experts", -1), ("hybrimoe", "alpha", 0.0), ("hybrimoe", "prefetch_size", 1.5),
])
def test_bad_parameters_are_rejected(name, param, value):
    with pytest.raises(fastsim.ConfigError, match=f"{name}.*{param}"):
        get_strategy(name).resolve({param: value})
