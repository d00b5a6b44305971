"""The synthetic trace generator: determinism, shape, distinctness, and the effect of each knob."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsim.errors import ProfileError, TraceError
from fastsim.trace import read_trace
from fastsim.trace.generate import DEFAULT_PARAMS, generate_from_params, generate_trace, popularity, tiered_weights


def previous_token_overlap(trace) -> float:
    """Share of (token, layer) rows, tokens after the first of their sequence, holding at least
    one expert that the previous token used in the same layer."""
    hits = total = 0
    for seq in range(trace.num_sequences):
        x = trace.sequence(seq)
        for t in range(1, x.shape[0]):
            for l in range(x.shape[1]):
                total += 1
                hits += bool(set(x[t, l].tolist()) & set(x[t - 1, l].tolist()))
    return hits / total


def top_expert_share(trace) -> float:
    """Mean over layers of the share of routing that goes to the layer's most used expert."""
    shares = []
    for l in range(trace.num_layers):
        counts = np.bincount(trace.experts[:, l].ravel(), minlength=trace.num_experts)
        shares.append(counts.max() / counts.sum())
    return float(np.mean(shares))


def test_same_seed_same_trace_and_different_seeds_differ():
    a = generate_trace((4, 32, 3), 500, sequences=5, seed=11)
    b = generate_trace((4, 32, 3), 500, sequences=5, seed=11)
    c = generate_trace((4, 32, 3), 500, sequences=5, seed=12)
    np.testing.assert_array_equal(a.experts, b.experts)
    np.testing.assert_array_equal(a.sequence_lengths, b.sequence_lengths)
    assert a.source == b.source and a.fingerprint() == b.fingerprint()
    assert not np.array_equal(a.experts, c.experts)
    r1 = generate_trace((2, 8, 1), 100, sequences=7, seed=3, lengths="random")
    r2 = generate_trace((2, 8, 1), 100, sequences=7, seed=3, lengths="random")
    np.testing.assert_array_equal(r1.sequence_lengths, r2.sequence_lengths)
    np.testing.assert_array_equal(r1.experts, r2.experts)


@given(
    layers=st.integers(1, 4),
    experts=st.integers(1, 40),
    data=st.data(),
    tokens=st.integers(0, 60),
    sequences=st.integers(1, 6),
    zipf_s=st.sampled_from([0.0, 1.1, 4.0, 30.0]),
    reuse=st.sampled_from([0.0, 0.5, 1.0]),
    lengths=st.sampled_from(["equal", "random"]),
    seed=st.integers(0, 2**32),
)
def test_shape_ranges_and_distinct_rows(layers, experts, data, tokens, sequences, zipf_s, reuse, lengths, seed):
    top_k = data.draw(st.integers(1, experts))
    trace = generate_trace((layers, experts, top_k), tokens, sequences, seed,
                           zipf_s=zipf_s, reuse=reuse, lengths=lengths)
    assert trace.experts.shape == (tokens, layers, top_k)
    assert trace.experts.dtype == np.int16 and trace.experts.flags.c_contiguous
    assert trace.num_experts == experts and trace.num_sequences == sequences
    assert int(trace.sequence_lengths.sum()) == tokens and trace.sequence_lengths.min() >= 0
    if lengths == "equal":
        assert trace.sequence_lengths.max() - trace.sequence_lengths.min() <= (1 if tokens else 0)
    if tokens:
        assert trace.experts.min() >= 0 and trace.experts.max() < experts  # the generator loses nothing
        rows = np.sort(trace.experts.reshape(-1, top_k), axis=1)
        assert (np.diff(rows, axis=1) > 0).all()  # distinct within every row


def test_full_rows_with_extreme_skew_are_permutations():
    """K = E with a very steep Zipf exercises the exact fallback after rejections."""
    trace = generate_trace((2, 12, 12), 30, zipf_s=40.0, reuse=0.0, seed=5)
    np.testing.assert_array_equal(np.sort(trace.experts, axis=2), np.broadcast_to(np.arange(12), (30, 2, 12)))


def test_wide_expert_ids_use_int32():
    trace = generate_trace((1, 40000, 2), 50, zipf_s=0.0, seed=1)
    assert trace.experts.dtype == np.int32
    assert trace.experts.max() < 40000


def test_reuse_raises_previous_token_overlap():
    base = dict(zipf_s=0.0, seed=2)
    low = previous_token_overlap(generate_trace((4, 64, 1), 2000, 4, reuse=0.0, **base))
    high = previous_token_overlap(generate_trace((4, 64, 1), 2000, 4, reuse=0.9, **base))
    # Uniform top-1 over 64 experts repeats by chance 1/64 of the time; reuse 0.9 repeats at
    # least 90% of the time.
    assert low < 0.05
    assert high > 0.85
    mid = previous_token_overlap(generate_trace((4, 64, 4), 2000, 4, reuse=0.5, **base))
    none = previous_token_overlap(generate_trace((4, 64, 4), 2000, 4, reuse=0.0, **base))
    assert mid > none + 0.3


def test_reuse_does_not_cross_sequences():
    """With reuse 1 and top-1, a token repeats its predecessor exactly, except at the first
    token of each sequence, which draws afresh."""
    trace = generate_trace((3, 500, 1), 400, sequences=40, reuse=1.0, zipf_s=0.0, seed=4)
    for s in range(trace.num_sequences):
        x = trace.sequence(s)
        assert (x == x[0]).all()
    firsts = trace.experts[trace.offsets[:-1]]
    assert len({tuple(f.ravel()) for f in firsts}) > 30  # 40 fresh draws from 500 experts


def test_zipf_concentrates_use():
    uniform = top_expert_share(generate_trace((3, 64, 1), 5000, reuse=0.0, zipf_s=0.0, seed=1))
    skewed = top_expert_share(generate_trace((3, 64, 1), 5000, reuse=0.0, zipf_s=2.0, seed=1))
    # Uniform: ~1/64 each. Zipf s=2 over 64 ranks: rank 0 has 1 / sum(r^-2, r=1..64) ~ 0.61.
    assert uniform < 0.04
    assert 0.5 < skewed < 0.7
    # Each layer has its own ranking, so the hot experts differ between layers.
    trace = generate_trace((6, 64, 1), 3000, reuse=0.0, zipf_s=3.0, seed=9)
    hottest = {int(np.bincount(trace.experts[:, l, 0]).argmax()) for l in range(6)}
    assert len(hottest) > 1


def test_source_records_every_parameter():
    trace = generate_trace((2, 10, 3), 40, sequences=3, seed=8, zipf_s=0.7, reuse=0.25, lengths="random")
    src = json.loads(trace.source)
    assert src == {
        "generator": "fastsim.generate", "preset": None, "model": None, "num_layers": 2,
        "num_experts": 10, "top_k": 3, "tokens": 40, "sequences": 3, "seed": 8, "zipf_s": 0.7,
        "zipf_q": 0.0, "floor": 0.0, "reuse": 0.25, "affinity": 0.0, "topic_shift": 0.0,
        "lengths": "random", "length_mean": None, "length_sigma": 0.5, "weights": None,
    }
    assert set(DEFAULT_PARAMS) <= set(src)


def test_params_mapping_matches_keywords():
    a = generate_from_params((3, 16, 2), 100, 2, 6, {"zipf_s": 0.3})
    b = generate_trace((3, 16, 2), 100, 2, 6, zipf_s=0.3)
    np.testing.assert_array_equal(a.experts, b.experts)
    with pytest.raises(TraceError, match="unknown parameter 'zipf'"):
        generate_from_params((3, 16, 2), 10, params={"zipf": 1.0})


def test_model_profile_by_name():
    from fastsim.profiles import model_profile

    prof = model_profile("switch-base-128")
    trace = generate_trace("switch-base-128", 30, seed=1)
    assert trace.model == "switch-base-128"
    assert trace.experts.shape == (30, prof.num_layers, prof.top_k)
    assert trace.num_experts == prof.num_experts
    with pytest.raises(ProfileError):
        generate_trace("no-such-model", 10)


def test_zero_tokens():
    trace = generate_trace((2, 4, 2), 0, sequences=3)
    assert trace.experts.shape == (0, 2, 2)
    np.testing.assert_array_equal(trace.sequence_lengths, [0, 0, 0])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"model": (2, 4, 5)}, "top_k 5 exceeds num_experts 4"),
        ({"model": (0, 4, 1)}, "num_layers"),
        ({"model": (2, 4)}, "num_layers, num_experts, top_k"),
        ({"tokens": -1}, "tokens"),
        ({"tokens": 2.5}, "tokens"),
        ({"sequences": 0}, "sequences"),
        ({"seed": -3}, "seed"),
        ({"zipf_s": -0.1}, "zipf_s"),
        ({"zipf_s": float("nan")}, "zipf_s"),
        ({"reuse": 1.5}, "reuse"),
        ({"reuse": "a lot"}, "reuse"),
        ({"lengths": "long"}, "lengths"),
    ],
)
def test_bad_parameters(kwargs, words):
    args = {"model": (2, 4, 2), "tokens": 10, **kwargs}
    with pytest.raises(TraceError, match=words.replace("(", r"\(")):
        generate_trace(**args)


def test_generated_trace_round_trips(tmp_path):
    trace = generate_trace((3, 20, 2), 300, sequences=4, seed=1, lengths="random")
    trace.write(tmp_path / "g.parquet")
    back = read_trace(tmp_path / "g.parquet")
    np.testing.assert_array_equal(back.experts, trace.experts)
    np.testing.assert_array_equal(back.sequence_lengths, trace.sequence_lengths)
    assert back.source == trace.source and back.model is None


# ---------------------------------------------------------------------- popularity shape, topics,
# cross-layer affinity, sequence lengths


def use_shares(trace, layer):
    counts = np.bincount(trace.experts[:, layer].ravel(), minlength=trace.num_experts)
    return counts / counts.sum()


def test_popularity_formula():
    # (r + 1 + q)^-s normalised, then (1 - floor) * w + floor / E: for E = 3, s = 1, q = 1,
    # floor = 0.3: w = (1/2, 1/3, 1/4) / (13/12) = (6, 4, 3) / 13.
    p = popularity(3, 2, 1.0, 1.0, 0.3)
    expected = 0.7 * np.array([6, 4, 3]) / 13 + 0.1
    np.testing.assert_allclose(p, [expected, expected])
    per_layer = popularity(4, 2, [0.0, 2.0])
    np.testing.assert_allclose(per_layer[0], 0.25)
    np.testing.assert_allclose(per_layer[1], np.array([1, 1 / 4, 1 / 9, 1 / 16]) / (1 + 1 / 4 + 1 / 9 + 1 / 16))
    assert np.isfinite(popularity(128, 1, 40.0, 228.0)).all()  # steep shapes do not underflow


def test_reuse_keeps_top1_use_at_the_popularity():
    """Top-1 with reuse is a Markov chain whose stationary law is the popularity: repeating
    the previous expert or drawing afresh from p both leave p unchanged."""
    trace = generate_trace((2, 6, 1), 60_000, seed=3, zipf_s=1.0, reuse=0.7)
    pmf = popularity(6, 1, 1.0)[0]
    for layer in range(2):
        shares = np.sort(use_shares(trace, layer))[::-1]
        np.testing.assert_allclose(shares, pmf, atol=0.02)


def test_per_layer_skew():
    trace = generate_trace((2, 16, 1), 8000, seed=1, reuse=0.0, zipf_s=[0.0, 3.0])
    assert use_shares(trace, 0).max() < 0.1
    assert use_shares(trace, 1).max() > 0.7  # 1 / sum(r^-3) = 0.83


def test_topic_shift_concentrates_sequences_not_the_trace():
    base = dict(zipf_s=0.0, reuse=0.0, seed=5)
    flat = generate_trace((1, 32, 1), 40_000, 100, **base)
    topical = generate_trace((1, 32, 1), 40_000, 100, topic_shift=0.3, **base)

    def within_sequence_repeat(trace):
        # Share of same-expert pairs among all ordered pairs of distinct tokens of a sequence.
        same = pairs = 0
        for s in range(trace.num_sequences):
            c = np.bincount(trace.sequence(s)[:, 0, 0], minlength=32)
            n = c.sum()
            same += (c * (c - 1)).sum()
            pairs += n * (n - 1)
        return same / pairs

    # Two distinct tokens of a sequence agree with probability sum(p_seq^2). Uniform popularity:
    # 1/32. A Dirichlet topic with E[p_seq] = p and Var = v p (1 - p) gives, in expectation,
    # sum(v p (1 - p) + p^2) = v (1 - 1/32) + 1/32 = (1 + 31 v) / 32.
    assert within_sequence_repeat(flat) == pytest.approx(1 / 32, abs=0.005)
    assert within_sequence_repeat(topical) == pytest.approx((1 + 0.3 * 31) / 32, rel=0.2)
    # The trace-wide mix stays near uniform.
    assert use_shares(topical, 0).max() < 2.5 / 32


def test_affinity_maps_ranks_between_layers():
    # Top-1 with affinity 1: layer l+1's expert is always the same-rank partner of layer l's,
    # so layer l determines layer l+1 and use shares keep their ranking.
    trace = generate_trace((3, 20, 1), 5000, seed=2, zipf_s=1.0, reuse=0.0, affinity=1.0)
    x = trace.experts[:, :, 0]
    for l in range(2):
        pairs = set(zip(x[:, l].tolist(), x[:, l + 1].tolist()))
        assert len(pairs) == len(set(x[:, l].tolist()))  # a function of the previous layer
        np.testing.assert_allclose(np.sort(use_shares(trace, l)), np.sort(use_shares(trace, l + 1)))
    none = generate_trace((3, 20, 1), 5000, seed=2, zipf_s=1.0, reuse=0.0, affinity=0.0)
    assert len(set(zip(none.experts[:, 0, 0].tolist(), none.experts[:, 1, 0].tolist()))) > 100


def test_affinity_with_top_k_keeps_rows_distinct():
    trace = generate_trace((4, 10, 4), 3000, seed=8, zipf_s=1.5, reuse=0.5, affinity=0.9,
                           topic_shift=0.2, length_mean=50, lengths="lognormal")
    rows = np.sort(trace.experts.reshape(-1, 4), axis=1)
    assert (np.diff(rows, axis=1) > 0).all()


def test_lognormal_lengths_and_sequences_from_mean_length():
    trace = generate_trace((1, 4, 1), 10_000, seed=1, lengths="lognormal", length_mean=100, length_sigma=1.0)
    lengths = trace.sequence_lengths
    assert trace.num_sequences == 100 and int(lengths.sum()) == 10_000
    assert lengths.std() > 30  # sigma 1: a coefficient of variation near sqrt(e - 1) = 1.3
    flat = generate_trace((1, 4, 1), 10_000, 40, seed=1, lengths="lognormal", length_sigma=0.0)
    np.testing.assert_array_equal(flat.sequence_lengths, 250)
    assert generate_trace((1, 4, 1), 10, seed=1).num_sequences == 1  # no length_mean: one sequence
    assert generate_trace((1, 4, 1), 10, seed=1, length_mean=1000).num_sequences == 1


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"zipf_q": -1.0}, "zipf_q"),
        ({"floor": 1.5}, "floor"),
        ({"affinity": -0.1}, "affinity"),
        ({"topic_shift": 1.0}, "topic_shift"),
        ({"length_mean": 0.5}, "length_mean"),
        ({"length_sigma": -1.0}, "length_sigma"),
        ({"zipf_s": [1.0, 2.0, 3.0]}, "zipf_s has 3 values"),
        ({"weights": [1.0, 2.0]}, "weights has 2 values; expected one per expert"),
        ({"weights": [1.0, -1.0, 0.0, 0.0]}, "weights"),
        ({"weights": [0.0, 0.0, 0.0, 0.0]}, "positive sum"),
        ({"weights": "1234"}, "list of numbers"),
    ],
)
def test_bad_new_parameters(kwargs, words):
    with pytest.raises(TraceError, match=words):
        generate_trace((2, 4, 2), 10, **kwargs)


def test_explicit_weights_replace_the_zipf_curve():
    # Tiers: 2 ranks with 60% (30% each), 2 with 40% (20% each); floor 0.2 mixes in 5% each.
    w = tiered_weights((0.6, 0.4), (2, 2))
    np.testing.assert_allclose(w, [0.3, 0.3, 0.2, 0.2])
    np.testing.assert_allclose(tiered_weights((1.0,), (3,), decay=np.log(2)), np.array([4, 2, 1]) / 7)
    np.testing.assert_allclose(popularity(4, 1, 5.0, 0.0, 0.2, w)[0], 0.8 * np.array(w) + 0.05)
    trace = generate_trace((1, 4, 1), 40_000, seed=6, reuse=0.0, zipf_s=5.0, weights=[3, 1, 0, 0])
    shares = np.sort(use_shares(trace, 0))[::-1]
    np.testing.assert_allclose(shares, [0.75, 0.25, 0.0, 0.0], atol=0.01)


def test_router_scores_leave_the_routing_unchanged():
    from fastsim.trace.generate import generate_trace

    plain = generate_trace(None, 300, preset="mixtral-like", seed=4)
    scored = generate_trace(None, 300, preset="mixtral-like", seed=4, router_scores=True)
    assert plain.scores is None
    np.testing.assert_array_equal(plain.experts, scored.experts)
    s = scored.scores
    assert s.shape == scored.experts.shape and s.dtype == np.float32
    assert (s > 0).all() and (s.sum(axis=-1) < 1).all()  # shares of K + 1 parts
    assert (np.diff(s, axis=-1) <= 0).all()  # best first
    assert '"router_scores": true' in scored.source and "router_scores" not in plain.source
    gaps = generate_trace((2, 8, 2), 50, seed=1, floor=1.0, router_scores=True)
    assert (gaps.scores[gaps.experts < 0] == 0).all()
