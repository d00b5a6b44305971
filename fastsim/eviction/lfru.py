"""``lfru``: evict the smallest ``freq / (tick_now - last + 1)``, frequency over age.

The LFRU of the author of llama.cpp PR 21609 ("N-slot LFRU", withdrawn), as that author's
``tinyserve/cache_policy.py`` (``LFRUPolicy``) keeps it: ``freq = 1`` on a load, ``+1`` per demand
access, ``last`` the key's recency, no decay, state forgotten on eviction. Scores are compared
exactly, by cross-multiplying integers; ties go to the least recent key, then the lowest.

The score moves with the clock, but among keys of one ``freq`` the least recent always scores
lowest. So the keys sit in frequency lists (:mod:`fastsim.eviction.freq_lists`), and a victim
search compares only each group's first eligible key, in ascending ``freq``: it stops at the first
group whose ``freq`` over the partition's largest age already exceeds the best score found (every
later group's keys score at least that much), the largest age being that of the partition's least
recent key, kept in a recency list.
"""
from __future__ import annotations

from .._jit import kernel
from .base import IN_FLIGHT, SETTLED, Hooks, eligibility, never_keep, no_position, no_step
from .freq_lists import (
    F_COUNT, F_LAST, F_META, F_NEXT, F_ROWS, G_COUNT, G_NEXT, M_KEYS, M_PARTS, freq_bump, freq_insert, freq_remove,
    freq_state, freq_touch, group_keys,
)

__all__ = ["HOOKS"]

_O_NEXT = F_ROWS  # recency list per partition: least recent first
_O_PREV = F_ROWS + 1


@kernel(inline="always")
def _head(st, part):
    """The column of partition ``part``'s recency-list sentinel."""
    return 2 * st[F_META, M_KEYS] + st[F_META, M_PARTS] + part


@kernel(inline="always")
def _unlink(st, key):
    a = st[_O_PREV, key]
    b = st[_O_NEXT, key]
    st[_O_NEXT, a] = b
    st[_O_PREV, b] = a


@kernel(inline="always")
def _push_recent(st, key, part):
    head = _head(st, part)
    last = st[_O_PREV, head]
    st[_O_NEXT, last] = key
    st[_O_PREV, key] = last
    st[_O_NEXT, key] = head
    st[_O_PREV, head] = key


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    parts = part_off.shape[0] - 1
    st = freq_state(parts, num_layers * num_experts, 2)
    for q in range(parts):
        head = _head(st, q)
        st[_O_NEXT, head] = head
        st[_O_PREV, head] = head
    return st


@kernel(inline="always")
def on_load(st, key, part, tick, demand):
    freq_insert(st, key, part, 1, tick)
    _push_recent(st, key, part)


@kernel(inline="always")
def on_access(st, key, part, tick):
    freq_bump(st, key, tick)
    _unlink(st, key)
    _push_recent(st, key, part)


@kernel(inline="always")
def on_refresh(st, key, part, tick):
    freq_touch(st, key, tick)
    _unlink(st, key)
    _push_recent(st, key, part)


@kernel(inline="always")
def _before(st, a, b, tick):
    # freq_a / (tick - last_a + 1) < freq_b / (tick - last_b + 1), exactly
    lhs = st[F_COUNT, a] * (tick - st[F_LAST, b] + 1)
    rhs = st[F_COUNT, b] * (tick - st[F_LAST, a] + 1)
    if lhs != rhs:
        return lhs < rhs
    if st[F_LAST, a] != st[F_LAST, b]:
        return st[F_LAST, a] < st[F_LAST, b]
    return a < b


@kernel(inline="always")
def victim(st, part, ctx, allow_in_flight, tick):
    oldest = st[_O_NEXT, _head(st, part)]
    max_age = tick - st[F_LAST, oldest] + 1  # no key of the partition is older
    best = -1
    fallback = -1
    g = st[G_NEXT, part]
    while g != part:
        if best >= 0 and st[G_COUNT, g] * (tick - st[F_LAST, best] + 1) > st[F_COUNT, best] * max_age:
            break  # this group's keys, and every later group's, score above the best
        k, s = group_keys(st, g)
        while k != s:
            e = eligibility(k, ctx)
            if e == SETTLED:
                if best < 0 or _before(st, k, best, tick):
                    best = k
                break  # the rest of the group is more recent: it scores higher
            if e == IN_FLIGHT and allow_in_flight and best < 0 and (fallback < 0 or _before(st, k, fallback, tick)):
                fallback = k
            k = st[F_NEXT, k]
        g = st[G_NEXT, g]
    return best if best >= 0 else fallback


@kernel(inline="always")
def on_evict(st, key, part):
    freq_remove(st, key)
    _unlink(st, key)


HOOKS = Hooks(init, on_load, on_access, on_refresh, no_position, no_position, no_step, victim, on_evict, never_keep)
