"""Routing-trace statistics: balance, locality in time and across layers, sequence lengths.

Every statistic is computed per MoE layer and then averaged over layers (a plain mean over the
layers where it is defined). Entries of ``-1`` (lost by the recorder) are skipped everywhere; a
layer's *uses* are its non ``-1`` entries. ``E`` is the trace's ``num_experts``, ``K`` its
``top_k``. The definitions (also in ``docs/trace-stats.md``):

``entropy``
    Normalised entropy ``H(p) / log(E)`` of the layer's expert-use distribution ``p`` (use counts
    over all ``E`` experts, divided by their sum), natural logs, ``0 log 0 = 0``. 1 is perfectly
    balanced; with ``E = 1`` it is 1.
``gini``
    Gini coefficient of the layer's ``E`` use counts (unused experts included): with the counts
    sorted ascending, ``x_1 <= ... <= x_E``, ``G = sum_i (2 i - E - 1) x_i / (E sum_i x_i)``.
    0 is perfectly balanced, ``(E - 1) / E`` is all traffic on one expert.
``top10_coverage``, ``top16_coverage``, ``top25_coverage``
    Share of the layer's uses that go to its ``N`` most used experts (all of them when ``E <= N``).
``effective_experts``
    Number of experts holding strictly more than 1% of the layer's uses (the average over layers
    may be fractional).
``reuse``
    Mean, over every pair of consecutive tokens ``(t - 1, t)`` of the same sequence, of
    ``|S_t & S_{t-1}| / K``, where ``S_t`` is the set of non ``-1`` ids of token ``t`` in the layer.
    The divisor is ``K`` whatever the number of lost entries, so lost entries count as misses.
``reuse_shuffled``
    ``reuse`` of a time-shuffled copy: the tokens of each sequence are put in a random order (one
    permutation per sequence, the same for every layer, from ``numpy.random.PCG64(0)`` so the
    figure is reproducible). Shuffling within sequences keeps each sequence's own expert mix, so
    ``reuse - reuse_shuffled`` is the locality that comes from token order alone.
``cross_layer``
    How well layer ``l``'s experts predict layer ``l + 1``'s, for ``l < L - 1``. Count the table
    ``C[a, b]`` = tokens with ``a`` in layer ``l``'s row and ``b`` in layer ``l + 1``'s. Each
    expert ``a`` predicts its ``K`` most frequent successors ``P(a)`` (ties to the lower id). The
    figure is the mean, over every use ``(t, a)`` of layer ``l``, of ``|P(a) & S^{l+1}_t| / K``,
    i.e. ``sum_a sum_{b in P(a)} C[a, b] / (K * uses of layer l)``. The table is fitted on the
    trace it is scored on (an in-sample figure, optimistic when tokens are few against ``E**2``).
    The last layer has none.
``sequence_lengths``
    ``count``, ``mean``, ``min``, ``max``, ``p50``, ``p95`` of the sequence lengths (zero-length
    sequences included; percentiles by linear interpolation).
``prompt_lengths``
    The same summary of the prompt lengths plus ``tokens`` (their sum, the prefill tokens), or
    ``None`` when the trace marks no prompts.

A figure with no data (a layer without uses, no consecutive pairs, fewer than two layers) is
``None`` (``NaN`` is never returned, so the result is valid JSON).
"""
from __future__ import annotations

import math
import os

import numpy as np

from .._jit import kernel
from ..errors import TraceError
from .model import Trace

__all__ = ["trace_stats", "STAT_KEYS", "LAYER_KEYS", "COVERAGE_TOPS", "SHUFFLE_SEED"]

COVERAGE_TOPS = (10, 16, 25)
# Above this many experts the (E, E) co-occurrence table would be too large; count pairs sparsely.
_DENSE_TABLE_MAX_EXPERTS = 4096
#: Seed of the permutation behind ``reuse_shuffled``.
SHUFFLE_SEED = 0
#: Per-layer figures, in the order the table prints them.
LAYER_KEYS = (
    "entropy", "gini", "reuse", "reuse_shuffled", "top10_coverage", "top16_coverage",
    "top25_coverage", "effective_experts", "cross_layer",
)
#: Keys of the :func:`trace_stats` result.
STAT_KEYS = LAYER_KEYS + ("sequence_lengths", "prompt_lengths", "per_layer")


def trace_stats(trace) -> dict:
    """Statistics of a routing trace (see the module docstring for the exact definitions).

    Parameters
    ----------
    trace : Trace, str or os.PathLike
        A trace, or the path of a Parquet trace file.

    Returns
    -------
    dict
        ``entropy``, ``gini``, ``reuse``, ``reuse_shuffled``, ``top10_coverage``,
        ``top16_coverage``, ``top25_coverage``, ``effective_experts``, ``cross_layer``: means over
        layers (float or None); ``sequence_lengths``: dict of ``count, mean, min, max, p50, p95``;
        ``prompt_lengths``: the same plus ``tokens``, or None without prompt marks;
        ``per_layer``: list of ``L`` dicts with ``layer``, ``uses`` and each figure for that layer.
    """
    if isinstance(trace, (str, os.PathLike)):
        from .parquet import read_trace

        trace = read_trace(trace)
    if not isinstance(trace, Trace):
        raise TraceError(f"trace_stats: expected a Trace or a file path, got {type(trace).__name__}")
    experts = trace.experts
    num_layers, num_experts, top_k = trace.num_layers, trace.num_experts, trace.top_k
    offsets = trace.offsets

    counts = _layer_counts_nb(experts, num_experts)  # (L, E) int64
    per = {key: np.full(num_layers, np.nan) for key in LAYER_KEYS}
    uses = counts.sum(axis=1)
    for l in range(num_layers):
        per["entropy"][l], per["gini"][l], cov, per["effective_experts"][l] = _balance(counts[l])
        for n, c in zip(COVERAGE_TOPS, cov):
            per[f"top{n}_coverage"][l] = c

    order = np.arange(trace.num_tokens, dtype=np.int64)
    per["reuse"][:] = _reuse_nb(experts, offsets, order, num_experts)
    per["reuse_shuffled"][:] = _reuse_nb(experts, offsets, _shuffled_order(offsets), num_experts)
    if num_layers > 1:
        if num_experts <= _DENSE_TABLE_MAX_EXPERTS:
            per["cross_layer"][:-1] = _cross_layer_nb(experts, num_experts)
        else:
            per["cross_layer"][:-1] = [_cross_layer_sparse(experts, l, num_experts) for l in range(num_layers - 1)]

    out: dict = {key: _mean(per[key]) for key in LAYER_KEYS}
    out["sequence_lengths"] = _length_summary(trace.sequence_lengths)
    out["prompt_lengths"] = None
    if trace.prompt_tokens is not None:
        out["prompt_lengths"] = {
            **_length_summary(trace.prompt_tokens), "tokens": trace.num_prompt_tokens
        }
    out["per_layer"] = [
        {"layer": l, "uses": int(uses[l]), **{key: _num(per[key][l]) for key in LAYER_KEYS}}
        for l in range(num_layers)
    ]
    return out


def _balance(counts: np.ndarray) -> tuple[float, float, list[float], float]:
    """Entropy, Gini, coverages and effective experts of one layer's (E,) use counts."""
    total = int(counts.sum())
    num_experts = counts.shape[0]
    if total == 0:
        return math.nan, math.nan, [math.nan] * len(COVERAGE_TOPS), math.nan
    p = counts / total
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(num_experts)) if num_experts > 1 else 1.0
    x = np.sort(counts).astype(np.float64)
    i = np.arange(1, num_experts + 1, dtype=np.float64)
    gini = float(((2.0 * i - num_experts - 1.0) * x).sum() / (num_experts * x.sum()))
    desc = x[::-1]
    cov = [float(desc[:n].sum() / total) for n in COVERAGE_TOPS]
    effective = float((p > 0.01).sum())
    return entropy, gini, cov, effective


def _cross_layer_sparse(experts: np.ndarray, layer: int, num_experts: int) -> float:
    """:func:`_cross_layer_nb` for one layer pair, counting co-occurring pairs by sorting."""
    top_k = experts.shape[2]
    a = experts[:, layer, :].astype(np.int64)
    b = experts[:, layer + 1, :].astype(np.int64)
    uses = int((a >= 0).sum())
    if uses == 0:
        return math.nan
    pa = np.repeat(a, top_k, axis=1).ravel()
    pb = np.tile(b, (1, top_k)).ravel()
    ok = (pa >= 0) & (pb >= 0)
    keys, cnt = np.unique(pa[ok] * num_experts + pb[ok], return_counts=True)
    src, dst = np.divmod(keys, num_experts)
    # Per source, the K largest counts, ties to the lower successor id.
    order = np.lexsort((dst, -cnt, src))
    src, cnt = src[order], cnt[order]
    first = np.searchsorted(src, src, side="left")
    rank = np.arange(src.size) - first
    return float(cnt[rank < top_k].sum() / (uses * top_k))


def _shuffled_order(offsets: np.ndarray) -> np.ndarray:
    """Row order with each sequence's rows permuted, (tokens,) int64, from ``PCG64(SHUFFLE_SEED)``."""
    return _shuffle_within_nb(np.random.Generator(np.random.PCG64(SHUFFLE_SEED)), offsets)


def _length_summary(lengths: np.ndarray) -> dict:
    if lengths.size == 0:
        return {"count": 0, "mean": None, "min": None, "max": None, "p50": None, "p95": None}
    return {
        "count": int(lengths.size),
        "mean": float(lengths.mean()),
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "p50": float(np.percentile(lengths, 50)),
        "p95": float(np.percentile(lengths, 95)),
    }


def _mean(values: np.ndarray):
    ok = values[~np.isnan(values)]
    return float(ok.mean()) if ok.size else None


def _num(x):
    return None if math.isnan(x) else float(x)


@kernel
def _layer_counts_nb(experts, num_experts):
    """Use counts, (L, E) int64, of a (tokens, L, K) trace; ``-1`` entries skipped."""
    tokens, num_layers, top_k = experts.shape
    counts = np.zeros((num_layers, num_experts), dtype=np.int64)
    for t in range(tokens):
        for l in range(num_layers):
            for k in range(top_k):
                e = experts[t, l, k]
                if e >= 0:
                    counts[l, e] += 1
    return counts


@kernel
def _reuse_nb(experts, offsets, order, num_experts):
    """Mean ``|S_t & S_prev| / K`` per layer, (L,) float64 (NaN without pairs).

    Rows are visited in ``order`` (a permutation of the rows that keeps every sequence's rows
    inside its own ``offsets`` range); pairs are consecutive positions of one sequence.
    """
    tokens, num_layers, top_k = experts.shape
    # mark[l, e] == pair number: expert e is in the previous row of layer l.
    mark = np.zeros((num_layers, num_experts), dtype=np.int64)
    hits = np.zeros(num_layers, dtype=np.int64)
    pairs = 0
    for s in range(offsets.shape[0] - 1):
        for pos in range(offsets[s] + 1, offsets[s + 1]):
            pairs += 1
            prev = experts[order[pos - 1]]
            cur = experts[order[pos]]
            for l in range(num_layers):
                m = mark[l]
                row_prev = prev[l]
                row_cur = cur[l]
                for k in range(top_k):
                    e = row_prev[k]
                    if e >= 0:
                        m[np.uint32(e)] = pairs
                h = 0
                for k in range(top_k):
                    e = row_cur[k]
                    if e >= 0:
                        h += m[np.uint32(e)] == pairs
                hits[l] += h
    out = np.full(num_layers, np.nan)
    if pairs > 0:
        for l in range(num_layers):
            out[l] = hits[l] / (pairs * top_k)
    return out


@kernel
def _shuffle_within_nb(rng, offsets):
    """Row order, (tokens,) int64, with each sequence's rows Fisher-Yates shuffled in place."""
    order = np.arange(offsets[-1])
    for s in range(offsets.shape[0] - 1):
        lo = offsets[s]
        for i in range(offsets[s + 1] - 1, lo, -1):
            j = lo + min(int(rng.random() * (i - lo + 1)), i - lo)
            tmp = order[i]
            order[i] = order[j]
            order[j] = tmp
    return order


@kernel
def _cross_layer_nb(experts, num_experts):
    """Co-occurrence predictability of layer l + 1 from layer l, (L - 1,) float64 (NaN when
    layer l has no uses)."""
    tokens, num_layers, top_k = experts.shape
    out = np.full(num_layers - 1, np.nan)
    table = np.zeros((num_experts, num_experts), dtype=np.int64)
    picked = np.zeros(num_experts, dtype=np.bool_)
    for l in range(num_layers - 1):
        table[:, :] = 0
        uses = 0
        for t in range(tokens):
            for i in range(top_k):
                a = experts[t, l, i]
                if a < 0:
                    continue
                uses += 1
                for j in range(top_k):
                    b = experts[t, l + 1, j]
                    if b >= 0:
                        table[a, b] += 1
        if uses == 0:
            continue
        hit = 0
        for a in range(num_experts):
            # K largest entries of the row, ties to the lower id (selection; K is small).
            picked[:] = False
            for _ in range(min(top_k, num_experts)):
                best = -1
                for b in range(num_experts):
                    if not picked[b] and (best < 0 or table[a, b] > table[a, best]):
                        best = b
                picked[best] = True
                hit += table[a, best]
        out[l] = hit / (uses * top_k)
    return out
