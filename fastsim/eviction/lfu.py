"""``lfu``: evict the key with the fewest demand accesses since its load; ties to the least
recent (SPEC section 6).

A demand-loaded key starts at 1, a prefetched one at 0; each demand access (hit or late) adds 1;
counts are forgotten on eviction. The order is kept in frequency lists
(:mod:`fastsim.eviction.freq_lists`): every event is O(1), and a victim search walks from the
lowest count's least recent key past the keys SPEC section 3 forbids, as LRU's list does. So a
prefetched key (count 0) that its call protects costs a victim search one step, not a heap pop.
"""
from __future__ import annotations

from .._jit import kernel
from .base import Hooks, never_keep, no_position, no_step
from .freq_lists import freq_bump, freq_insert, freq_remove, freq_state, freq_touch, freq_victim

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    return freq_state(part_off.shape[0] - 1, num_layers * num_experts, 0)


@kernel(inline="always")
def on_load(st, key, part, tick, demand):
    count = 1 if demand else 0
    freq_insert(st, key, part, count, tick)


@kernel(inline="always")
def on_access(st, key, part, tick):
    freq_bump(st, key, tick)


@kernel(inline="always")
def on_refresh(st, key, part, tick):
    freq_touch(st, key, tick)


@kernel(inline="always")
def victim(st, part, ctx, allow_in_flight, tick):
    return freq_victim(st, part, ctx, allow_in_flight)


@kernel(inline="always")
def on_evict(st, key, part):
    freq_remove(st, key)


HOOKS = Hooks(init, on_load, on_access, on_refresh, no_position, no_position, no_step, victim, on_evict, never_keep)
