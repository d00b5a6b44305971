"""What every eviction policy shares: the hook set, the core's victim rule, and two orders.

A policy is a :class:`Hooks` of ``@njit(inline="always")`` functions over a state tuple of NumPy
arrays that its ``init`` builds. The timeline core calls them at fixed points (SPEC section 3 and
``docs/model.md``, "Cache organisation")::

    init(num_layers, num_experts, part_of_layer, part_off, params, sched) -> state
    on_load(state, key, part, tick, demand)     # key's load just issued (demand or prefetch)
    on_access(state, key, part, tick)           # demand access (hit or late); tick = new recency
    on_refresh(state, key, part, tick)          # a processed prefetch key's recency refresh
    on_position(state, sched, p, l, lo, hi)     # start of position p = (s, l), before demand
    after_position(state, sched, p, l, lo, hi)  # after the position's prefetch, before compute
    after_step(state, sched, s)                 # after step s
    victim(state, part, ctx, allow_in_flight, tick) -> key or -1
    on_evict(state, key, part)
    keep(state, victim, key) -> bool            # skip the wanted key instead (belady)

Pinned keys never reach a policy. ``part_off`` (partitions + 1) bounds each partition's keys:
partition ``q`` holds at most ``part_off[q + 1] - part_off[q]`` keys, so per-partition lists and
heaps live side by side in one array.

``ctx = (r_stamp, stamp, prot_stamp, call, ready_at, g)`` carries what SPEC section 3's victim rule
reads; :func:`eligibility` applies it, once, for every policy: a policy only orders candidates.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from ..timeline.evict import heap_down, heap_push, heap_remove, heap_up

__all__ = [
    "Hooks", "eligibility", "NOT_ELIGIBLE", "SETTLED", "IN_FLIGHT",
    "heap_init", "heap_insert", "heap_delete", "heap_raised", "heap_lowered", "heap_victim",
    "members_init", "members_add", "members_drop", "scan_victim",
    "no_load", "no_access", "no_position", "no_step", "no_evict", "never_keep",
]

Hooks = namedtuple(
    "Hooks",
    "init on_load on_access on_refresh on_position after_position after_step victim on_evict keep",
)

NOT_ELIGIBLE = 0
SETTLED = 1
IN_FLIGHT = 2


@njit(nogil=True, inline="always")
def eligibility(key, ctx):
    """SPEC section 3's rule: keys of the current ``R`` and keys protected by the current prefetch
    call may not be evicted; of the rest, settled ones come before those still in flight."""
    r_stamp, stamp, prot_stamp, call, ready_at, g = ctx
    if r_stamp[key] == stamp or prot_stamp[key] == call:
        return NOT_ELIGIBLE
    return SETTLED if ready_at[key] <= g else IN_FLIGHT


# ---- no-op hooks a policy may use for events it ignores ----------------------------------------

@njit(nogil=True, inline="always")
def no_load(state, key, part, tick, demand):
    return None


@njit(nogil=True, inline="always")
def no_access(state, key, part, tick):
    return None


@njit(nogil=True, inline="always")
def no_position(state, sched, p, l, lo, hi):
    return None


@njit(nogil=True, inline="always")
def no_step(state, sched, s):
    return None


@njit(nogil=True, inline="always")
def no_evict(state, key, part):
    return None


@njit(nogil=True, inline="always")
def never_keep(state, victim, key):
    return False


# ---- a max-heap per partition over a per-key int64 priority (larger evicted first) ------------

@njit(nogil=True, inline="always")
def heap_init(part_off, num_keys):
    """``(heap, hpos, size, spill)``: partition ``q``'s heap is ``heap[part_off[q]:part_off[q+1]]``."""
    return (np.empty(num_keys, np.int64), np.zeros(num_keys, np.int64),
            np.zeros(part_off.shape[0] - 1, np.int64), np.empty(num_keys, np.int64))


@njit(nogil=True, inline="always")
def heap_insert(heap, hpos, size, part_off, prio, key, part):
    size[part] = heap_push(heap, hpos, prio, key, size[part], part_off[part])


@njit(nogil=True, inline="always")
def heap_delete(heap, hpos, size, part_off, prio, key, part):
    size[part] = heap_remove(heap, hpos, prio, key, size[part], part_off[part])


@njit(nogil=True, inline="always")
def heap_raised(heap, hpos, part_off, prio, key, part):
    """``prio[key]`` grew: the key moves towards the top (evicted sooner)."""
    heap_up(heap, hpos, prio, hpos[key], part_off[part])


@njit(nogil=True, inline="always")
def heap_lowered(heap, hpos, size, part_off, prio, key, part):
    """``prio[key]`` shrank: the key sinks (evicted later)."""
    heap_down(heap, hpos, prio, hpos[key], size[part], part_off[part])


@njit(nogil=True)
def heap_victim(heap, hpos, size, spill, part_off, prio, part, ctx, allow_in_flight):
    """The first key in heap order that :func:`eligibility` allows (settled; else, with
    ``allow_in_flight``, the first in flight), or -1. Ineligible tops are popped, then pushed back,
    so the heap is unchanged."""
    off = part_off[part]
    n = size[part]
    n_spill = 0
    victim = -1
    fallback = -1
    while n > 0:
        top = heap[off]
        e = eligibility(top, ctx)
        if e == SETTLED:
            victim = top
            break
        if e == IN_FLIGHT and allow_in_flight and fallback < 0:
            fallback = top
        spill[n_spill] = top
        n_spill += 1
        n = heap_remove(heap, hpos, prio, top, n, off)
    for i in range(n_spill):
        n = heap_push(heap, hpos, prio, spill[i], n, off)
    size[part] = n
    return victim if victim >= 0 else fallback


# ---- an unordered member list per partition, for policies whose order changes with time -------

@njit(nogil=True, inline="always")
def members_init(part_off, num_keys):
    """``(members, mpos, count)``: partition ``q``'s keys are
    ``members[part_off[q]:part_off[q] + count[q]]``."""
    return np.empty(num_keys, np.int64), np.zeros(num_keys, np.int64), np.zeros(part_off.shape[0] - 1, np.int64)


@njit(nogil=True, inline="always")
def members_add(members, mpos, count, part_off, key, part):
    i = part_off[part] + count[part]
    members[i] = key
    mpos[key] = i
    count[part] += 1


@njit(nogil=True, inline="always")
def members_drop(members, mpos, count, part_off, key, part):
    last = part_off[part] + count[part] - 1
    i = mpos[key]
    moved = members[last]
    members[i] = moved
    mpos[moved] = i
    count[part] -= 1


@njit(nogil=True, inline="always")
def scan_victim(state, members, count, part_off, part, ctx, allow_in_flight, tick, before):
    """The best eligible member by ``before(state, a, b, tick)`` ("a is evicted before b"):
    settled first, else (``allow_in_flight``) in flight; -1 when none."""
    best = -1
    fallback = -1
    lo = part_off[part]
    for i in range(lo, lo + count[part]):
        k = members[i]
        e = eligibility(k, ctx)
        if e == SETTLED:
            if best < 0 or before(state, k, best, tick):
                best = k
        elif e == IN_FLIGHT and allow_in_flight and best < 0:
            if fallback < 0 or before(state, k, fallback, tick):
                fallback = k
    return best if best >= 0 else fallback
