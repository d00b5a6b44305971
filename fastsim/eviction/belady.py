"""``belady``: evict the key whose next demand use is farthest (SPEC section 3).

Next uses come from the schedule (``r_next`` per entry, ``key_first`` per key). Each partition
keeps its resident keys in a 4-ary max-heap by next use, ties to the lower key. Keys of the
current ``R`` move to their next use only after the position's prefetch: until then they rank
nearest, which is harmless because they may not be evicted anyway.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import Hooks, heap_delete, heap_init, heap_insert, heap_raised, heap_victim, no_access, no_position, no_step

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    heap, hpos, size, spill = heap_init(part_off, num_keys)
    key_next = sched.key_first.copy()
    member = np.zeros(num_keys, np.uint8)
    return heap, hpos, size, spill, part_off, key_next, member, part_of_layer, np.int64(num_experts)


@kernel(inline="always")
def on_load(state, key, part, tick, demand):
    heap_insert(state[0], state[1], state[2], state[4], state[5], key, part)
    state[6][key] = 1


@kernel(inline="always")
def after_position(state, sched, p, l, lo, hi):
    heap = state[0]
    hpos = state[1]
    part_off = state[4]
    key_next = state[5]
    member = state[6]
    base = l * state[8]
    part = state[7][l]
    for j in range(lo, hi):
        key = base + sched.r_experts[j]
        # a demand moves the key's next use later: it can only rise in the heap
        key_next[key] = sched.r_next[j]
        if member[key]:
            heap_raised(heap, hpos, part_off, key_next, key, part)


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    return heap_victim(state[0], state[1], state[2], state[3], state[4], state[5], part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(state, key, part):
    heap_delete(state[0], state[1], state[2], state[4], state[5], key, part)
    state[6][key] = 0


@kernel(inline="always")
def keep(state, victim, key):
    """The victim is needed before the wanted key: keep it and skip the wanted key."""
    key_next = state[5]
    return key_next[victim] < key_next[key]


HOOKS = Hooks(init, on_load, no_access, no_access, no_position, after_position, no_step, victim, on_evict, keep)
NEEDS_NEXT_USE = True
