"""``lru``: evict the least recent key (SPEC section 3).

One array-based doubly linked list per partition with a sentinel node each (``num_keys + q``):
``nxt[head]`` is the partition's least recent key, ``prv[head]`` its most recent; every event is
O(1) without branches. A victim search walks from the least recent end past the keys SPEC
section 3 forbids.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from ..timeline.evict import lru_push_mru, lru_unlink
from .base import IN_FLIGHT, SETTLED, Hooks, eligibility, never_keep, no_position, no_step

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    parts = part_off.shape[0] - 1
    prv = np.empty(num_keys + parts, np.int64)
    nxt = np.empty(num_keys + parts, np.int64)
    for q in range(parts):
        prv[num_keys + q] = num_keys + q
        nxt[num_keys + q] = num_keys + q
    return prv, nxt, np.int64(num_keys)


@kernel(inline="always")
def on_load(state, key, part, tick, demand):
    prv, nxt, num_keys = state
    lru_push_mru(prv, nxt, key, num_keys + part)


@kernel(inline="always")
def on_access(state, key, part, tick):
    prv, nxt, num_keys = state
    lru_unlink(prv, nxt, key)
    lru_push_mru(prv, nxt, key, num_keys + part)


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    prv, nxt, num_keys = state
    head = num_keys + part
    fallback = -1
    k = nxt[head]
    while k != head:
        e = eligibility(k, ctx)
        if e == SETTLED:
            return k
        if e == IN_FLIGHT and allow_in_flight and fallback < 0:
            fallback = k
        k = nxt[k]
    return fallback


@kernel(inline="always")
def on_evict(state, key, part):
    prv, nxt, num_keys = state
    lru_unlink(prv, nxt, key)


HOOKS = Hooks(init, on_load, on_access, on_access, no_position, no_position, no_step, victim, on_evict, never_keep)
