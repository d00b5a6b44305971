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
    HEAP_ROWS, Hooks, heap_delete, heap_insert, heap_set, heap_state, heap_victim, never_keep, no_position,
    no_step, H_PRIO,
)

__all__ = ["HOOKS"]

_SHIFT = np.int64(1) << np.int64(40)
_COUNT = HEAP_ROWS  # extra row: demand accesses since load


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    return heap_state(part_off, num_layers * num_experts, 1)


@kernel(inline="always")
def on_load(st, key, part, tick, demand):
    st[_COUNT, key] = 1 if demand else 0
    st[H_PRIO, key] = -(st[_COUNT, key] * _SHIFT + tick)
    heap_insert(st, key, part)


@kernel(inline="always")
def on_access(st, key, part, tick):
    st[_COUNT, key] += 1
    heap_set(st, key, part, -(st[_COUNT, key] * _SHIFT + tick))


@kernel(inline="always")
def on_refresh(st, key, part, tick):
    heap_set(st, key, part, -(st[_COUNT, key] * _SHIFT + tick))


@kernel(inline="always")
def victim(st, part, ctx, allow_in_flight, tick):
    return heap_victim(st, part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(st, key, part):
    heap_delete(st, key, part)


HOOKS = Hooks(init, on_load, on_access, on_refresh, no_position, no_position, no_step, victim, on_evict, never_keep)
