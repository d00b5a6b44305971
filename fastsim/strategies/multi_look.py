"""Strategy C, multi-look: the seed's ``MultiLookStrategy`` as a Numba kernel.

Per layer the seed keeps sequence patterns (the last ``pattern_length`` sets -> the experts that
followed), expert co-occurrence (expert of one step -> experts of the next), temporal positions
(``step % 64`` -> experts) and transition chains (never filled by the seed, so never predicting).
It predicts the union of every component's experts whose count reaches ``min_pattern_frequency``
(``0.3`` of it for a pattern's next experts), in ascending id order, truncated to
``max_predictions``.

The seed re-counts every pattern occurrence of the whole history on every call, so at history
length ``H`` (step ``s = H - 1``) the occurrence starting at step ``i`` has been counted
``H - P - i`` times (``P = pattern_length``), once per call since its next set arrived. Summed over
the ``c`` recorded occurrences of a pattern with position sum ``S`` this is ``c * (H - P) - S``;
the kernel keeps ``(c, S)`` per pattern and per (pattern, next expert) and so reproduces the
seed's counts exactly in O(1) amortised work per step instead of O(H). Every count only grows, so
an entry that once reaches its threshold stays predicted: co-occurrence and temporal counts are
kept up to the threshold and then become a bit in a per-row bit set, and a pattern's next expert
becomes a bit in that pattern's bit set (at once when the threshold is at most 1, as with the
seed's defaults; otherwise the first time the pattern is current with the count high enough).

Memory per layer, with ``W = ceil(E / 64)``: each recorded pattern takes ``40 + 8 W`` bytes plus
at most 8 bytes of index (the index starts at 1024 int32 slots and doubles to stay at most half
full, up to ``2 * max_patterns`` rounded up to a power of two); each (pattern, next expert) pair
that must be counted takes 32 bytes (only when ``0.3 * min_pattern_frequency > 1``; at most
``max_successors``); co-occurrence and temporal counts take ``(E + period) (4 E + 8 W)`` bytes.
The pattern arrays are reserved for ``max_patterns`` but left untouched (``np.empty``), so only
what a trace uses becomes resident: with the defaults and ``E = 128``, at most 56 MiB of patterns
and 8 MiB of index per layer, and about 8 MiB per layer for 112 000 patterns (a 1M-token trace
of the built-in generator's defaults).

When a layer's pattern table holds ``max_patterns`` patterns, a pattern seen for the first time
is not recorded (its occurrences never count and it never predicts); when a layer has recorded
``max_successors`` (pattern, next expert) pairs, a new pair is not recorded. Entries already
recorded keep counting. The reference applies the same limits, so both stay equal.
"""
from __future__ import annotations

import math

import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from .._jit import kernel
from . import Param, StrategyDef


__all__ = ["STRATEGY", "init", "observe"]

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_PRIME = np.uint64(0x100000001B3)
_SEED = np.uint64(0xCBF29CE484222325)
_SEP = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S6 = np.uint64(6)
_M63 = np.uint64(63)

# Slots of the derived integer settings in ``cfg`` (state[0]).
_P, _MAXPRED, _MAXPAT, _MAXSUC, _PERIOD, _WINDOW, _TINT, _TMASK, _WORDS, _ARENA = range(10)
# Fields of a pattern record (``pat[l, r]``) and of a counted next-expert node (``nodes[l, n]``).
_START, _CNT, _SUM, _HEAD = range(4)
_NEXP, _NCNT, _NSUM, _NNEXT = range(4)
# Per-layer totals (``lay[l]``), the previous step's lookup (record, or ``-1 - slot``) and the
# index slots in use.
_NPAT, _NSUC, _NNODE, _FOUND, _SLOTS = range(5)

@kernel(inline="always", error_model="numpy")
def _pattern_hash(r_ptr, r_experts, num_layers, l, start, length):
    """64-bit hash of the ``length`` sets of layer ``l`` from step ``start`` (set boundaries kept)."""
    h = _SEED
    for k in range(length):
        p = (start + k) * num_layers + l
        for j in range(r_ptr[p], r_ptr[p + 1]):
            h = (h ^ np.uint64(r_experts[j])) * _PRIME
        h = (h ^ _SEP) * _PRIME
    h = (h ^ (h >> _S30)) * _MIX1
    h = (h ^ (h >> _S27)) * _MIX2
    return h ^ (h >> _S31)


@kernel(inline="always", error_model="numpy")
def _same_pattern(r_ptr, r_experts, num_layers, l, a, b, length):
    """Whether the patterns of layer ``l`` starting at steps ``a`` and ``b`` are equal."""
    if a == b:
        return True
    for k in range(length):
        pa = (a + k) * num_layers + l
        pb = (b + k) * num_layers + l
        la = r_ptr[pa]
        lb = r_ptr[pb]
        n = r_ptr[pa + 1] - la
        if r_ptr[pb + 1] - lb != n:
            return False
        for j in range(n):
            if r_experts[la + j] != r_experts[lb + j]:
                return False
    return True


# Index slots a layer starts with; the index doubles as patterns arrive.
_FIRST_SLOTS = 1024


@kernel(inline="always", error_model="numpy")
def _find(index, pat, pbits, tmask, words, r_ptr, r_experts, num_layers, l, h, start, length):
    """Record of the pattern of layer ``l`` starting at ``start`` (hash ``h``), or ``-1 - slot``.

    The slots in use are at most half full, so probing ends; equal hashes are confirmed by
    comparing the sets themselves in the schedule.
    """
    slot = np.int64(h & np.uint64(tmask))
    while True:
        r = np.int64(index[l, slot])
        if r < 0:
            return -1 - slot
        if pbits[l, r, words] == h and _same_pattern(r_ptr, r_experts, num_layers, l, pat[l, r, _START], start, length):
            return r
        slot = (slot + 1) & tmask


@kernel(error_model="numpy")
def _grow(index, pbits, lay, l, words):
    """Double layer ``l``'s index slots in use and re-insert its patterns by their stored hash."""
    slots = lay[l, _SLOTS] * 2
    lay[l, _SLOTS] = slots
    mask = slots - 1
    index[l, :slots] = -1
    for r in range(lay[l, _NPAT]):
        slot = np.int64(pbits[l, r, words] & np.uint64(mask))
        while index[l, slot] >= 0:
            slot = (slot + 1) & mask
        index[l, slot] = r


@kernel(inline="always", error_model="numpy")
def _bump(counts, bits, l, row, k, tint):
    """Count one more ``k`` in row ``row``; set its bit once the count reaches ``tint``."""
    c = np.int64(counts[l, row, k])
    if c < tint:
        c += 1
        counts[l, row, k] = c
        if c == tint:
            bits[l, row, k >> 6] |= _U1 << np.uint64(k & 63)


@kernel
def init(num_layers, num_experts, top_k, params):
    """Empty pattern tables, co-occurrence and temporal counts for every layer.

    Returns ``(cfg, index, pat, pbits, nodes, lay, prev, counts, bits, scratch)``: settings; the
    pattern index ``(L, slots)`` int32; pattern records ``(L, max_patterns, 4)`` int64 (first
    start, occurrences, sum of starts, first node); ``(L, max_patterns, W + 1)``
    uint64 next-expert bits and hash; counted next-expert nodes ``(L, n, 4)`` int64 (expert,
    occurrences, sum of starts, next node); per-layer totals, last lookup and slots in use ``(L, 5)`` int64; the previous
    step's pattern hash ``(L,)`` uint64; counts ``(L, E + period, E)`` int32 (kept up to the threshold) and bits
    ``(L, E + period, W)`` uint64 (co-occurrence rows, then temporal rows); scratch ``(2, W)``.
    """
    length = np.int64(params[0])
    min_freq = params[2]
    max_pat = np.int64(params[4])
    max_suc = np.int64(params[5])
    period = np.int64(params[6])
    window = np.int64(params[7])
    words = (num_experts + 63) // 64
    tsize = 2
    while tsize < 2 * max_pat:
        tsize *= 2
    tint = max(np.int64(1), np.int64(math.ceil(min_freq)))
    arena = max_suc if min_freq * 0.3 > 1.0 else 0
    cfg = np.empty(10, np.int64)
    cfg[_P] = length
    cfg[_MAXPRED] = np.int64(params[3])
    cfg[_MAXPAT] = max_pat
    cfg[_MAXSUC] = max_suc
    cfg[_PERIOD] = period
    cfg[_WINDOW] = window
    cfg[_TINT] = tint
    cfg[_TMASK] = tsize - 1
    cfg[_WORDS] = words
    cfg[_ARENA] = arena
    L = num_layers
    first = min(tsize, _FIRST_SLOTS)
    index = np.empty((L, tsize), np.int32)
    index[:, :first] = -1
    lay = np.zeros((L, 5), np.int64)
    lay[:, _SLOTS] = first
    return (
        cfg,
        index,
        np.empty((L, max_pat, 4), np.int64),
        np.empty((L, max_pat, words + 1), np.uint64),
        np.empty((L, max(arena, 1), 4), np.int64),
        lay,
        np.zeros(L, np.uint64),
        np.zeros((L, num_experts + period, num_experts), np.int32),
        np.zeros((L, num_experts + period, words), np.uint64),
        np.zeros((2, words), np.uint64),
    )


@kernel(inline="always", error_model="numpy")
def _record_occurrence(cfg, index, pat, pbits, nodes, lay, fresh, l, start, h, experts):
    """Count the occurrence of the pattern (hash ``h``) starting at step ``start``, followed by ``experts``."""
    words = cfg[_WORDS]
    # the table is unchanged since the previous step looked this pattern up
    r = lay[l, _FOUND]
    if r < 0:
        if lay[l, _NPAT] >= cfg[_MAXPAT]:
            return  # table full: a new pattern is not recorded
        slot = -1 - r
        r = lay[l, _NPAT]
        lay[l, _NPAT] = r + 1
        index[l, slot] = r
        pat[l, r, _START] = start
        pat[l, r, _CNT] = 0
        pat[l, r, _SUM] = 0
        pat[l, r, _HEAD] = -1
        for w in range(words):
            pbits[l, r, w] = _U0
        pbits[l, r, words] = h
        if 2 * (r + 1) > lay[l, _SLOTS]:
            _grow(index, pbits, lay, l, words)
    pat[l, r, _CNT] += 1
    pat[l, r, _SUM] += start
    max_suc = cfg[_MAXSUC]
    if cfg[_ARENA] == 0:
        # a new pair's count is 1 at once, already past the threshold
        for e in experts:
            w = e >> 6
            b = _U1 << np.uint64(e & 63)
            if pbits[l, r, w] & b == _U0 and lay[l, _NSUC] < max_suc:
                lay[l, _NSUC] += 1
                pbits[l, r, w] |= b
        return
    for w in range(words):
        fresh[w] = _U0
    for e in experts:
        fresh[e >> 6] |= _U1 << np.uint64(e & 63)
    for w in range(words):
        fresh[w] &= ~pbits[l, r, w]
    n = pat[l, r, _HEAD]
    while n >= 0:
        e = nodes[l, n, _NEXP]
        b = _U1 << np.uint64(e & 63)
        if fresh[e >> 6] & b != _U0:
            nodes[l, n, _NCNT] += 1
            nodes[l, n, _NSUM] += start
            fresh[e >> 6] ^= b
        n = nodes[l, n, _NNEXT]
    for w in range(words):
        word = fresh[w]
        while word != _U0:
            e = w * 64 + np.int64(trailing_zeros(word))
            word &= word - _U1
            if lay[l, _NSUC] >= max_suc:
                return  # successor table full: a new pair is not recorded
            lay[l, _NSUC] += 1
            n = lay[l, _NNODE]
            lay[l, _NNODE] = n + 1
            nodes[l, n, _NEXP] = e
            nodes[l, n, _NCNT] = 1
            nodes[l, n, _NSUM] = start
            nodes[l, n, _NNEXT] = pat[l, r, _HEAD]
            pat[l, r, _HEAD] = n


@kernel(inline="always", error_model="numpy")
def _pattern_prediction(cfg, index, pat, pbits, nodes, lay, min_freq, sched, l, s, h, acc):
    """OR into ``acc`` the next experts the current pattern (hash ``h``) predicts at step ``s``."""
    length = cfg[_P]
    words = cfg[_WORDS]
    r = _find(index, pat, pbits, lay[l, _SLOTS] - 1, words, sched.r_ptr, sched.r_experts,
              sched.num_layers, l, h, s - length + 1, length)
    lay[l, _FOUND] = r
    if r < 0:
        return
    age = s + 1 - length
    if not np.float64(pat[l, r, _CNT] * age - pat[l, r, _SUM]) >= min_freq:
        return
    if cfg[_ARENA] > 0:
        threshold = min_freq * 0.3
        prev = -1
        n = pat[l, r, _HEAD]
        while n >= 0:
            after = nodes[l, n, _NNEXT]
            if np.float64(nodes[l, n, _NCNT] * age - nodes[l, n, _NSUM]) >= threshold:
                e = nodes[l, n, _NEXP]
                pbits[l, r, e >> 6] |= _U1 << np.uint64(e & 63)
                # past the threshold for good: drop the node from the pattern's list
                if prev < 0:
                    pat[l, r, _HEAD] = after
                else:
                    nodes[l, prev, _NNEXT] = after
            else:
                prev = n
            n = after
    for w in range(words):
        acc[w] |= pbits[l, r, w]


@kernel(error_model="numpy")
def observe(state, params, sched, s, l, experts, counts, out):
    """Update layer ``l``'s patterns with its set at step ``s`` and write its predicted keys.

    ``experts`` (int32, ascending) is ``R``; ``counts`` is unused. Writes the keys
    ``l * E + e`` of the predicted experts, ascending, at most ``max_predictions``, into ``out``
    (int64) and returns how many.
    """
    cfg, index, pat, pbits, nodes, lay, prev, cnt, bits, scratch = state
    length = cfg[_P]
    history = s + 1
    if history < length:
        return 0
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    tint = cfg[_TINT]
    acc = scratch[0]

    # 1. sequence patterns: one new occurrence per call (the seed re-counts all of them); its
    # pattern is the one that was current at the previous step, whose hash is kept
    if history >= length + 1:
        _record_occurrence(cfg, index, pat, pbits, nodes, lay, scratch[1], l, s - length, prev[l], experts)

    # 2. co-occurrence: the last transition, once per call
    if history >= 2:
        p = (s - 1) * num_layers + l
        for j in range(r_ptr[p], r_ptr[p + 1]):
            a = r_experts[j]
            for b in experts:
                _bump(cnt, bits, l, a, b, tint)

    # 3. temporal positions: the recent window, re-added on every call; below the window the
    # positions start negative and wrap like Python's %
    period = cfg[_PERIOD]
    window = cfg[_WINDOW]
    m = min(history, window)
    for idx in range(m):
        p = (history - m + idx) * num_layers + l
        row = num_experts + (history - window + idx) % period
        for q in range(r_ptr[p], r_ptr[p + 1]):
            _bump(cnt, bits, l, row, r_experts[q], tint)

    # predictions: the union of the components as a bit set (transition chains never predict)
    words = cfg[_WORDS]
    for w in range(words):
        acc[w] = _U0
    h = _pattern_hash(r_ptr, r_experts, num_layers, l, s - length + 1, length)
    prev[l] = h
    _pattern_prediction(cfg, index, pat, pbits, nodes, lay, params[2], sched, l, s, h, acc)
    for a in experts:
        for w in range(words):
            acc[w] |= bits[l, a, w]
    row = num_experts + s % period
    for w in range(words):
        acc[w] |= bits[l, row, w]

    base = l * num_experts
    n = 0
    limit = cfg[_MAXPRED]
    for w in range(words):
        word = acc[w]
        while word != _U0 and n < limit:
            out[n] = base + w * 64 + np.int64(trailing_zeros(word))
            word &= word - _U1
            n += 1
    return n



_INT_MAX = float(2**31 - 1)

STRATEGY = StrategyDef(
    name="multi-look",
    init=init,
    observe=observe,
    params=(
        Param("pattern_length", 3, "int", 1, _INT_MAX, doc="sets per sequence pattern"),
        Param(
            "lookahead_steps",
            4,
            "int",
            1,
            _INT_MAX,
            doc="steps to predict ahead (kept from the seed; its prediction path never reads it)",
        ),
        Param(
            "min_pattern_frequency",
            3,
            "float",
            0.0,
            1e9,
            doc="count a pattern, co-occurrence or temporal entry needs to predict (0.3 of it for next experts)",
        ),
        Param("max_predictions", 32, "int", 1, _INT_MAX, doc="most experts predicted per layer and step"),
        Param(
            "max_patterns",
            1 << 20,
            "int",
            1,
            float(1 << 28),
            doc="sequence patterns recorded per layer; later new patterns are not recorded",
        ),
        Param(
            "max_successors",
            1 << 22,
            "int",
            1,
            float(1 << 30),
            doc="(pattern, next expert) pairs recorded per layer; later new pairs are not recorded",
        ),
        Param("temporal_period", 64, "int", 1, float(1 << 20), doc="temporal positions are step % period"),
        Param("temporal_window", 10, "int", 1, float(1 << 20), doc="recent sets re-added to the temporal counts per step"),
    ),
    builtin=True,
    description="sequence patterns, co-occurrence and temporal positions (the seed's multi-look)",
)
