"""``lfru``: evict the smallest ``freq / (tick_now - last + 1)``, frequency over age.

The LFRU of the author of llama.cpp PR 21609 ("N-slot LFRU", withdrawn), as that author's
``tinyserve/cache_policy.py`` (``LFRUPolicy``) keeps it: ``freq = 1`` on a load, ``+1`` per demand
access, ``last`` the key's recency, no decay, state forgotten on eviction. The score changes with
the clock for every key, so no heap holds its order: a victim search scans the partition's
resident keys and compares scores exactly, by cross-multiplying integers. Ties go to the least
recent key, then the lowest.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import Hooks, members_add, members_init, never_keep, no_position, no_step, scan_on_evict, scan_victim

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    members, mpos, count = members_init(part_off, num_keys)
    freq = np.zeros(num_keys, np.int64)
    last = np.zeros(num_keys, np.int64)
    return members, mpos, count, part_off, freq, last


@kernel(inline="always")
def on_load(state, key, part, tick, demand):
    members, mpos, count, part_off, freq, last = state
    members_add(members, mpos, count, part_off, key, part)
    freq[key] = 1
    last[key] = tick


@kernel(inline="always")
def on_access(state, key, part, tick):
    freq = state[4]
    last = state[5]
    freq[key] += 1
    last[key] = tick


@kernel(inline="always")
def on_refresh(state, key, part, tick):
    last = state[5]
    last[key] = tick


@kernel(inline="always")
def _before(state, a, b, tick):
    freq = state[4]
    last = state[5]
    # freq_a / (tick - last_a + 1) < freq_b / (tick - last_b + 1), exactly
    lhs = freq[a] * (tick - last[b] + 1)
    rhs = freq[b] * (tick - last[a] + 1)
    if lhs != rhs:
        return lhs < rhs
    if last[a] != last[b]:
        return last[a] < last[b]
    return a < b


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    members, mpos, count, part_off, freq, last = state
    return scan_victim(state, members, count, part_off, part, ctx, allow_in_flight, tick, _before)


HOOKS = Hooks(init, on_load, on_access, on_refresh, no_position, no_position, no_step, victim, scan_on_evict, never_keep)
