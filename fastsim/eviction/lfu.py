"""``lfu``: evict the key with the fewest demand accesses since its load; ties to the least
recent (SPEC section 6).

A demand-loaded key starts at 1, a prefetched one at 0; each demand access (hit or late) adds 1;
counts are forgotten on eviction. Each partition keeps a max-heap by
``-(count * 2**40 + recency)``: fewest accesses on top, the least recent first among equals
(recency ticks stay far below ``2**40``).
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import (
    Hooks, heap_delete, heap_init, heap_insert, heap_lowered, heap_victim, never_keep, no_position, no_step,
)

__all__ = ["HOOKS"]

_SHIFT = np.int64(1) << np.int64(40)


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    heap, hpos, size, spill = heap_init(part_off, num_keys)
    prio = np.zeros(num_keys, np.int64)
    count = np.zeros(num_keys, np.int64)
    return heap, hpos, size, spill, part_off, prio, count


@kernel(inline="always")
def on_load(state, key, part, tick, demand):
    heap, hpos, size, spill, part_off, prio, count = state
    count[key] = 1 if demand else 0
    prio[key] = -(count[key] * _SHIFT + tick)
    heap_insert(heap, hpos, size, part_off, prio, key, part)


@kernel(inline="always")
def on_access(state, key, part, tick):
    heap, hpos, size, spill, part_off, prio, count = state
    count[key] += 1
    prio[key] = -(count[key] * _SHIFT + tick)
    heap_lowered(heap, hpos, size, part_off, prio, key, part)


@kernel(inline="always")
def on_refresh(state, key, part, tick):
    heap, hpos, size, spill, part_off, prio, count = state
    prio[key] = -(count[key] * _SHIFT + tick)
    heap_lowered(heap, hpos, size, part_off, prio, key, part)


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    heap, hpos, size, spill, part_off, prio, count = state
    return heap_victim(heap, hpos, size, spill, part_off, prio, part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(state, key, part):
    heap, hpos, size, spill, part_off, prio, count = state
    heap_delete(heap, hpos, size, part_off, prio, key, part)


HOOKS = Hooks(init, on_load, on_access, on_refresh, no_position, no_position, no_step, victim, on_evict, never_keep)
