"""``belady``: evict the key whose next demand use is farthest (SPEC section 3).

Next uses come from the schedule (``r_next`` per entry, ``key_first`` per key). Each partition
keeps its resident keys in a 4-ary max-heap by next use, ties to the lower key
(:func:`~fastsim.eviction.base.heap_state`), which parks the keys a victim search may not take.
Resident keys of the current ``R`` move to their next use only after the position's prefetch:
until then they rank nearest, which is harmless because they may not be evicted anyway. A key of
``R`` that is not resident (its miss ran on the CPU or by zero-copy) takes its next use at the
position's start, so the prefetch's ``keep`` test compares it by the use after this one.
"""
from __future__ import annotations

from .._jit import kernel
from .base import (
    H_MEMBER, H_PRIO, HEAP_ROWS, OUT, Hooks, heap_delete, heap_insert, heap_set, heap_state, heap_victim, no_access,
    no_step,
)

__all__ = ["HOOKS"]

_SHAPE = HEAP_ROWS  # extra row: [num_layers, num_experts]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    st = heap_state(part_off, num_keys + 1, 1)
    st[H_PRIO, :num_keys] = sched.key_first  # a key's next use, for members and others alike
    st[_SHAPE, 0] = num_layers
    st[_SHAPE, 1] = num_experts
    return st


@kernel(inline="always")
def on_load(st, key, part, tick, demand):
    heap_insert(st, key, part)


@kernel(inline="always")
def on_position(st, sched, p, l, lo, hi):
    base = l * st[_SHAPE, 1]
    for j in range(lo, hi):
        key = base + sched.r_experts[j]
        if st[H_MEMBER, key] == OUT:  # not resident: no heap order to keep, only the stored use
            st[H_PRIO, key] = sched.r_next[j]


@kernel(inline="always")
def after_position(st, sched, p, l, lo, hi):
    base = l * st[_SHAPE, 1]
    for j in range(lo, hi):
        key = base + sched.r_experts[j]
        # a demand moves the key's next use later: it can only rise in the heap (a key out of the
        # heap only stores it)
        heap_set(st, key, sched.r_next[j], 0)


@kernel(inline="always")
def victim(st, part, ctx, allow_in_flight, tick):
    return heap_victim(st, part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(st, key, part):
    heap_delete(st, key)


@kernel(inline="always")
def keep(st, victim, key):
    """The victim is needed before the wanted key: keep it and skip the wanted key."""
    return st[H_PRIO, victim] < st[H_PRIO, key]


HOOKS = Hooks(init, on_load, no_access, no_access, on_position, after_position, no_step, victim, on_evict, keep)
NEEDS_NEXT_USE = True
