"""``hybrimoe``: prefetch the next layer's top experts by HybriMoE's decayed router score.

HybriMoE (DAC 2025) keeps a score per expert, ``S <- alpha * score + (1 - alpha) * S``
for the experts the router picks and ``S <- (1 - alpha) * S`` for the rest of that layer
(``ktransformers/operators/experts.py``, ``KScoreAwareCache.update_priority_scores``), and while
layer ``l`` computes, prefetches the ``prefetch_size`` experts of layer ``l + 1`` with the highest
``S`` (``KExpertsCache.prefetch_expert``, ``KScoreAwareCache.get_experts_to_prefetch``; none after
the last layer). At ``(s, l)`` this updates layer ``l``'s scores (``score`` = the entry's
``r_scores`` when the trace has router scores, else ``n_e / active`` tokens), then wants the top
``k`` of layer ``l + 1`` by ``S`` (``k = prefetch_size``, or the trace's top-k when 0), ``S > 0``
only, ``S`` descending then id.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef

__all__ = ["init", "observe", "STRATEGY"]

# params: alpha, prefetch_size


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``score`` (L, E) float64 (``S``); ``k`` (1,) the experts wanted per call;
    ``chosen`` (k,) scratch."""
    k = int(params[1])
    if k == 0:
        k = top_k
    k = max(1, min(k, num_experts))
    score = np.zeros((num_layers, num_experts), np.float64)
    return score, np.full(1, k, np.int64), np.zeros(k, np.int64)


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    score, kk, chosen = state
    alpha = params[0]
    keep = 1.0 - alpha
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    lo = sched.r_ptr[s * num_layers + l]
    has_scores = sched.r_scores.shape[0] == sched.r_experts.shape[0]
    active = np.float64(sched.active[s])
    nr = experts.shape[0]
    i = 0
    for e in range(num_experts):
        if i < nr and experts[i] == e:
            if has_scores:
                x = sched.r_scores[lo + i]
            else:
                x = counts[i] / active
            score[l, e] = alpha * x + keep * score[l, e]
            i += 1
        else:
            score[l, e] = keep * score[l, e]
    nxt = np.int64(l) + 1
    if nxt >= num_layers:
        return 0
    k = kk[0]
    n = 0
    for e in range(num_experts):
        v = score[nxt, e]
        if v <= 0.0 or (n == k and v <= score[nxt, chosen[n - 1]]):
            continue
        pos = n if n < k else k - 1
        while pos > 0 and score[nxt, chosen[pos - 1]] < v:
            chosen[pos] = chosen[pos - 1]
            pos -= 1
        chosen[pos] = e
        if n < k:
            n += 1
    base = nxt * num_experts
    for j in range(n):
        out[j] = base + chosen[j]
    return n


STRATEGY = StrategyDef(
    name="hybrimoe",
    init=init,
    observe=observe,
    params=(
        Param("alpha", 0.5, low=0.0, high=1.0, low_open=True, doc="weight of the new score (HybriMoE's 0.5)"),
        Param("prefetch_size", 0, kind="int", low=0, doc="experts of the next layer wanted; 0 = the trace's top-k"),
    ),
    builtin=True,
    needs_scores=True,
    description="the next layer's top experts by HybriMoE's decayed router score",
)
