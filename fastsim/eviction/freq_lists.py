"""Frequency lists: the keys of each partition grouped by an access count, O(1) per event.

The classic constant-time LFU layout (Shah, Mitra and Matani, "An O(1) algorithm for
implementing the LFU cache eviction scheme", 2010), which ``lfu`` and ``lfru`` share: each
partition keeps a list of *groups*, one per count its keys hold, in ascending count; each group
keeps its keys in recency order (least recent first, equal recency by the lower key). A count
that grows by one moves the key to the next group (made if missing) and a new recency moves it
to its group's end, so no event sorts anything. A victim search walks from the partition's
lowest count and each group's least recent key past the keys SPEC section 3 forbids, as the LRU
list does.

Everything lives in one int64 array (rows below, ``2 * (L * E + P)`` columns) so the state is
passed to every hook as it is. Columns: keys ``0 .. N-1``; group slots ``0 .. P + N - 1`` of
which slot ``q < P`` is partition ``q``'s group-list sentinel; the key list of group slot ``g``
has its sentinel at column ``N + g``; ``N + P + N + q`` is free for the policy (``lfru`` puts
partition ``q``'s recency-list sentinel there).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .base import IN_FLIGHT, SETTLED, eligibility

__all__ = [
    "F_ROWS", "F_NEXT", "F_COUNT", "F_LAST", "F_GROUP", "G_COUNT", "G_NEXT", "F_META", "M_KEYS",
    "freq_state", "freq_insert", "freq_remove", "freq_bump", "freq_touch", "group_keys", "freq_victim",
]

# key rows (and key-list sentinels): list links, count, recency, group slot
F_NEXT, F_PREV, F_COUNT, F_LAST, F_GROUP = 0, 1, 2, 3, 4
# group-slot rows: count, group-list links; the stack of free slots
G_COUNT, G_NEXT, G_PREV, G_FREE = 5, 6, 7, 8
F_META = 9  # [N, P, free slots]
F_ROWS = 10
M_KEYS, M_PARTS, M_FREE = 0, 1, 2

_NO_COUNT = np.int64(2**62)  # the sentinels' count: above every real one, so walks stop there


@njit(nogil=True, inline="always")
def freq_state(num_parts, num_keys, extra_rows):
    """Empty lists for ``num_parts`` partitions of ``num_keys`` keys, ``extra_rows`` rows for the
    policy after :data:`F_ROWS`."""
    width = 2 * (num_keys + num_parts)
    st = np.zeros((F_ROWS + extra_rows, width), np.int64)
    st[F_META, M_KEYS] = num_keys
    st[F_META, M_PARTS] = num_parts
    for g in range(num_parts + num_keys):
        s = num_keys + g
        st[F_NEXT, s] = s
        st[F_PREV, s] = s
    for q in range(num_parts):
        st[G_COUNT, q] = _NO_COUNT
        st[G_NEXT, q] = q
        st[G_PREV, q] = q
    for i in range(num_keys):
        st[G_FREE, i] = num_parts + num_keys - 1 - i
    st[F_META, M_FREE] = num_keys
    return st


@njit(nogil=True, inline="always")
def _new_group(st, count, before):
    """A group for ``count`` linked in front of group slot ``before``; returns its slot."""
    n = st[F_META, M_FREE] - 1
    st[F_META, M_FREE] = n
    g = st[G_FREE, n]
    st[G_COUNT, g] = count
    a = st[G_PREV, before]
    st[G_NEXT, a] = g
    st[G_PREV, g] = a
    st[G_NEXT, g] = before
    st[G_PREV, before] = g
    return g


@njit(nogil=True, inline="always")
def _drop_if_empty(st, g):
    s = st[F_META, M_KEYS] + g
    if st[F_NEXT, s] == s:
        a = st[G_PREV, g]
        b = st[G_NEXT, g]
        st[G_NEXT, a] = b
        st[G_PREV, b] = a
        n = st[F_META, M_FREE]
        st[G_FREE, n] = g
        st[F_META, M_FREE] = n + 1


@njit(nogil=True, inline="always")
def _unlink(st, key):
    a = st[F_PREV, key]
    b = st[F_NEXT, key]
    st[F_NEXT, a] = b
    st[F_PREV, b] = a


@njit(nogil=True, inline="always")
def _append(st, key, g):
    """Link ``key`` into group ``g`` by recency, then key. Its recency is the newest there is
    (every event stamps the current tick), so this looks back only past equal recencies."""
    s = st[F_META, M_KEYS] + g
    last = st[F_LAST, key]
    t = st[F_PREV, s]
    while t != s and (st[F_LAST, t] > last or (st[F_LAST, t] == last and t > key)):
        t = st[F_PREV, t]
    b = st[F_NEXT, t]
    st[F_NEXT, t] = key
    st[F_PREV, key] = t
    st[F_NEXT, key] = b
    st[F_PREV, b] = key
    st[F_GROUP, key] = g


@njit(nogil=True, inline="always")
def freq_insert(st, key, part, count, last):
    """Add ``key`` to partition ``part`` with ``count`` and recency ``last``."""
    st[F_COUNT, key] = count
    st[F_LAST, key] = last
    g = st[G_NEXT, part]
    while st[G_COUNT, g] < count:
        g = st[G_NEXT, g]
    if st[G_COUNT, g] != count:
        g = _new_group(st, count, g)
    _append(st, key, g)


@njit(nogil=True, inline="always")
def freq_remove(st, key):
    _unlink(st, key)
    _drop_if_empty(st, st[F_GROUP, key])


@njit(nogil=True, inline="always")
def freq_bump(st, key, last):
    """One more access at recency ``last``: the key joins the next count's group."""
    g = st[F_GROUP, key]
    count = st[F_COUNT, key] + 1
    nxt = st[G_NEXT, g]
    st[F_COUNT, key] = count
    st[F_LAST, key] = last
    s = st[F_META, M_KEYS] + g
    if st[G_COUNT, nxt] != count and st[F_NEXT, s] == key and st[F_PREV, s] == key:
        # alone in its group, and no group holds the new count: the group takes that count
        # (a hot key's usual case: its count is its own)
        st[G_COUNT, g] = count
    else:
        if st[G_COUNT, nxt] != count:
            nxt = _new_group(st, count, nxt)
        _unlink(st, key)
        _drop_if_empty(st, g)
        _append(st, key, nxt)


@njit(nogil=True, inline="always")
def freq_touch(st, key, last):
    """A new recency, the same count: the key moves to its group's end."""
    st[F_LAST, key] = last
    _unlink(st, key)
    _append(st, key, st[F_GROUP, key])


@njit(nogil=True, inline="always")
def group_keys(st, g):
    """``(first, sentinel)`` of group ``g``'s key list: walk ``k = st[F_NEXT, k]`` until the sentinel."""
    s = st[F_META, M_KEYS] + g
    return st[F_NEXT, s], s


@njit(nogil=True, inline="always")
def freq_victim(st, part, ctx, allow_in_flight):
    """The first key by (count, recency, key) that :func:`eligibility` allows: settled, else (with
    ``allow_in_flight``) the first in flight; -1 when none."""
    fallback = -1
    g = st[G_NEXT, part]
    while g != part:
        k, s = group_keys(st, g)
        while k != s:
            e = eligibility(k, ctx)
            if e == SETTLED:
                return k
            if e == IN_FLIGHT and allow_in_flight and fallback < 0:
                fallback = k
            k = st[F_NEXT, k]
        g = st[G_NEXT, g]
    return fallback
