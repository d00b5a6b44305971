"""``pre-gated``: the next layer's experts, known one layer ahead (Pre-gated MoE).

Pre-gated MoE (Hwang et al., ISCA 2024) trains each MoE block's gate to pick the experts of the
*next* block, so while layer ``l`` computes, layer ``l + 1``'s experts are already known and
their transfer overlaps it. Mixtral-offloading's speculative loading applies the next layer's
gate to the current hidden state, a guess whose exact upper bound is the same knowledge. At
``(s, l)`` with ``l < L - 1`` this wants ``R(s, l + 1)``, each key kept when
``uniform(seed, 0, s, l + 1, key) < recall`` (the counter-based hash of
:mod:`.counter_hash`), ordered by tokens routed (``n_e``) descending, then id. The last layer
wants nothing: the next token's first layer is not known before that token exists.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef
from .counter_hash import uniform

__all__ = ["init", "observe", "STRATEGY"]

# params: recall, seed


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``tokens`` (E,) int64, the kept keys' token counts while a call sorts them."""
    return (np.zeros(num_experts, np.int64),)


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    tokens = state[0]
    num_layers = sched.num_layers
    if l + 1 >= num_layers:
        return 0
    recall = params[0]
    seed = np.int64(params[1])
    nxt = np.int64(l) + 1
    base = nxt * sched.num_experts
    p = s * num_layers + nxt
    r_experts = sched.r_experts
    r_counts = sched.r_counts
    m = 0
    for j in range(sched.r_ptr[p], sched.r_ptr[p + 1]):
        key = base + r_experts[j]
        if uniform(seed, 0, s, nxt, key) >= recall:
            continue
        c = np.int64(r_counts[j])
        # insertion by tokens descending; keys arrive ascending, so an equal count stays behind
        pos = m
        while pos > 0 and tokens[pos - 1] < c:
            tokens[pos] = tokens[pos - 1]
            out[pos] = out[pos - 1]
            pos -= 1
        tokens[pos] = c
        out[pos] = key
        m += 1
    return m


STRATEGY = StrategyDef(
    name="pre-gated",
    init=init,
    observe=observe,
    params=(
        Param("recall", 1.0, low=0.0, high=1.0, doc="share of the next layer's experts known (each by its own draw)"),
        Param("seed", 0, kind="int", low=0, high=2.0 ** 53, doc="seed of the counter-based draws"),
    ),
    builtin=True,
    description="the next layer's experts one layer ahead (Pre-gated MoE; speculative gating's upper bound)",
)
