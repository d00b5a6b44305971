"""``score-aware``: HybriMoE's score-aware cache; the smallest decayed router score is evicted.

At every ``(step, layer)``, before its demand, each key of that layer is updated from the router:
``S <- alpha * score + (1 - alpha) * S`` for the experts of ``R`` (``score`` the active tokens'
summed weights over the active tokens, from the schedule), ``S <- (1 - alpha) * S`` for the rest.
After HybriMoE's ``ktransformers/operators/experts.py`` (``KScoreAwareCache``; alpha 0.5 in
``models/modeling_deepseek.py``). Decaying a whole layer is O(E) per position, done eagerly so the
reference's literal arithmetic matches bit for bit. Ties go to the least recent key, then the
lowest.

The scores live in the state array as float64 bits (one int64 array: no reference counting per
hook). Only the current layer's scores change at a position, so each partition keeps its keys in a heap
(:func:`~fastsim.eviction.base.heap_state`) by the exact score, as an order-preserving integer
image of the float, then by recency: a position re-places its layer's resident keys
(O(E log C)), a victim is O(log C). Re-placing each key by its new score, rather than trusting a
decay to keep the layer's order, stays exact when scores decay into equal values (``alpha = 1``
zeroes every unselected key).
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import (
    H_MEMBER, H_PRIO, H_PRIO2, HEAP_ROWS, OUT, Hooks, bits_float, float_bits, float_order, heap_delete, heap_insert,
    heap_set, heap_state, heap_victim, never_keep, no_position, no_step,
)

__all__ = ["HOOKS"]

_SCORE = HEAP_ROWS  # extra row: S of every key, as float64 bits (kept across evictions)
_META = HEAP_ROWS + 1  # extra row: [alpha as float64 bits, E]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    st = heap_state(part_off, num_keys + 1, 2)
    st[_SCORE, :] = float_bits(0.0)
    st[_META, 0] = float_bits(params[0])
    st[_META, 1] = num_experts
    return st


@kernel(inline="always")
def _prio(st, key):
    """Larger for a smaller score."""
    return ~float_order(bits_float(st[_SCORE, key]))


@kernel(inline="always")
def on_load(st, key, part, tick, demand):
    heap_set(st, key, _prio(st, key), -tick)  # a key out of the heap only stores them
    heap_insert(st, key, part)


@kernel(inline="always")
def touch(st, key, part, tick):
    """A demand access or a prefetch refresh: only recency changes."""
    heap_set(st, key, st[H_PRIO, key], -tick)


@kernel(inline="always")
def on_position(st, sched, p, l, lo, hi):
    score = st[_SCORE]
    a = bits_float(st[_META, 0])
    num_experts = st[_META, 1]
    base = l * num_experts
    keep = 1.0 - a
    for e in range(num_experts):
        score[base + e] = float_bits(keep * bits_float(score[base + e]))
    for j in range(lo, hi):
        k = base + sched.r_experts[j]
        score[k] = float_bits(a * sched.r_scores[j] + bits_float(score[k]))
    for e in range(num_experts):
        k = base + e
        if st[H_MEMBER, k] != OUT:
            heap_set(st, k, _prio(st, k), st[H_PRIO2, k])


@kernel(inline="always")
def victim(st, part, ctx, allow_in_flight, tick):
    return heap_victim(st, part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(st, key, part):
    heap_delete(st, key)


HOOKS = Hooks(init, on_load, touch, touch, on_position, no_position, no_step, victim, on_evict, never_keep)
NEEDS_SCORES = True
