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

Memory per layer, with ``W = ceil(E / 64)``: the pattern index holds ``2 * max_patterns`` rounded
up to a power of two int32 slots; each pattern takes 36 + 8 W bytes; each (pattern, next expert)
pair that must be counted takes 24 bytes (only when ``0.3 * min_pattern_frequency > 1``; up to
``max_successors`` of them); co-occurrence and temporal counts take ``8 E (E + 64)`` bytes. Arrays
are reserved untouched (``np.empty``), so only what a trace uses becomes resident; the index is
validated by back-pointers instead of being cleared. With the defaults and ``E = 128`` that is
at most 8 MiB of index and 52 MiB of patterns per layer.

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
from ..reference.multi_look import MultiLookReference
from . import Param, StrategyDef

try:  # the shared timeline core provides the replay loop
    from ..timeline.core import run_timeline
except ImportError:  # pragma: no cover - only while the core is being written
    run_timeline = None

__all__ = ["STRATEGY", "init", "observe", "replay"]

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

# Cap on the integer thresholds: counts never get near it.
_BIG = 1 << 62


@kernel
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


@kernel
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


@kernel
def _find(state, sched, l, h, start):
    """Record of the pattern of layer ``l`` starting at ``start`` (hash ``h``), or ``-1 - slot``.

    A slot is live only when it names a record whose back-pointer names the slot again, so the
    index never needs clearing. The index is at most half full, so probing ends.
    """
    cfg = state[0]
    index = state[1]
    pat_hash = state[2]
    pat_start = state[3]
    pat_slot = state[7]
    npat = state[9][l]
    tmask = np.uint64(cfg[_TMASK])
    slot = np.int64(h & tmask)
    while True:
        r = np.int64(index[l, slot])
        if r < 0 or r >= npat or pat_slot[l, r] != slot:
            return -1 - slot
        if pat_hash[l, r] == h and _same_pattern(
            sched.r_ptr, sched.r_experts, sched.num_layers, l, pat_start[l, r], start, cfg[_P]
        ):
            return r
        slot = (slot + 1) & cfg[_TMASK]


@kernel
def _bump(counts, i, j, k, mask, row_a, row_b, tint):
    """Count one more ``k`` in row ``(i, j)``; set its bit once the count reaches ``tint``."""
    c = counts[i, j, k]
    if c < tint:
        c += 1
        counts[i, j, k] = c
        if c == tint:
            mask[row_a, row_b, k >> 6] |= _U1 << np.uint64(k & 63)


@kernel
def init(num_layers, num_experts, top_k, params):
    """Empty pattern tables, co-occurrence and temporal counts for every layer."""
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
    tint = _BIG
    if min_freq < _BIG:
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
    return (
        cfg,
        np.empty((L, tsize), np.int32),  # 1 index: slot -> record (validated by pat_slot)
        np.empty((L, max_pat), np.uint64),  # 2 pattern hash
        np.empty((L, max_pat), np.int64),  # 3 step of the pattern's first recorded set
        np.empty((L, max_pat), np.int64),  # 4 occurrences c
        np.empty((L, max_pat), np.int64),  # 5 sum of occurrence start steps S
        np.empty((L, max_pat), np.int32),  # 6 first counted next-expert node, -1 none
        np.empty((L, max_pat), np.int32),  # 7 index slot of the record (back-pointer)
        np.empty((L, max_pat, words), np.uint64),  # 8 next experts past their threshold
        np.zeros(L, np.int64),  # 9 patterns recorded
        np.empty((L, max(arena, 1)), np.int32),  # 10 node expert
        np.empty((L, max(arena, 1)), np.int64),  # 11 node occurrences
        np.empty((L, max(arena, 1)), np.int64),  # 12 node sum of starts
        np.empty((L, max(arena, 1)), np.int32),  # 13 next node, -1 none
        np.zeros(L, np.int64),  # 14 (pattern, next expert) pairs recorded
        np.zeros(L, np.int64),  # 15 nodes allocated
        np.zeros(L, np.uint64),  # 16 hash of the previous step's current pattern
        np.zeros((L, num_experts, num_experts), np.int64),  # 17 co-occurrence counts (to tint)
        np.zeros((L, num_experts, words), np.uint64),  # 18 co-occurrence bits past tint
        np.zeros((L, period, num_experts), np.int64),  # 19 temporal counts (to tint)
        np.zeros((L, period, words), np.uint64),  # 20 temporal bits past tint
        np.zeros(words, np.uint64),  # 21 scratch: predicted set
        np.zeros(words, np.uint64),  # 22 scratch: new next experts
    )


@kernel
def _record_occurrence(state, sched, l, s, experts):
    """Count the pattern occurrence that ends at step ``s - 1`` and is followed by ``experts``."""
    cfg = state[0]
    length = cfg[_P]
    start = s - length
    h = state[16][l]
    r = _find(state, sched, l, h, start)
    npat = state[9]
    if r < 0:
        if npat[l] >= cfg[_MAXPAT]:
            return  # table full: a new pattern is not recorded
        slot = -1 - r
        r = npat[l]
        npat[l] = r + 1
        state[1][l, slot] = r
        state[7][l, r] = slot
        state[2][l, r] = h
        state[3][l, r] = start
        state[4][l, r] = 0
        state[5][l, r] = 0
        state[6][l, r] = -1
        state[8][l, r, :] = _U0
    state[4][l, r] += 1
    state[5][l, r] += start
    bits = state[8]
    nsuc = state[14]
    if cfg[_ARENA] == 0:
        # a new pair's count is 1 at once, already past the threshold
        for e in experts:
            w = e >> 6
            b = _U1 << np.uint64(e & 63)
            if bits[l, r, w] & b == _U0 and nsuc[l] < cfg[_MAXSUC]:
                nsuc[l] += 1
                bits[l, r, w] |= b
        return
    fresh = state[22]
    fresh[:] = _U0
    for e in experts:
        fresh[e >> 6] |= _U1 << np.uint64(e & 63)
    for w in range(fresh.shape[0]):
        fresh[w] &= ~bits[l, r, w]
    node_exp = state[10]
    node_cnt = state[11]
    node_sum = state[12]
    node_next = state[13]
    n = state[6][l, r]
    while n >= 0:
        e = node_exp[l, n]
        b = _U1 << np.uint64(e & 63)
        if fresh[e >> 6] & b != _U0:
            node_cnt[l, n] += 1
            node_sum[l, n] += start
            fresh[e >> 6] ^= b
        n = node_next[l, n]
    nodes = state[15]
    for w in range(fresh.shape[0]):
        word = fresh[w]
        while word != _U0:
            e = w * 64 + np.int64(trailing_zeros(word))
            word &= word - _U1
            if nsuc[l] >= cfg[_MAXSUC]:
                return  # successor table full: a new pair is not recorded
            nsuc[l] += 1
            n = nodes[l]
            nodes[l] = n + 1
            node_exp[l, n] = e
            node_cnt[l, n] = 1
            node_sum[l, n] = start
            node_next[l, n] = state[6][l, r]
            state[6][l, r] = n


@kernel
def _pattern_prediction(state, params, sched, l, s, acc):
    """OR into ``acc`` the next experts the current pattern predicts; remember its hash."""
    cfg = state[0]
    length = cfg[_P]
    start = s - length + 1
    h = _pattern_hash(sched.r_ptr, sched.r_experts, sched.num_layers, l, start, length)
    state[16][l] = h
    r = _find(state, sched, l, h, start)
    if r < 0:
        return
    age = s + 1 - length
    frequency = state[4][l, r] * age - state[5][l, r]
    if not np.float64(frequency) >= params[2]:
        return
    bits = state[8]
    if cfg[_ARENA] > 0:
        threshold = params[2] * 0.3
        node_exp = state[10]
        node_next = state[13]
        prev = -1
        n = state[6][l, r]
        while n >= 0:
            after = node_next[l, n]
            if np.float64(state[11][l, n] * age - state[12][l, n]) >= threshold:
                e = node_exp[l, n]
                bits[l, r, e >> 6] |= _U1 << np.uint64(e & 63)
                # past the threshold for good: drop the node from the pattern's list
                if prev < 0:
                    state[6][l, r] = after
                else:
                    node_next[l, prev] = after
            else:
                prev = n
            n = after
    for w in range(acc.shape[0]):
        acc[w] |= bits[l, r, w]


@kernel
def observe(state, params, sched, s, l, experts, counts, out):
    """Update layer ``l``'s patterns with its set at step ``s`` and write its predicted keys.

    ``experts`` (int32, ascending) is ``R``; ``counts`` is unused. Writes the keys
    ``l * E + e`` of the predicted experts, ascending, at most ``max_predictions``, into ``out``
    (int64) and returns how many.
    """
    cfg = state[0]
    length = cfg[_P]
    history = s + 1
    if history < length:
        return 0
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    tint = cfg[_TINT]

    # 1. sequence patterns: one new occurrence per call (the seed re-counts all of them)
    if history >= length + 1:
        _record_occurrence(state, sched, l, s, experts)

    # 2. co-occurrence: the last transition, once per call
    co_cnt = state[17]
    co_bits = state[18]
    if history >= 2:
        p = (s - 1) * num_layers + l
        for j in range(r_ptr[p], r_ptr[p + 1]):
            a = r_experts[j]
            for b in experts:
                _bump(co_cnt, l, a, b, co_bits, l, a, tint)

    # 3. temporal positions: the recent window, re-added on every call; below the window the
    # positions start negative and wrap like Python's %
    tm_cnt = state[19]
    tm_bits = state[20]
    period = cfg[_PERIOD]
    window = cfg[_WINDOW]
    m = min(history, window)
    for idx in range(m):
        j = history - m + idx
        pos = (history - window + idx) % period
        p = j * num_layers + l
        for q in range(r_ptr[p], r_ptr[p + 1]):
            _bump(tm_cnt, l, pos, r_experts[q], tm_bits, l, pos, tint)

    # predictions: union of the components as a bit set (transition chains never predict)
    acc = state[21]
    acc[:] = _U0
    _pattern_prediction(state, params, sched, l, s, acc)
    for a in experts:
        for w in range(acc.shape[0]):
            acc[w] |= co_bits[l, a, w]
    pos = s % period
    for w in range(acc.shape[0]):
        acc[w] |= tm_bits[l, pos, w]

    base = l * num_experts
    n = 0
    limit = cfg[_MAXPRED]
    for w in range(acc.shape[0]):
        word = acc[w]
        while word != _U0 and n < limit:
            out[n] = base + w * 64 + np.int64(trailing_zeros(word))
            word &= word - _U1
            n += 1
    return n


if run_timeline is not None:

    @kernel
    def replay(sched, cost, config, params):
        return run_timeline(sched, cost, config, params, init, observe)

else:  # pragma: no cover
    replay = None


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
            1e15,
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
    replay=replay,
    reference=MultiLookReference,
    description="sequence patterns, co-occurrence and temporal positions (the seed's multi-look)",
)
