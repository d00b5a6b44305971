"""What every eviction policy shares: the hook set, the core's victim rule, and two orders.

A policy is a :class:`Hooks` of ``@njit(inline="always")`` functions over a state (a NumPy array,
or a tuple of them) that its ``init`` builds. The timeline core calls them at fixed points (SPEC section 3 and
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

Two orders are here for policies to build on: a 4-ary max-heap per segment over two int64
priorities, which parks the keys a victim search may not take (``heap_*``), and an unordered
member list with a scanning victim search (``members_*``, :func:`scan_victim`), O(C) per victim,
for orders no structure keeps. ``lru``/``fifo`` use a linked list, ``lfu``/``lfru`` frequency
lists (:mod:`fastsim.eviction.freq_lists`).

``ctx = (r_stamp, stamp, prot_stamp, call, ready_at, g)`` carries what SPEC section 3's victim rule
reads; :func:`eligibility` applies it, once, for every policy: a policy only orders candidates.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


__all__ = [
    "Hooks", "eligibility", "NOT_ELIGIBLE", "SETTLED", "IN_FLIGHT",
    "HEAP_ROWS", "H_PRIO", "H_PRIO2", "H_MEMBER", "H_SEG", "OUT", "IN_HEAP", "PARKED", "heap_state", "heap_insert",
    "heap_delete", "heap_set", "heap_top", "heap_refresh", "heap_park_top", "heap_victim", "no_touch",
    "members_init", "members_add", "members_drop", "scan_victim", "float_bits", "bits_float", "float_order",
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
    # ctx is indexed, not unpacked: unpacking binds each array to a new variable, which numba
    # reference-counts at every call (an atomic add and subtract per array per key looked at)
    if ctx[0][key] == ctx[1] or ctx[2][key] == ctx[3]:
        return NOT_ELIGIBLE
    return SETTLED if ctx[4][key] <= ctx[5] else IN_FLIGHT


# ---- float64 values kept in an int64 state, bit for bit ---------------------------------------
#
# A state that is one int64 array costs no reference counting per hook call; a tuple of arrays
# does, at every element a hook reads (measured: most of activation-aware's time). Policies with
# float values keep their bits in the array and convert at use.

@intrinsic
def float_bits(typingctx, x):
    """The int64 with the same bits as float64 ``x``."""
    if not (isinstance(x, types.Float) and x.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(x), codegen


@intrinsic
def bits_float(typingctx, x):
    """The float64 with the same bits as int64 ``x``."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(x), codegen


_FLIP = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(nogil=True, inline="always")
def float_order(x):
    """An int64 image of float64 ``x`` in the same order (``-0.0`` as ``+0.0``, so equal floats
    stay equal; NaN above everything)."""
    bits = float_bits(x + 0.0)
    return bits ^ _FLIP if bits < 0 else bits


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


# ---- a max-heap per segment over a per-key (int64, int64) priority (larger evicted first) ------
#
# The whole order lives in one int64 array ``st`` of shape (HEAP_ROWS + extra, L * E + 1), so a
# policy's state is that one array, passed as it is to every hook: numba then adds no reference
# counting per call (a tuple of arrays handed to non-inlined helpers cost 5-10x, measured).
# A *segment* is one heap: a partition's, or a layer's for a policy that orders each layer apart;
# segment q's heap starts at ``st[H_OFF, q]``. A key leaves before another when its ``H_PRIO`` is
# larger, then its ``H_PRIO2``, then when its id is lower. A policy may add rows after
# ``HEAP_ROWS``.
#
# Keys a victim search finds ineligible at the top (SPEC section 3: in the current ``R``,
# protected by the current prefetch call, or still in flight) are *parked*: taken out of their
# heap into one list, and put back by the first victim search whose context (position, call,
# time) lets them go. So a search pays for an ineligible key once per context, not once per
# search: a prefetch call of ``m`` loads no longer re-pops the ``m`` keys it protects at every
# victim. A priority change of a parked key is only stored; it takes effect when the key returns.

H_HEAP, H_POS, H_PRIO, H_PRIO2, H_MEMBER, H_SEG, H_PARK, H_SIZE, H_OFF, H_CTX = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
HEAP_ROWS = 10
# H_MEMBER values
OUT, IN_HEAP, PARKED = 0, 1, 2
# H_CTX columns: parked count, then the context of the last refresh of the parked keys
C_PARKED, C_STAMP, C_CALL, C_G = 0, 1, 2, 3


@njit(nogil=True, inline="always")
def heap_state(seg_off, width, extra_rows):
    """A zeroed heap state, segment ``q``'s heap from ``seg_off[q]``, ``width`` columns (at least
    the keys + 1), with ``extra_rows`` rows for the policy after :data:`HEAP_ROWS`."""
    # the context row's four columns need room even for the tiniest caches
    st = np.zeros((HEAP_ROWS + extra_rows, max(width, C_G + 1)), np.int64)
    for q in range(seg_off.shape[0]):
        st[H_OFF, q] = seg_off[q]
    st[H_CTX, C_STAMP] = -2  # no context yet
    return st


@njit(nogil=True, inline="always")
def _first(st, a, b):
    """Whether ``a`` leaves before ``b``: larger priority, then larger second priority, then the
    lower key."""
    pa = st[H_PRIO, a]
    pb = st[H_PRIO, b]
    if pa != pb:
        return pa > pb
    qa = st[H_PRIO2, a]
    qb = st[H_PRIO2, b]
    if qa != qb:
        return qa > qb
    return a < b


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
def _push(st, key, seg):
    off = st[H_OFF, seg]
    size = st[H_SIZE, seg]
    st[H_HEAP, off + size] = key
    _sift_up(st, size, off)
    st[H_SIZE, seg] = size + 1
    st[H_MEMBER, key] = IN_HEAP


@njit(nogil=True, inline="always")
def _remove(st, key, seg):
    off = st[H_OFF, seg]
    size = st[H_SIZE, seg] - 1
    i = st[H_POS, key]
    if i < size:
        last = st[H_HEAP, off + size]
        st[H_HEAP, off + i] = last
        st[H_POS, last] = i
        _sift_down(st, i, size, off)
        _sift_up(st, st[H_POS, last], off)
    st[H_SIZE, seg] = size


@njit(nogil=True, inline="always")
def _park(st, key):
    _remove(st, key, st[H_SEG, key])
    n = st[H_CTX, C_PARKED]
    st[H_PARK, n] = key
    st[H_POS, key] = n
    st[H_CTX, C_PARKED] = n + 1
    st[H_MEMBER, key] = PARKED


@njit(nogil=True, inline="always")
def _unpark(st, key):
    n = st[H_CTX, C_PARKED] - 1
    i = st[H_POS, key]
    moved = st[H_PARK, n]
    st[H_PARK, i] = moved
    st[H_POS, moved] = i
    st[H_CTX, C_PARKED] = n


@njit(nogil=True, inline="always")
def heap_insert(st, key, seg):
    """Add ``key`` to segment ``seg`` (its priorities already in ``H_PRIO`` and ``H_PRIO2``)."""
    st[H_SEG, key] = seg
    _push(st, key, seg)


@njit(nogil=True, inline="always")
def heap_delete(st, key):
    """Take ``key`` out of its heap, or out of the parked keys."""
    m = st[H_MEMBER, key]
    if m == IN_HEAP:
        _remove(st, key, st[H_SEG, key])
    elif m == PARKED:
        _unpark(st, key)
    st[H_MEMBER, key] = OUT


@njit(nogil=True, inline="always")
def heap_set(st, key, prio, prio2):
    """Change a key's priorities; a key in a heap moves to its new place."""
    old = st[H_PRIO, key]
    old2 = st[H_PRIO2, key]
    st[H_PRIO, key] = prio
    st[H_PRIO2, key] = prio2
    if st[H_MEMBER, key] == IN_HEAP:
        seg = st[H_SEG, key]
        if prio > old or (prio == old and prio2 > old2):
            _sift_up(st, st[H_POS, key], st[H_OFF, seg])
        elif prio < old or prio2 < old2:
            _sift_down(st, st[H_POS, key], st[H_SIZE, seg], st[H_OFF, seg])


@njit(nogil=True, inline="always")
def heap_top(st, seg):
    """The first key of segment ``seg``'s heap, or -1 when it is empty."""
    return st[H_HEAP, st[H_OFF, seg]] if st[H_SIZE, seg] > 0 else -1


@njit(nogil=True, inline="always")
def no_touch(state, seg):
    return None


@njit(nogil=True, inline="always")
def heap_refresh(st, ctx, state, touched):
    """Put back every parked key that ``ctx`` allows as a settled victim, once per new context;
    ``touched(state, seg)`` is told of each segment that got one back."""
    stamp = ctx[1]
    call = ctx[3]
    g = ctx[5]
    if stamp == st[H_CTX, C_STAMP] and call == st[H_CTX, C_CALL] and g == st[H_CTX, C_G]:
        return
    st[H_CTX, C_STAMP] = stamp
    st[H_CTX, C_CALL] = call
    st[H_CTX, C_G] = g
    # backwards, so that a key moved into a freed place has been looked at already
    for i in range(st[H_CTX, C_PARKED] - 1, -1, -1):
        key = st[H_PARK, i]
        if eligibility(key, ctx) == SETTLED:
            _unpark(st, key)
            seg = st[H_SEG, key]
            _push(st, key, seg)
            touched(state, seg)


@njit(nogil=True, inline="always")
def heap_park_top(st, seg):
    """Park segment ``seg``'s first key (the caller found it ineligible); returns it."""
    top = st[H_HEAP, st[H_OFF, seg]]
    _park(st, top)
    return top


@njit(nogil=True, inline="always")
def heap_victim(st, seg, ctx, allow_in_flight):
    """The first key of segment ``seg`` in heap order that :func:`eligibility` allows (settled;
    else, with ``allow_in_flight``, the first in flight), or -1. Ineligible tops are parked."""
    heap_refresh(st, ctx, st, no_touch)
    off = st[H_OFF, seg]
    while st[H_SIZE, seg] > 0:
        top = st[H_HEAP, off]
        if eligibility(top, ctx) == SETTLED:
            return top
        _park(st, top)
    # no settled key: every key of the segment is parked now
    fallback = -1
    if allow_in_flight:
        for i in range(st[H_CTX, C_PARKED]):
            k = st[H_PARK, i]
            if st[H_SEG, k] == seg and eligibility(k, ctx) == IN_FLIGHT:
                if fallback < 0 or _first(st, k, fallback):
                    fallback = k
    return fallback


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
