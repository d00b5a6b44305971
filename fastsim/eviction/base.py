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


__all__ = [
    "Hooks", "eligibility", "NOT_ELIGIBLE", "SETTLED", "IN_FLIGHT",
    "HEAP_ROWS", "H_PRIO", "H_MEMBER", "heap_state", "heap_insert", "heap_delete", "heap_set", "heap_victim",
    "members_init", "members_add", "members_drop", "scan_victim", "scan_on_load", "scan_touch", "scan_on_evict",
    "lower_then_older",
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
#
# The whole order lives in one int64 array ``st`` of shape (HEAP_ROWS + extra, L * E + 1), so a
# policy's state is that one array, passed as it is to every hook: numba then adds no reference
# counting per call (a tuple of arrays handed to non-inlined helpers cost 5-10x, measured).
# Rows: the heaps of all partitions side by side (partition q from ``st[H_OFF, q]``), each key's
# position in its heap, the priority, membership, a scratch row, and per-partition sizes and
# offsets. A policy may add rows of its own after ``HEAP_ROWS``.

H_HEAP, H_POS, H_PRIO, H_MEMBER, H_SPILL, H_SIZE, H_OFF = 0, 1, 2, 3, 4, 5, 6
HEAP_ROWS = 7


@njit(nogil=True, inline="always")
def heap_state(part_off, num_keys, extra_rows):
    """A zeroed heap state with ``extra_rows`` rows for the policy after :data:`HEAP_ROWS`."""
    st = np.zeros((HEAP_ROWS + extra_rows, num_keys + 1), np.int64)
    for q in range(part_off.shape[0]):
        st[H_OFF, q] = part_off[q]
    return st


@njit(nogil=True, inline="always")
def _first(st, a, b):
    """Whether ``a`` leaves before ``b``: larger priority, then the lower key."""
    pa = st[H_PRIO, a]
    pb = st[H_PRIO, b]
    return pa > pb or (pa == pb and a < b)


@njit(nogil=True, inline="always")
def _sift_up(st, i, off):
    key = st[H_HEAP, off + i]
    while i > 0:
        parent = (i - 1) >> 2
        pk = st[H_HEAP, off + parent]
        if not _first(st, key, pk):
            break
        st[H_HEAP, off + i] = pk
        st[H_POS, pk] = i
        i = parent
    st[H_HEAP, off + i] = key
    st[H_POS, key] = i


@njit(nogil=True, inline="always")
def _sift_down(st, i, size, off):
    key = st[H_HEAP, off + i]
    while True:
        c = 4 * i + 1
        if c >= size:
            break
        best = c
        end = c + 4 if c + 4 < size else size
        for d in range(c + 1, end):
            if _first(st, st[H_HEAP, off + d], st[H_HEAP, off + best]):
                best = d
        bk = st[H_HEAP, off + best]
        if not _first(st, bk, key):
            break
        st[H_HEAP, off + i] = bk
        st[H_POS, bk] = i
        i = best
    st[H_HEAP, off + i] = key
    st[H_POS, key] = i


@njit(nogil=True, inline="always")
def _push(st, key, part):
    off = st[H_OFF, part]
    size = st[H_SIZE, part]
    st[H_HEAP, off + size] = key
    _sift_up(st, size, off)
    st[H_SIZE, part] = size + 1


@njit(nogil=True, inline="always")
def _remove(st, key, part):
    off = st[H_OFF, part]
    size = st[H_SIZE, part] - 1
    i = st[H_POS, key]
    if i < size:
        last = st[H_HEAP, off + size]
        st[H_HEAP, off + i] = last
        st[H_POS, last] = i
        _sift_down(st, i, size, off)
        _sift_up(st, st[H_POS, last], off)
    st[H_SIZE, part] = size


@njit(nogil=True, inline="always")
def heap_insert(st, key, part):
    """Add ``key`` (its priority already in ``st[H_PRIO, key]``)."""
    _push(st, key, part)
    st[H_MEMBER, key] = 1


@njit(nogil=True, inline="always")
def heap_delete(st, key, part):
    _remove(st, key, part)
    st[H_MEMBER, key] = 0


@njit(nogil=True, inline="always")
def heap_set(st, key, part, prio):
    """Change a member's priority and restore the order."""
    old = st[H_PRIO, key]
    st[H_PRIO, key] = prio
    if prio > old:
        _sift_up(st, st[H_POS, key], st[H_OFF, part])
    elif prio < old:
        _sift_down(st, st[H_POS, key], st[H_SIZE, part], st[H_OFF, part])


@njit(nogil=True, inline="always")
def heap_victim(st, part, ctx, allow_in_flight):
    """The first key in heap order that :func:`eligibility` allows (settled; else, with
    ``allow_in_flight``, the first in flight), or -1. Ineligible tops are popped, then pushed back,
    so the order is unchanged."""
    off = st[H_OFF, part]
    n_spill = 0
    victim = -1
    fallback = -1
    while st[H_SIZE, part] > 0:
        top = st[H_HEAP, off]
        e = eligibility(top, ctx)
        if e == SETTLED:
            victim = top
            break
        if e == IN_FLIGHT and allow_in_flight and fallback < 0:
            fallback = top
        st[H_SPILL, n_spill] = top
        n_spill += 1
        _remove(st, top, part)
    for i in range(n_spill):
        _push(st, st[H_SPILL, i], part)
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


# ---- the member-scan state layout the scanning policies share -----------------------------
#
# ``state[0:4]`` = ``members, mpos, count, part_off`` (:func:`members_init`), ``state[5]`` = each
# key's recency; the rest is the policy's own.

@njit(nogil=True, inline="always")
def scan_on_load(state, key, part, tick, demand):
    members_add(state[0], state[1], state[2], state[3], key, part)
    state[5][key] = tick


@njit(nogil=True, inline="always")
def scan_touch(state, key, part, tick):
    """A demand access or a prefetch refresh: only recency changes."""
    state[5][key] = tick


@njit(nogil=True, inline="always")
def scan_on_evict(state, key, part):
    members_drop(state[0], state[1], state[2], state[3], key, part)


@njit(nogil=True, inline="always")
def lower_then_older(pa, pb, state, a, b):
    """``a`` leaves before ``b``: the smaller priority, then the less recent, then the lower key."""
    if pa != pb:
        return pa < pb
    last = state[5]
    if last[a] != last[b]:
        return last[a] < last[b]
    return a < b
