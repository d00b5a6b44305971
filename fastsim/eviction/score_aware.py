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
from .base import (
    Hooks, lower_then_older, members_init, never_keep, no_position, no_step, scan_on_evict, scan_on_load, scan_touch,
    scan_victim,
)

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
    return lower_then_older(score[a], score[b], state, a, b)


@kernel(inline="always")
def victim(state, part, ctx, allow_in_flight, tick):
    members = state[0]
    count = state[2]
    part_off = state[3]
    return scan_victim(state, members, count, part_off, part, ctx, allow_in_flight, tick, _before)


HOOKS = Hooks(init, scan_on_load, scan_touch, scan_touch, on_position, no_position, no_step, victim, scan_on_evict,
              never_keep)
NEEDS_SCORES = True
