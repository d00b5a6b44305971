"""``score-aware``: HybriMoE's score-aware cache; the smallest decayed router score is evicted.

At every ``(step, layer)``, before its demand, each key of that layer is updated from the router:
``S <- alpha * score + (1 - alpha) * S`` for the experts of ``R`` (``score`` the active tokens'
summed weights over the active tokens, from the schedule), ``S <- (1 - alpha) * S`` for the rest.
After HybriMoE's ``ktransformers/operators/experts.py`` (``KScoreAwareCache``; alpha 0.5 in
``models/modeling_deepseek.py``). Decaying a whole layer is O(E) per position, done eagerly so the
reference's literal arithmetic matches bit for bit. Scores of other layers are not comparable by
a fixed order over time, so a victim search scans the partition. Ties go to the least recent
key, then the lowest.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from .base import Hooks, members_add, members_drop, members_init, never_keep, no_position, no_step, scan_victim

__all__ = ["HOOKS"]


@kernel(inline="always")
def init(num_layers, num_experts, part_of_layer, part_off, params, sched):
    num_keys = num_layers * num_experts
    members, mpos, count = members_init(part_off, num_keys)
    score = np.zeros(num_keys, np.float64)
    last = np.zeros(num_keys, np.int64)
    alpha = np.full(1, params[0], np.float64)
    return members, mpos, count, part_off, score, last, alpha, np.int64(num_experts)


@kernel(inline="always")
def on_load(state, key, part, tick, demand):
    members, mpos, count, part_off, score, last, alpha, num_experts = state
    members_add(members, mpos, count, part_off, key, part)
    last[key] = tick


@kernel(inline="always")
def on_access(state, key, part, tick):
    last = state[5]
    last[key] = tick


@kernel(inline="always")
def on_position(state, sched, p, l, lo, hi):
    score = state[4]
    a = state[6][0]
    num_experts = state[7]
    base = l * num_experts
    keep = 1.0 - a
    for e in range(num_experts):
        score[base + e] = keep * score[base + e]
    for j in range(lo, hi):
        k = base + sched.r_experts[j]
        score[k] = a * sched.r_scores[j] + score[k]


@kernel(inline="always")
def _before(state, a, b, tick):
    score = state[4]
    if score[a] != score[b]:
        return score[a] < score[b]
    last = state[5]
    if last[a] != last[b]:
        return last[a] < last[b]
    return a < b


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    members = state[0]
    count = state[2]
    part_off = state[3]
    return scan_victim(state, members, count, part_off, part, ctx, allow_in_flight, tick, _before)


@kernel(inline="always")
def on_evict(state, key, part):
    members, mpos, count, part_off, score, last, alpha, num_experts = state
    members_drop(members, mpos, count, part_off, key, part)


HOOKS = Hooks(init, on_load, on_access, on_access, on_position, no_position, no_step, victim, on_evict, never_keep)
NEEDS_SCORES = True
