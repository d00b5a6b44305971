"""``activation-aware``: MoE-Infinity's priority, the request's activation counts times a
layer-position term; the smallest priority is evicted.

``priority(k) = (1.0 - (d - 1) / L) * (act(k) + smoothing)`` with ``act(k)`` the tokens of the
requests now in the batch routed to ``k`` so far and ``d`` how many layers from the current one
until ``k``'s layer runs again (``docs/model.md``, "Cache organisation"). After MoE-Infinity's
``moe_infinity/memory/expert_priority_score.py`` (``priority_score``) and
``memory/expert_cache.py`` (``ExpertCache.gpu_evict``). ``act`` grows at each position from the
schedule's counts and shrinks when a request finishes (the schedule's per-step release lists);
the priorities of all keys move with the current layer, so a victim search scans the partition.
Ties go to the least recent key, then the lowest.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import (
    Hooks, lower_then_older, members_init, never_keep, no_position, scan_on_evict, scan_on_load, scan_touch, scan_victim,
)

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    members, mpos, count = members_init(part_off, num_keys)
    act = np.zeros(num_keys, np.int64)
    last = np.zeros(num_keys, np.int64)
    # current layer, L, E; smoothing
    shape = np.array([0, num_layers, num_experts], np.int64)
    smoothing = np.full(1, params[0], np.float64)
    return members, mpos, count, part_off, act, last, shape, smoothing


@kernel(inline="always")
def on_position(state, sched, p, l, lo, hi):
    act = state[4]
    shape = state[6]
    shape[0] = l
    base = l * shape[2]
    for j in range(lo, hi):
        act[base + sched.r_experts[j]] += sched.r_counts[j]


@kernel(inline="always")
def after_step(state, sched, s):
    act = state[4]
    for i in range(sched.rel_ptr[s], sched.rel_ptr[s + 1]):
        act[sched.rel_keys[i]] -= sched.rel_counts[i]


@kernel(inline="always")
def _priority(state, k):
    act = state[4]
    shape = state[6]
    smoothing = state[7][0]
    num_layers = shape[1]
    layer = k // shape[2]
    d = (layer - shape[0] - 1) % num_layers + 1
    return (1.0 - (d - 1) / num_layers) * (act[k] + smoothing)


@kernel(inline="always")
def _before(state, a, b, tick):
    return lower_then_older(_priority(state, a), _priority(state, b), state, a, b)


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    members = state[0]
    count = state[2]
    part_off = state[3]
    return scan_victim(state, members, count, part_off, part, ctx, allow_in_flight, tick, _before)


HOOKS = Hooks(init, scan_on_load, scan_touch, scan_touch, on_position, no_position, after_step, victim, scan_on_evict,
              never_keep)
NEEDS_REQUESTS = True
