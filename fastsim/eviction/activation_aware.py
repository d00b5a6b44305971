"""``activation-aware``: MoE-Infinity's priority, the request's activation counts times a
layer-position term; the smallest priority is evicted.

``priority(k) = (1.0 - (d - 1) / L) * (act(k) + smoothing)`` with ``act(k)`` the tokens of the
requests now in the batch routed to ``k`` so far and ``d`` how many layers from the current one
until ``k``'s layer runs again (``docs/model.md``, "Cache organisation"). After MoE-Infinity's
``moe_infinity/memory/expert_priority_score.py`` (``priority_score``) and
``memory/expert_cache.py`` (``ExpertCache.gpu_evict``). ``act`` grows at each position from the
schedule's counts and shrinks when a request finishes (the schedule's per-step release lists).
Ties go to the least recent key, then the lowest.

Every key's priority moves with the current layer, but the keys of one layer share their
layer-position term, so within a layer the order is by ``act``, then recency, whatever the
current layer. Each layer keeps its keys in a heap by that order
(:func:`~fastsim.eviction.base.heap_state`, one segment per layer), and a tournament tree over
the layers holds each layer's first key at its current priority: a position re-ranks the ``L``
layer heads once (O(L)), a victim is O(log L). The order within a layer equals the float
priority's while ``act + smoothing`` stays below ``2**50`` (distinct counts then give distinct
products); a replay that could pass it (a huge ``smoothing``) scans the partition instead, as
does a partition whose layers are not contiguous. All of it lives in one int64 array (floats as
their bits), so no hook pays reference counting for a tuple of arrays.

The hooks are inlined into the timeline core; the helpers below them (underscored) are compiled
once and called. Inlined too, their bodies were copied into every call site of every hook that
reaches them (the tournament's replay alone sits under four hooks), which doubled the core's
compile time (top-k, simple timeline: 89 s against 45 s) and ran 15% slower besides (one
call passes one array: no tuple to count references of).
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import (
    C_PARKED, H_CTX, H_HEAP, H_MEMBER, H_OFF, H_PARK, H_PRIO, H_PRIO2, H_SIZE, HEAP_ROWS, IN_FLIGHT, OUT, SETTLED,
    Hooks, bits_float, eligibility, float_bits, heap_delete, heap_insert, heap_park_top, heap_refresh, heap_set,
    heap_state, heap_top, never_keep, no_position,
)

__all__ = ["HOOKS"]

_EXACT_BELOW = 2.0**50
# extra rows after the per-layer heaps
_ACT = HEAP_ROWS  # act(k) of every key, resident or not
_TREE = HEAP_ROWS + 1  # the tournament: node i holds the winning layer of its leaves, or -1
_TERM = HEAP_ROWS + 2  # the layer-position term of layer x at current layer c: column x - c - 1 + L (float bits)
_LEAD_KEY = HEAP_ROWS + 3  # each layer's first key, or -1
_LEAD = HEAP_ROWS + 4  # its priority (float bits; priorities are >= 0, so the bits sort as the floats)
_LAYER_PART = HEAP_ROWS + 5  # the partition of each layer
_FIRST = HEAP_ROWS + 6  # each partition's first layer
_END = HEAP_ROWS + 7  # and one past its last
_SHAPE = HEAP_ROWS + 8  # the columns below
_C, _L, _E, _LEAVES, _STALE, _SCAN, _SMOOTHING = 0, 1, 2, 3, 4, 5, 6


@kernel
def _distance(shape, layer, num_layers):
    """How many layers from the current one until ``layer`` runs again (1 = the next)."""
    d = (layer - shape[0] - 1) % num_layers + 1
    return d


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    leaves = 1
    while leaves < num_layers:
        leaves *= 2
    seg_off = np.arange(num_layers + 1) * num_experts  # one heap per layer
    st = heap_state(seg_off, max(num_keys + 1, 2 * leaves, 2 * num_layers, _SMOOTHING + 1), 9)
    st[_TREE, :] = -1
    st[_LEAD_KEY, :] = -1
    smoothing = params[0]
    zero = np.zeros(1, np.int64)
    for i in range(2 * num_layers):
        d = _distance(zero, i - num_layers + 1, num_layers)
        st[_TERM, i] = float_bits(1.0 - (d - 1) / num_layers)
    parts = part_off.shape[0] - 1
    st[_FIRST, :parts] = num_layers
    for x in range(num_layers):
        q = part_of_layer[x]
        st[_LAYER_PART, x] = q
        st[_FIRST, q] = min(st[_FIRST, q], x)
        st[_END, q] = max(st[_END, q], x + 1)
    tokens = 0
    for s in range(sched.active.shape[0]):
        tokens += sched.active[s]
    exact = tokens + smoothing < _EXACT_BELOW
    for q in range(parts):
        for x in range(st[_FIRST, q], st[_END, q]):
            if part_of_layer[x] != q:
                exact = False
    st[_SHAPE, _L] = num_layers
    st[_SHAPE, _E] = num_experts
    st[_SHAPE, _LEAVES] = leaves
    st[_SHAPE, _STALE] = 1
    st[_SHAPE, _SCAN] = 0 if exact else 1
    st[_SHAPE, _SMOOTHING] = float_bits(smoothing)
    return st


@kernel
def _priority(st, k):
    num_layers = st[_SHAPE, _L]
    d = _distance(st[_SHAPE], k // st[_SHAPE, _E], num_layers)
    return (1.0 - (d - 1) / num_layers) * (st[_ACT, k] + bits_float(st[_SHAPE, _SMOOTHING]))


@kernel
def _ahead(st, a, pa, b, pb):
    """``a`` (priority ``pa``) leaves before ``b``: smaller priority, less recent, lower key."""
    if pa != pb:
        return pa < pb
    if st[H_PRIO2, a] != st[H_PRIO2, b]:
        return st[H_PRIO2, a] > st[H_PRIO2, b]  # H_PRIO2 is minus the recency
    return a < b


@kernel
def _winner(st, x, y):
    """Of layers ``x`` and ``y`` (-1: none), the one whose first key leaves first."""
    if x < 0:
        return y
    if y < 0:
        return x
    return x if _ahead(st, st[_LEAD_KEY, x], st[_LEAD, x], st[_LEAD_KEY, y], st[_LEAD, y]) else y


@kernel
def _set_leaf(st, x):
    top = heap_top(st, x)
    st[_LEAD_KEY, x] = top
    st[_TREE, st[_SHAPE, _LEAVES] + x] = x if top >= 0 else -1
    if top >= 0:
        term = bits_float(st[_TERM, x - st[_SHAPE, _C] - 1 + st[_SHAPE, _L]])
        st[_LEAD, x] = float_bits(term * (st[_ACT, top] + bits_float(st[_SHAPE, _SMOOTHING])))


@kernel
def _leaf_changed(st, x):
    """Layer ``x``'s first key may have changed: replay its path of the tournament."""
    if st[_SHAPE, _STALE] or st[_SHAPE, _SCAN]:
        return
    _set_leaf(st, x)
    i = (st[_SHAPE, _LEAVES] + x) >> 1
    while i >= 1:
        st[_TREE, i] = _winner(st, st[_TREE, 2 * i], st[_TREE, 2 * i + 1])
        i >>= 1


@kernel
def _top_changed(st, x):
    """:func:`_leaf_changed` when layer ``x``'s first key is another than before (an event that
    leaves the first key in place and does not touch it changes nothing in the tournament)."""
    if not st[_SHAPE, _STALE] and heap_top(st, x) != st[_LEAD_KEY, x]:
        _leaf_changed(st, x)


@kernel
def _rebuild(st):
    """Every layer's first key at its term for the current layer, and the whole tournament."""
    for x in range(st[_SHAPE, _L]):
        _set_leaf(st, x)
    for i in range(st[_SHAPE, _LEAVES] - 1, 0, -1):
        st[_TREE, i] = _winner(st, st[_TREE, 2 * i], st[_TREE, 2 * i + 1])
    st[_SHAPE, _STALE] = 0


@kernel
def _best_of(st, part):
    """The tournament's winning layer over the partition's layers (contiguous: checked in
    ``init``), or -1."""
    lo = st[_FIRST, part]
    hi = st[_END, part]
    if lo == 0 and hi == st[_SHAPE, _L]:
        return st[_TREE, 1]  # the global partition: the root
    leaves = st[_SHAPE, _LEAVES]
    lo += leaves
    hi += leaves
    best = -1
    while lo < hi:
        if lo & 1:
            best = _winner(st, best, st[_TREE, lo])
            lo += 1
        if hi & 1:
            hi -= 1
            best = _winner(st, best, st[_TREE, hi])
        lo >>= 1
        hi >>= 1
    return best


@kernel(inline="always")
def on_load(st, key, part, tick, demand):
    layer = key // st[_SHAPE, _E]
    heap_set(st, key, -st[_ACT, key], -tick)  # a key out of the heap only stores them
    heap_insert(st, key, layer)
    _top_changed(st, layer)


@kernel(inline="always")
def touch(st, key, part, tick):
    """A demand access or a prefetch refresh: only recency changes. A more recent key ranks
    later in its layer, so only a layer's first key can change the tournament."""
    layer = key // st[_SHAPE, _E]
    was_first = st[_LEAD_KEY, layer] == key
    heap_set(st, key, st[H_PRIO, key], -tick)
    if was_first:
        _leaf_changed(st, layer)


@kernel(inline="always")
def on_evict(st, key, part):
    heap_delete(st, key)
    _top_changed(st, key // st[_SHAPE, _E])


@kernel(inline="always")
def on_position(st, sched, p, l, lo, hi):
    st[_SHAPE, _C] = l
    base = l * st[_SHAPE, _E]
    for j in range(lo, hi):
        key = base + sched.r_experts[j]
        st[_ACT, key] += sched.r_counts[j]
        if st[H_MEMBER, key] != OUT:
            heap_set(st, key, -st[_ACT, key], st[H_PRIO2, key])
    st[_SHAPE, _STALE] = 1  # every layer's term moved


@kernel(inline="always")
def after_step(st, sched, s):
    act = st[_ACT]
    for i in range(sched.rel_ptr[s], sched.rel_ptr[s + 1]):
        act[sched.rel_keys[i]] -= sched.rel_counts[i]
        key = sched.rel_keys[i]
        if st[H_MEMBER, key] != OUT:
            heap_set(st, key, -act[key], st[H_PRIO2, key])
    st[_SHAPE, _STALE] = 1


@kernel
def _scan(st, part, ctx, allow_in_flight):
    """The best eligible key by the priority itself, over the partition's layers' heaps."""
    best = -1
    best_p = 0.0
    fallback = -1
    fallback_p = 0.0
    for x in range(st[_SHAPE, _L]):
        if st[_LAYER_PART, x] != part:
            continue
        off = st[H_OFF, x]
        for i in range(st[H_SIZE, x]):
            k = st[H_HEAP, off + i]
            e = eligibility(k, ctx)
            if e == SETTLED:
                pk = _priority(st, k)
                if best < 0 or _ahead(st, k, pk, best, best_p):
                    best = k
                    best_p = pk
            elif e == IN_FLIGHT and allow_in_flight and best < 0:
                pk = _priority(st, k)
                if fallback < 0 or _ahead(st, k, pk, fallback, fallback_p):
                    fallback = k
                    fallback_p = pk
    return best if best >= 0 else fallback


@kernel(inline="always")
def victim(st, part, ctx, allow_in_flight, tick):
    if st[_SHAPE, _SCAN]:
        return _scan(st, part, ctx, allow_in_flight)
    heap_refresh(st, ctx, st, _top_changed)
    if st[_SHAPE, _STALE]:
        _rebuild(st)
    while True:
        x = _best_of(st, part)
        if x < 0:
            break
        if eligibility(st[_LEAD_KEY, x], ctx) == SETTLED:
            return st[_LEAD_KEY, x]
        heap_park_top(st, x)
        _leaf_changed(st, x)
    # no settled key: every key of the partition is parked now
    fallback = -1
    fallback_p = 0.0
    if allow_in_flight:
        num_experts = st[_SHAPE, _E]
        for i in range(st[H_CTX, C_PARKED]):
            k = st[H_PARK, i]
            if st[_LAYER_PART, k // num_experts] == part and eligibility(k, ctx) == IN_FLIGHT:
                pk = _priority(st, k)
                if fallback < 0 or _ahead(st, k, pk, fallback, fallback_p):
                    fallback = k
                    fallback_p = pk
    return fallback


HOOKS = Hooks(init, on_load, touch, touch, on_position, no_position, after_step, victim, on_evict, never_keep)
NEEDS_REQUESTS = True
