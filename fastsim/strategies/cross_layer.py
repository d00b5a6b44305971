"""``cross-layer``: an online co-activation table, ``P(e at l + d | e' at l)``.

Per step, for every pair of layers ``(l, l + d)`` with ``1 <= d <= depth``, the table counts how
often expert ``e`` of layer ``l + d`` ran in a step where ``e'`` ran at layer ``l``
(``C[d][l][e'][e]``), and how many steps ``e'`` ran at ``l`` (``N[l][e']``). At ``(s, l)`` it
first adds step ``s``'s pairs that end at layer ``l``, then, for ``d = 1 .. depth`` with
``l + d < L``, wants layer ``l + d``'s experts ``e`` whose
``P(e) = max over e' in R of C[d][l][e'][e] / N[l][e']`` (``e'`` with ``N > 0``, over steps before
``s``) is positive and at least ``threshold``: nearest layer first, then ``P`` descending, then
id; last it counts ``R`` into ``N[l]``. The predictor of cross-layer expert-affinity work
(ExFlow, Yao et al., IPDPS 2024, measures this inter-layer affinity).
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef

__all__ = ["init", "observe", "STRATEGY"]

# params: threshold, depth


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``pairs`` (depth, L, E, E) int32 co-activation counts ``C``; ``runs`` (L, E) int64
    step counts ``N``; per-call scratch ``prob`` (E,) float64 and ``cand`` (E,) int64."""
    depth = int(params[1])
    pairs = np.zeros((depth, num_layers, num_experts, num_experts), np.int32)
    runs = np.zeros((num_layers, num_experts), np.int64)
    prob = np.zeros(num_experts, np.float64)
    cand = np.zeros(num_experts, np.int64)
    return pairs, runs, prob, cand


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    pairs, runs, prob, cand = state
    threshold = params[0]
    depth = np.int64(params[1])
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    nr = experts.shape[0]
    # this step's pairs that end here: (l - d) -> l
    for d in range(1, depth + 1):
        src = np.int64(l) - d
        if src < 0:
            break
        p = s * num_layers + src
        for j in range(r_ptr[p], r_ptr[p + 1]):
            a = r_experts[j]
            for i in range(nr):
                pairs[d - 1, src, a, experts[i]] += 1
    m = 0
    if nr > 0:
        for d in range(1, depth + 1):
            dst = np.int64(l) + d
            if dst >= num_layers:
                break
            for e in range(num_experts):
                prob[e] = 0.0
            for i in range(nr):
                a = experts[i]
                runs_a = runs[l, a]
                if runs_a == 0:
                    continue
                row = pairs[d - 1, l, a]
                for e in range(num_experts):
                    c = row[e]
                    if c > 0:
                        v = c / runs_a
                        if v > prob[e]:
                            prob[e] = v
            # candidates by P descending, then id (ascending arrival: an equal P stays behind)
            n = 0
            for e in range(num_experts):
                v = prob[e]
                if v <= 0.0 or v < threshold:
                    continue
                pos = n
                while pos > 0 and prob[cand[pos - 1]] < v:
                    cand[pos] = cand[pos - 1]
                    pos -= 1
                cand[pos] = e
                n += 1
            base = dst * num_experts
            for i in range(n):
                out[m] = base + cand[i]
                m += 1
    for i in range(nr):
        runs[l, experts[i]] += 1
    return m


STRATEGY = StrategyDef(
    name="cross-layer",
    init=init,
    observe=observe,
    params=(
        Param("threshold", 0.25, low=0.0, high=1.0, doc="least conditional probability P(e at l+d | e' at l) wanted"),
        Param("depth", 1, kind="int", low=1, doc="layers ahead the table spans (and the strategy predicts)"),
    ),
    builtin=True,
    description="online co-activation table P(e at l+d | e' at l): experts of the next depth layers above threshold",
)
