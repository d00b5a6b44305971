"""``fifo``: evict the key loaded earliest (load issue order); accesses change nothing.

A counter numbers every load, demand or prefetch; each partition keeps a max-heap by the negated
number, so its earliest load is on top.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import Hooks, heap_delete, heap_init, heap_insert, heap_victim, never_keep, no_access, no_position, no_step

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    heap, hpos, size, spill = heap_init(part_off, num_keys)
    prio = np.zeros(num_keys, np.int64)
    loads = np.zeros(1, np.int64)
    return heap, hpos, size, spill, part_off, prio, loads


@kernel(inline="always")
def on_load(state, key, part, tick, demand):
    heap, hpos, size, spill, part_off, prio, loads = state
    loads[0] += 1
    prio[key] = -loads[0]
    heap_insert(heap, hpos, size, part_off, prio, key, part)


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    heap, hpos, size, spill, part_off, prio, loads = state
    return heap_victim(heap, hpos, size, spill, part_off, prio, part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(state, key, part):
    heap, hpos, size, spill, part_off, prio, loads = state
    heap_delete(heap, hpos, size, part_off, prio, key, part)


HOOKS = Hooks(init, on_load, no_access, no_access, no_position, no_position, no_step, victim, on_evict, never_keep)
