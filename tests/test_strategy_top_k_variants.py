"""top-k's options (``order``, ``weighting``) and ``adaptive-top-k``.

Kernels equal their references exactly (wanted lists; full replays through the feedback hook);
the references equal the seed's literal variants (``tests/seed_literal_top_k_variants.py``) with
top-k's tolerance (counts within a relative 1e-9, sets equal but for boundary ties); and SPEC
section 4's order (``order=1``) equals an independent transcription of the seed's class ordered
as the SPEC states it, on random replays, as today's order (``order=0``) equals one ordered at
the recompute.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.errors import ConfigError
from fastsim.reference import replay_reference
from fastsim.reference.adaptive_top_k import AdaptiveTopKLayer
from fastsim.reference.top_k import TopKLayer, TopKReference
from fastsim.strategies import get_strategy
from fastsim.timeline.core import prefetch_lists
from fastsim.timeline.schedule import schedule_from_sets

import strategy_helpers
from hypothesis_budget import examples
from seed_literal_top_k_variants import AdaptiveTopKStrategy, WeightedTopKStrategy

RTOL = 1e-9

MODEL = dict(
    name="tiny16", num_layers=2, num_experts=16, top_k=2, expert_bytes=2_000_000,
    dense_bytes_per_layer=1_000_000, expert_flops_per_token=4_000_000, dense_flops_per_token=8_000_000,
)


def _near(a, b):
    return abs(a - b) <= RTOL * max(abs(a), abs(b)) + 1e-300


def _sets_agree(want, got, seed_counts, k):
    """Equal, or differing only in experts tied (to 1e-9) with the boundary count."""
    if want == set(got):
        return True
    kk = min(k, len(seed_counts))
    boundary = np.sort(seed_counts)[::-1][kk - 1]
    return all(_near(seed_counts[e], boundary) for e in want ^ set(got))


def random_trace(seed, tokens, E=MODEL["num_experts"], L=MODEL["num_layers"], K=MODEL["top_k"], skew=True):
    rng = np.random.default_rng(seed)
    p = rng.random(E) ** 3 + 1e-3 if skew else np.ones(E)
    p /= p.sum()
    experts = np.stack([np.stack([rng.choice(E, K, replace=False, p=p) for _ in range(L)]) for _ in range(tokens)])
    experts[rng.random(experts.shape) < 0.05] = -1
    cut = sorted(rng.integers(0, tokens + 1, size=2).tolist())
    lengths = [cut[0], cut[1] - cut[0], tokens - cut[1]]
    return fastsim.Trace.from_arrays(experts.astype(np.int16), num_experts=E, sequence_lengths=lengths)


# ---------------------------------------------------------------- top-k: order and weighting

dims = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 4), st.integers(2, 64), st.integers(1, 8),
)
top_k_params = st.fixed_dictionaries({
    "k": st.integers(1, 70),
    "decay_factor": st.sampled_from([1.0, 0.999, 0.9, 0.5, 1e-40, 1e-200]),
    "window": st.integers(1, 14),
    "update_frequency": st.integers(1, 12),
    "order": st.integers(0, 1),
    "weighting": st.integers(0, 1),
})


@given(dims, top_k_params)
def test_top_k_options_kernel_equals_reference(dim, p):
    seed, steps, layers, E, K = dim
    K = min(K, E)
    sched = schedule_from_sets(strategy_helpers.random_sets(seed, steps, layers, E, K, skewed=True), E)
    defn = get_strategy("top-k")
    assert strategy_helpers.kernel_lists(defn, sched, K, p) == strategy_helpers.reference_lists(TopKReference, sched, K, p)


def test_order_by_hand():
    # test_strategy_top_k's hand example: at call 2 the counts are (0.75, 2.5, 0, 0), so the
    # chosen {0, 1} of call 1 comes out as 1, 0 in the order of the call, 0, 1 in that of call 1
    E = 4
    sets = [[[0]], [[1]], [[1]], [[2]]]
    sched = schedule_from_sets(sets, E)
    p = dict(k=2, decay_factor=0.5, window=2, update_frequency=2)
    recompute = strategy_helpers.kernel_lists(get_strategy("top-k"), sched, 1, dict(p, order=0))
    current = strategy_helpers.kernel_lists(get_strategy("top-k"), sched, 1, dict(p, order=1))
    assert recompute == [[], [0, 1], [0, 1], [1, 2]]
    assert current == [[], [0, 1], [1, 0], [1, 2]]


def test_weighting_by_hand():
    # window 2, decay 1: call 0 adds {0} x 1/2; call 1 adds {0} x 1/2 and {1} x 2/2;
    # call 2 adds {1} x 1/2 and {1} x 2/2: counts (1, 2.5); top-1 recomputed every call
    sets = [[[0]], [[1]], [[1]]]
    sched = schedule_from_sets(sets, 2)
    p = dict(k=1, decay_factor=1.0, window=2, update_frequency=1, weighting=1)
    assert strategy_helpers.kernel_lists(get_strategy("top-k"), sched, 1, p) == [[0], [0], [1]]
    layer = TopKLayer(2, **p)
    for s in range(3):
        layer.predict_experts([x[0] for x in sets[: s + 1]], s)
    assert layer.counts() == [1.0, 2.5]


@given(dims, top_k_params)
def test_weighted_reference_matches_seed_function(dim, p):
    seed, steps, layers, E, K = dim
    K = min(K, E)
    sets = strategy_helpers.random_sets(seed, steps, 1, E, K, skewed=True)
    literal = WeightedTopKStrategy(SimpleNamespace(num_experts=E), k=p["k"])
    literal.decay_factor = p["decay_factor"]
    literal.update_frequency = p["update_frequency"]
    ours = TopKLayer(E, k=p["k"], decay_factor=p["decay_factor"], window=10,
                     update_frequency=p["update_frequency"], weighting=1)
    history = []
    previous = []
    for s in range(steps):
        history.append(sets[s][0])
        want = {int(e) for e in literal.predict_experts(history, s)}
        got = ours.predict_experts(history, s)
        assert all(_near(a, b) for a, b in zip(ours.counts(), literal.expert_counts))
        assert len(got) == len(want)
        if (s + 1) % p["update_frequency"] != 0:
            assert got == previous  # between recomputes both re-emit the last choice
            continue
        previous = got
        assert _sets_agree(want, got, literal.expert_counts, p["k"])


class SeedOrderedTopK:
    """The seed's ``TopKStrategy`` rewritten independently (eager decay, no lazy scale) with the
    ties and order of SPEC section 4: the top ``min(k, E)`` by count, lowest id on ties, returned
    by the counts of the call (``spec=True``) or of the last recompute."""

    def __init__(self, num_experts, k, decay_factor, window, update_frequency, spec):
        self.E, self.k, self.decay, self.window, self.every, self.spec = num_experts, k, decay_factor, window, update_frequency, spec
        self.counts = np.zeros(num_experts)
        self.chosen = []
        self.calls = 0

    def predict(self, history):
        self.counts *= self.decay
        for token_experts in history[-self.window:]:
            for e in token_experts:
                self.counts[e] += 1.0
        self.calls += 1
        if self.calls % self.every == 0:
            c = self.counts
            self.chosen = sorted(range(self.E), key=lambda e: (-c[e], e))[: min(self.k, self.E)]
        if self.spec:
            c = self.counts
            return sorted(self.chosen, key=lambda e: (-c[e], e))
        return list(self.chosen)


def seed_ordered_reference(spec):
    class Reference:
        def __init__(self, num_layers, num_experts, top_k, schedule, k=32, decay_factor=0.999, window=10,
                     update_frequency=100, **_):
            self.E = num_experts
            self.layers = [SeedOrderedTopK(num_experts, int(k), decay_factor, int(window), int(update_frequency), spec)
                           for _ in range(num_layers)]
            self.history = [[] for _ in range(num_layers)]

        def observe(self, s, l, R, n):
            self.history[l].append(list(R))
            return [l * self.E + e for e in self.layers[l].predict(self.history[l])]

    return Reference


@pytest.mark.parametrize("order", [0, 1])
def test_order_equals_independent_seed_transcription(order):
    agree = 0
    for seed in range(24):
        rng = np.random.default_rng(1000 + seed)
        trace = random_trace(seed, int(rng.integers(20, 60)))
        p = dict(k=int(rng.integers(3, 12)), decay_factor=float(rng.choice([0.9, 0.99, 0.999])),
                 window=int(rng.integers(1, 11)), update_frequency=int(rng.integers(2, 9)))
        kw = dict(model=MODEL, hardware="rtx3090", cache_slots=int(rng.integers(4, 14)),
                  batch_size=int(rng.integers(1, 3)), **p)
        fast = fastsim.replay(trace, strategy="top-k", order=order, record=True, **kw)
        slow = replay_reference(trace, strategy=seed_ordered_reference(order == 1), record=True, **kw)
        agree += fast.metrics == slow.metrics and [w.tolist() for w in fast.wanted] == [w.tolist() for w in slow.wanted]
    assert agree == 24


# ---------------------------------------------------------------- adaptive-top-k

adaptive_params = st.fixed_dictionaries({
    "k": st.integers(1, 12),
    "decay_factor": st.sampled_from([1.0, 0.9, 0.5]),
    "window": st.integers(1, 6),
    "update_frequency": st.integers(1, 6),
    "order": st.integers(0, 1),
    "weighting": st.integers(0, 1),
    "target_hit_rate": st.sampled_from([0.0, 0.3, 0.5, 0.95, 1.0]),
    "adjustment_period": st.integers(1, 8),
    "hit_rate_window": st.integers(1, 5),
    "tolerance": st.sampled_from([0.0, 0.02, 0.2]),
    "k_step_up": st.integers(0, 4),
    "k_step_down": st.integers(0, 3),
    "k_min": st.integers(1, 4),
    "k_max": st.sampled_from([0, 3, 6]),
})


@examples(0.5)
@given(st.integers(0, 2**32 - 1), st.integers(1, 50), st.integers(1, 3), st.integers(4, 16), adaptive_params)
def test_adaptive_replay_equals_reference(seed, tokens, batch, slots, p):
    trace = random_trace(seed, tokens)
    kw = dict(strategy="adaptive-top-k", model=MODEL, hardware="rtx3090", cache_slots=max(slots, 2 * batch),
              batch_size=batch, **p)
    fast = fastsim.replay(trace, record=True, **kw)
    slow = replay_reference(trace, record=True, **kw)
    assert fast.metrics == slow.metrics
    assert np.array_equal(fast.outcomes, slow.outcomes)
    assert [w.tolist() for w in fast.wanted] == [w.tolist() for w in slow.wanted]


def test_adaptive_k_follows_the_hit_rate():
    # period 1, window 1: a miss grows k by 4 (to E // 2 = 8 at most), a hit shrinks it by 2
    layer = AdaptiveTopKLayer(16, k=2, update_frequency=1000, adjustment_period=1, hit_rate_window=1, k_min=1)
    ks = []
    for s, outcomes in enumerate([[2], [2], [2], [0, 0], [0], [0, 0, 0, 0, 0], [2, 0]]):
        layer.record_outcomes(outcomes)
        layer.predict_experts([[s % 16]], s)
        ks.append(layer.k)
    # rates 0, 0, 0 grow 2 -> 6 -> 8 -> 8; 1, 1, 1 shrink 8 -> 6 -> 4 -> 2; 0.5 < 0.93 grows to 6
    assert ks == [6, 8, 8, 6, 4, 2, 6]


@given(st.integers(0, 2**32 - 1), st.integers(1, 120), st.integers(2, 64), st.integers(1, 8),
       st.integers(1, 40), st.integers(1, 12), st.integers(1, 30), st.sampled_from([0.0, 0.5, 0.9, 0.95, 1.0]),
       st.sampled_from([1.0, 0.9, 0.5]))
def test_adaptive_reference_matches_seed_class(seed, steps, E, K, k0, every, period, target, decay):
    K = min(K, E)
    rng = np.random.default_rng(seed)
    sets = strategy_helpers.random_sets(seed, steps, 1, E, K, skewed=True)
    literal = AdaptiveTopKStrategy(SimpleNamespace(num_experts=E), target_hit_rate=target)
    literal.k = k0
    literal.update_frequency = every
    literal.decay_factor = decay
    literal.k_adjustment_period = period
    ours = AdaptiveTopKLayer(E, k=k0, update_frequency=every, decay_factor=decay, target_hit_rate=target,
                             adjustment_period=period)
    history = []
    previous = set()
    for s in range(steps):
        R = sets[s][0]
        outcomes = rng.integers(0, 3, size=len(R)).tolist()
        # the harness of docs/strategies/top_k.md: a step's hit rate, then the call, then (every
        # period) the adjustment
        ours.record_outcomes(outcomes)
        if outcomes:
            literal.hit_rate_history.append(sum(o == 0 for o in outcomes) / len(outcomes))
        history.append(R)
        got = ours.predict_experts(history, s)
        literal.predict_experts(history, s)
        recomputed = literal.token_count % every == 0
        if literal.token_count % literal.k_adjustment_period == 0:
            recomputed |= len(literal.hit_rate_history) >= 10
            literal.adapt_k_value()
        if literal.k != ours.k:
            # only np.mean's rounding at a threshold may part them
            mean = float(np.mean(literal.hit_rate_history[-10:]))
            assert min(abs(mean - (target - 0.02)), abs(mean - (target + 0.02))) < 1e-12
            return
        assert ours.hit_rate_history == literal.hit_rate_history
        want = {int(e) for e in literal.current_top_k}
        assert len(got) == len(want)
        if not recomputed:
            assert set(got) == previous  # between recomputes both re-emit the last choice
            continue
        previous = set(got)
        assert _sets_agree(want, got, literal.expert_counts, ours.k)


def test_adaptive_refused_by_prefetch_lists():
    defn = get_strategy("adaptive-top-k")
    assert defn.feedback is not None
    sched = schedule_from_sets([[[0]], [[1]]], 4)
    with pytest.raises(ConfigError, match="adaptive-top-k.*feedback"):
        prefetch_lists(sched, 1, defn.resolve({}), defn.init, defn.observe)


def test_adaptive_defaults_are_the_seed_constants():
    d = get_strategy("adaptive-top-k").defaults()
    assert {n: d[n] for n in ("k", "target_hit_rate", "adjustment_period", "hit_rate_window", "tolerance",
                              "k_step_up", "k_step_down", "k_min", "k_max")} == {
        "k": 32, "target_hit_rate": 0.95, "adjustment_period": 500, "hit_rate_window": 10, "tolerance": 0.02,
        "k_step_up": 4, "k_step_down": 2, "k_min": 8, "k_max": 0,
    }


@pytest.mark.parametrize("name,bad", [
    ("order", 2), ("order", -1), ("weighting", 0.5), ("weighting", 2),
])
def test_top_k_bad_options_rejected(name, bad):
    with pytest.raises(ConfigError, match=name):
        get_strategy("top-k").resolve({name: bad})


@pytest.mark.parametrize("name,bad", [
    ("target_hit_rate", 1.5), ("target_hit_rate", -0.1), ("adjustment_period", 0), ("hit_rate_window", 0),
    ("tolerance", -0.01), ("k_step_up", -1), ("k_step_down", 1.5), ("k_min", 0), ("k_max", -2),
])
def test_adaptive_bad_parameters_rejected(name, bad):
    with pytest.raises(ConfigError, match=name):
        get_strategy("adaptive-top-k").resolve({name: bad})


def test_variants_have_bench_cases():
    from fastsim.bench import get_cases, strategy_cases

    names = set(get_cases())
    for case, strategy, params in strategy_cases.VARIANTS:
        get_strategy(strategy).resolve(params)
        assert {f"{case}-vs-reference", f"{case}-throughput"} <= names
