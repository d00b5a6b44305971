"""Strategy B, oracle: prefetch the keys this layer needs in the next ``lookahead`` steps.

The only strategy that reads the future. At ``(s, l)`` it wants layer ``l``'s experts of steps
``s + 1 .. s + w`` of this replay's schedule, ``w = min(lookahead, steps - s - 1)``, nearest step
first, then ascending id; a key appears once, at its nearest step. Paired with ``belady`` eviction
it is the strongest seed configuration, though not a true bound: demand loads queue on the link
behind its prefetches.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef

__all__ = ["init", "observe", "STRATEGY"]


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``(mark, call)``.

    ``mark`` (E,) int64 holds, per expert, the number of the last call that emitted it, so one
    call emits each expert once without clearing an array; ``call`` (1,) int64 counts calls.
    """
    mark = np.zeros(num_experts, np.int64)
    call = np.zeros(1, np.int64)
    return mark, call


# inlined into each entry point, which lets numba drop per-call reference counting
@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    mark, call = state
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    num_steps = sched.active.shape[0]
    last = s + np.int64(params[0])
    if last > num_steps - 1:
        last = num_steps - 1
    call[0] += 1
    stamp = call[0]
    base = np.int64(l) * num_experts
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    m = 0
    for step in range(s + 1, last + 1):
        p = step * num_layers + l
        for j in range(r_ptr[p], r_ptr[p + 1]):
            e = r_experts[j]
            # branch-free: whether an expert repeats within the window is unpredictable
            out[m] = base + e
            m += mark[e] != stamp
            mark[e] = stamp
            if m == num_experts:  # every expert named: a repeat would write past out's end
                return m
    return m




STRATEGY = StrategyDef(
    name="oracle",
    init=init,
    observe=observe,
    params=(
        Param("lookahead", 8, kind="int", low=1, doc="steps of the schedule to look ahead (the seed's 8)"),
    ),
    builtin=True,
    description="perfect knowledge of this layer's experts in the next `lookahead` steps (seed strategy B)",
)
