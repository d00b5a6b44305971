"""Trace statistics: hand-computed values on tiny traces, a set-based reference on random traces,
and the ``fastsim trace stats`` command."""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.cli.main import main
from fastsim.errors import TraceError
from fastsim.trace import Trace
from fastsim.trace.stats import LAYER_KEYS, STAT_KEYS, trace_stats

# Five tokens in sequences of 3, 2 and 0 tokens; E = 4, two layers, top-2, with lost entries.
#            layer 0     layer 1
SMALL = [
    [[0, 1], [2, 3]],  # sequence 0
    [[1, 2], [2, 0]],
    [[1, -1], [3, -1]],
    [[1, 3], [1, -1]],  # sequence 1
    [[0, -1], [-1, 1]],
]


def small_trace() -> Trace:
    return Trace.from_arrays(np.array(SMALL), num_experts=4, sequence_lengths=[3, 2, 0])


def test_small_trace_by_hand():
    d = trace_stats(small_trace())
    l0, l1 = d["per_layer"]
    # Layer 0 uses: expert 0 twice, 1 four times, 2 and 3 once (8 uses); layer 1: 1, 2, 2, 2 (7).
    assert l0["uses"] == 8 and l1["uses"] == 7
    # Entropy of (2, 4, 1, 1) / 8 in bits is 1/4*2 + 1/2*1 + 2 * 1/8*3 = 1.75; log2(4) = 2.
    assert l0["entropy"] == pytest.approx(0.875)
    p1 = np.array([1, 2, 2, 2]) / 7
    assert l1["entropy"] == pytest.approx(-(p1 * np.log(p1)).sum() / math.log(4))
    # Gini over sorted counts (1, 1, 2, 4): (-3*1 - 1*1 + 1*2 + 3*4) / (4 * 8) = 10/32;
    # (1, 2, 2, 2): (-3 - 2 + 2 + 6) / (4 * 7) = 3/28.
    assert l0["gini"] == pytest.approx(10 / 32)
    assert l1["gini"] == pytest.approx(3 / 28)
    # Every expert has more than 1% of the uses; with E = 4 every coverage is complete.
    assert l0["effective_experts"] == 4 and l1["effective_experts"] == 4
    for key in ("top10_coverage", "top16_coverage", "top25_coverage"):
        assert l0[key] == 1.0 and l1[key] == 1.0
    # Layer 0 pairs: (t0, t1) share {1}, (t1, t2) share {1}, (t3, t4) share nothing; the
    # boundary t2 -> t3 (both hold 1) is not a pair. Layer 1: {2}, nothing, and {1} (the lost
    # entries of t3 and t4 never match). Each shared expert counts 1/K = 1/2.
    assert l0["reuse"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert l1["reuse"] == pytest.approx((0.5 + 0.0 + 0.5) / 3)
    # Co-occurrence l0 -> l1: row 0 {1:1, 2:1, 3:1} predicts {1, 2} (ties to the lower id),
    # row 1 {0:1, 1:1, 2:2, 3:2} predicts {2, 3}, row 2 {0:1, 2:1} predicts {0, 2}, row 3 {1:1}
    # predicts {1, 0}. Hits per use: t0: 1 + 2, t1: 1 + 2, t2: 1, t3: 0 + 1, t4: 1 = 9 of 8 * 2.
    assert l0["cross_layer"] == pytest.approx(9 / 16)
    assert l1["cross_layer"] is None
    assert d["cross_layer"] == pytest.approx(9 / 16)
    assert d["entropy"] == pytest.approx((l0["entropy"] + l1["entropy"]) / 2)
    assert d["gini"] == pytest.approx((10 / 32 + 3 / 28) / 2)
    assert d["reuse"] == pytest.approx(1 / 3)
    # Lengths (3, 2, 0): p95 interpolates between 2 and 3 at 0.9.
    assert d["sequence_lengths"] == {
        "count": 3, "mean": pytest.approx(5 / 3), "min": 0, "max": 3, "p50": 2.0, "p95": pytest.approx(2.9),
    }
    assert set(d) == set(STAT_KEYS)


def test_coverage_and_effective_experts_by_hand():
    # E = 30, top-1: expert 0 used 120 times, 1..9 three times, 10..15 twice, 16..29 once: 173 uses.
    # 1/173 < 1% < 2/173, so experts 0..15 are effective.
    ids = [0] * 120 + [e for e in range(1, 10) for _ in range(3)] + [e for e in range(10, 16) for _ in range(2)]
    ids += list(range(16, 30))
    rng = np.random.default_rng(3)
    trace = Trace.from_arrays(rng.permutation(ids).reshape(-1, 1, 1), num_experts=30)
    d = trace_stats(trace)
    assert d["top10_coverage"] == pytest.approx(147 / 173)
    assert d["top16_coverage"] == pytest.approx(159 / 173)
    assert d["top25_coverage"] == pytest.approx(168 / 173)
    assert d["effective_experts"] == 16
    assert d["cross_layer"] is None


def test_extremes():
    # All traffic on one expert: entropy 0, Gini (E-1)/E, reuse 1; uniform cycling: entropy 1, Gini 0.
    one = trace_stats(Trace.from_arrays(np.zeros((50, 2, 1), dtype=np.int16), num_experts=8))
    assert one["entropy"] == pytest.approx(0.0) and one["gini"] == pytest.approx(7 / 8)
    assert one["reuse"] == 1.0 and one["reuse_shuffled"] == 1.0 and one["effective_experts"] == 1
    assert one["cross_layer"] == 1.0
    cyc = np.tile(np.arange(8), 10).reshape(-1, 1, 1)
    flat = trace_stats(Trace.from_arrays(cyc, num_experts=8))
    assert flat["entropy"] == pytest.approx(1.0) and flat["gini"] == pytest.approx(0.0)
    assert flat["reuse"] == 0.0
    single = trace_stats(Trace.from_arrays(np.zeros((5, 1, 1), dtype=np.int16), num_experts=1))
    assert single["entropy"] == 1.0 and single["gini"] == 0.0


def test_layer_that_is_a_function_of_the_previous_is_fully_predictable():
    rng = np.random.default_rng(0)
    a = np.stack([rng.permutation(16)[:3] for _ in range(400)])
    mapping = rng.permutation(16)
    trace = Trace.from_arrays(np.stack([a, mapping[a]], axis=1), num_experts=16)
    # Each expert's successors always include its image, but it predicts K = 3 successors of
    # which only its image is certain: with co-used experts varying, the figure sits between
    # 1/3 and 1. With top-1 the image is the whole row, so the figure is exactly 1.
    assert 1 / 3 <= trace_stats(trace)["cross_layer"] <= 1.0
    top1 = Trace.from_arrays(np.stack([a[:, :1], mapping[a[:, :1]]], axis=1), num_experts=16)
    assert trace_stats(top1)["cross_layer"] == 1.0


def test_shuffled_baseline_stays_within_sequences():
    # Each sequence repeats one expert; different sequences use different experts. Shuffling
    # within sequences keeps reuse at 1; mixing sequences would lower it.
    ids = np.repeat(np.arange(10), 30).reshape(-1, 1, 1)
    d = trace_stats(Trace.from_arrays(ids, num_experts=10, sequence_lengths=[30] * 10))
    assert d["reuse"] == 1.0 and d["reuse_shuffled"] == 1.0


def test_shuffled_baseline_removes_order():
    # Alternating A, B has reuse 0; in a random order of 1000 A's and 1000 B's consecutive
    # tokens agree with probability 999/1999 each, so the shuffled figure is close to 1/2.
    ids = np.tile([0, 1], 1000).reshape(-1, 1, 1)
    d = trace_stats(Trace.from_arrays(ids, num_experts=2))
    assert d["reuse"] == 0.0
    assert 0.45 < d["reuse_shuffled"] < 0.55
    again = trace_stats(Trace.from_arrays(ids, num_experts=2))
    assert again["reuse_shuffled"] == d["reuse_shuffled"]  # seeded: the same on every call


def test_empty_and_lost_only_traces_give_none():
    d = trace_stats(Trace.from_arrays(np.zeros((0, 2, 2), dtype=np.int16), num_experts=4, sequence_lengths=[0, 0]))
    for key in LAYER_KEYS:
        assert d[key] is None
    assert d["sequence_lengths"]["count"] == 2 and d["sequence_lengths"]["max"] == 0
    lost = trace_stats(Trace.from_arrays(np.full((4, 1, 2), -1), num_experts=3))
    assert lost["entropy"] is None and lost["gini"] is None and lost["reuse"] == 0.0
    none = trace_stats(Trace.from_arrays(np.zeros((0, 1, 1), dtype=np.int16), num_experts=3, sequence_lengths=np.zeros(0, dtype=np.int64)))
    assert none["sequence_lengths"] == {"count": 0, "mean": None, "min": None, "max": None, "p50": None, "p95": None}
    json.dumps(d)  # no NaN: valid JSON


def reference_stats(experts: np.ndarray, lengths, num_experts: int) -> dict:
    """Set-based statistics following docs/trace-stats.md (without the shuffled baseline)."""
    tokens, layers, k = experts.shape
    starts = np.concatenate(([0], np.cumsum(lengths)))
    out = {key: [] for key in ("entropy", "gini", "cov10", "eff", "reuse", "cross")}
    for l in range(layers):
        c = Counter(int(e) for e in experts[:, l].ravel() if e >= 0)
        total = sum(c.values())
        counts = sorted(c.get(e, 0) for e in range(num_experts))
        if total:
            probs = [x / total for x in counts if x]
            out["entropy"].append(-sum(p * math.log(p) for p in probs) / math.log(num_experts) if num_experts > 1 else 1.0)
            out["gini"].append(sum((2 * i - num_experts + 1) * x for i, x in enumerate(counts)) / (num_experts * total))
            out["cov10"].append(sum(sorted(counts, reverse=True)[:10]) / total)
            out["eff"].append(sum(x / total > 0.01 for x in counts))
        pairs = hits = 0
        for s in range(len(lengths)):
            for t in range(starts[s] + 1, starts[s + 1]):
                pairs += 1
                hits += len({e for e in experts[t, l] if e >= 0} & {e for e in experts[t - 1, l] if e >= 0})
        if pairs:
            out["reuse"].append(hits / (pairs * k))
        if l + 1 < layers and total:
            table: dict = {}
            for t in range(tokens):
                for a in experts[t, l]:
                    if a >= 0:
                        row = table.setdefault(int(a), Counter())
                        row.update(int(b) for b in experts[t, l + 1] if b >= 0)
            pred = {a: {b for b, _ in sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:k]} for a, row in table.items()}
            got = sum(
                len({int(b) for b in experts[t, l + 1] if b >= 0} & pred[int(a)])
                for t in range(tokens) for a in experts[t, l] if a >= 0
            )
            # Experts with fewer than K observed successors complete their prediction with unseen
            # (zero-count) experts, which never hit, so only the observed ones matter.
            out["cross"].append(got / (total * k))
    return {key: (sum(v) / len(v) if v else None) for key, v in out.items()}


@st.composite
def random_traces(draw):
    num_experts = draw(st.integers(1, 12))
    top_k = draw(st.integers(1, min(num_experts, 4)))
    layers = draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(0, 6), min_size=1, max_size=4))
    tokens = sum(lengths)
    seed = draw(st.integers(0, 2**32 - 1))
    lost = draw(st.sampled_from([0.0, 0.3]))
    rng = np.random.default_rng(seed)
    x = np.array([[rng.permutation(num_experts)[:top_k] for _ in range(layers)] for _ in range(tokens)],
                 dtype=np.int64).reshape(tokens, layers, top_k)
    x[rng.random(x.shape) < lost] = -1
    return x, lengths, num_experts


def close(a, b):
    return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b))


@given(random_traces())
def test_matches_set_based_reference(case):
    x, lengths, num_experts = case
    d = trace_stats(Trace.from_arrays(x, num_experts=num_experts, sequence_lengths=lengths))
    ref = reference_stats(x, lengths, num_experts)
    assert close(d["entropy"], ref["entropy"])
    assert close(d["gini"], ref["gini"])
    assert close(d["top10_coverage"], ref["cov10"])
    assert close(d["effective_experts"], ref["eff"])
    assert close(d["reuse"], ref["reuse"])
    assert close(d["cross_layer"], ref["cross"])
    assert d["reuse_shuffled"] is None or 0.0 <= d["reuse_shuffled"] <= 1.0


def test_many_experts_use_the_sparse_cross_layer_count():
    rng = np.random.default_rng(5)
    x = np.stack([np.stack([rng.choice(5000, 3, replace=False) for _ in range(3)]) for _ in range(60)])
    x[:, 1, 0] = x[:, 0, 0] + 1  # some structure so predictions hit
    x[rng.random(x.shape) < 0.1] = -1
    d = trace_stats(Trace.from_arrays(x, num_experts=5001))
    assert close(d["cross_layer"], reference_stats(x, [60], 5001)["cross"])


def test_public_name_and_path(tmp_path):
    trace = small_trace()
    trace.write(tmp_path / "t.parquet")
    assert fastsim.trace_stats(str(tmp_path / "t.parquet")) == trace_stats(trace)
    with pytest.raises(TraceError, match="expected a Trace"):
        trace_stats(np.zeros((2, 1, 1)))


def test_cli_json_and_table(tmp_path, capsys):
    path = tmp_path / "t.parquet"
    small_trace().write(path)
    assert main(["trace", "stats", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {
        "entropy", "gini", "reuse", "reuse_shuffled", "top10_coverage", "top16_coverage",
        "top25_coverage", "effective_experts", "cross_layer", "sequence_lengths",
        "prompt_lengths", "per_layer",
    }
    assert d["gini"] == pytest.approx((10 / 32 + 3 / 28) / 2) and len(d["per_layer"]) == 2
    assert main(["trace", "stats", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split() and line.split()[0] in {"mean", "0", "1"}}
    assert float(rows["0"][1]) == pytest.approx(10 / 32, abs=1e-4)  # gini column
    assert rows["1"][-1] == "-"  # the last layer has no cross-layer figure
    assert main(["trace", "stats", str(tmp_path / "missing.parquet")]) == 2
