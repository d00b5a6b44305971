"""Top-k with adaptive K (the seed's ``AdaptiveTopKStrategy``, section 5 "Advanced Variations"),
driven by the layer's own demand outcomes through the feedback hook.

Per layer it is top-k (:mod:`fastsim.strategies.top_k`, every parameter of which it takes) with
``k`` changing: the feedback hook appends the hit rate of each demand step of the layer
(``hits / |R|``; steps with an empty ``R`` add nothing) to a history; every
``adjustment_period``-th call, once the history holds ``hit_rate_window`` rates, their mean decides:
below ``target_hit_rate - tolerance`` ``k`` grows by ``k_step_up`` (at most ``k_max``, 0 meaning
``E // 2``), above ``target_hit_rate + tolerance`` it shrinks by ``k_step_down`` (at least
``k_min``); the top ``k`` is then recomputed, as the seed's ``adapt_k_value`` does. The seed's
constants are the defaults (target 0.95, period 500, window 10, tolerance 0.02, steps +4 / -2,
bounds 8 and ``E // 2``).

Its wanted lists depend on the cache (through the outcomes), so they cannot be shared across
cache sizes or policies. Reference: :mod:`fastsim.reference.adaptive_top_k`.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef
from .top_k import PARAMS as TOP_K_PARAMS
from .top_k import ORDER, count_call, emit, recompute_top

__all__ = ["init", "observe", "feedback", "STRATEGY"]

# indices of the adaptive parameters, after top-k's seven
TARGET = 7
PERIOD = 8
HR_WINDOW = 9
TOLERANCE = 10
STEP_UP = 11
STEP_DOWN = 12
K_MIN = 13
K_MAX = 14


@kernel
def init(num_layers, num_experts, top_k, params):
    """Top-k's state with room for any ``k`` (``chosen`` is ``(L, E)``), plus per layer:
    ``k_now`` (L,) int64, the current ``k``; ``rates`` (L, hit_rate_window) float64, a ring of the
    latest hit rates; ``n_rates`` (L,) int64, how many were ever recorded."""
    v = np.zeros((num_layers, num_experts), np.float64)
    g = np.ones(num_layers, np.float64)
    calls = np.zeros(num_layers, np.int64)
    chosen = np.zeros((num_layers, max(num_experts, 1)), np.int64)
    nchosen = np.zeros(num_layers, np.int64)
    scratch = np.zeros(num_experts, np.float64)
    k_now = np.full(num_layers, np.int64(params[0]), np.int64)
    rates = np.zeros((num_layers, int(params[HR_WINDOW])), np.float64)
    n_rates = np.zeros(num_layers, np.int64)
    return v, g, calls, chosen, nchosen, scratch, k_now, rates, n_rates


@kernel(inline="always")
def feedback(state, params, sched, s, l, experts, outcomes):
    """Record the hit rate of this demand step (HIT = 0 counts; late and miss do not)."""
    rates = state[7]
    n_rates = state[8]
    n = outcomes.shape[0]
    if n == 0:
        return None
    hits = 0
    for i in range(n):
        if outcomes[i] == 0:
            hits += 1
    window = rates.shape[1]
    rates[l, n_rates[l] % window] = hits / n
    n_rates[l] += 1
    return None


@kernel(inline="always")
def _adapt(params, l, k_now, rates, n_rates, num_experts):
    """The seed's ``adapt_k_value`` without its recompute: the new ``k``, or -1 when the history
    is still shorter than the window (the seed then returns before recomputing)."""
    window = rates.shape[1]
    n = n_rates[l]
    if n < window:
        return -1
    acc = 0.0
    for i in range(n - window, n):  # oldest first, as sum(history[-window:])
        acc += rates[l, i % window]
    recent = acc / window
    k = k_now[l]
    target = params[TARGET]
    tol = params[TOLERANCE]
    if recent < target - tol:
        cap = np.int64(params[K_MAX])
        if cap == 0:
            cap = num_experts // 2
        k = k + np.int64(params[STEP_UP])
        if k > cap:
            k = cap
    elif recent > target + tol:
        k = k - np.int64(params[STEP_DOWN])
        floor = np.int64(params[K_MIN])
        if k < floor:
            k = floor
    return k


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    v, g, calls, chosen, nchosen, scratch, k_now, rates, n_rates = state
    num_experts = v.shape[1]
    ng = count_call(v, g, params, sched, s, l)
    t = calls[l] + 1
    calls[l] = t
    if t % np.int64(params[3]) == 0:
        k = k_now[l]
        nchosen[l] = recompute_top(v, ng, scratch, chosen, l, k if k < num_experts else num_experts)
    if t % np.int64(params[PERIOD]) == 0:
        k = _adapt(params, l, k_now, rates, n_rates, num_experts)
        if k >= 0:
            k_now[l] = k
            nchosen[l] = recompute_top(v, ng, scratch, chosen, l, k if k < num_experts else num_experts)
    return emit(v, ng, chosen, nchosen[l], l, params[ORDER], out, scratch)


PARAMS = TOP_K_PARAMS + (
    Param("target_hit_rate", 0.95, low=0.0, high=1.0, doc="the hit rate k is adjusted towards"),
    Param("adjustment_period", 500, kind="int", low=1, doc="calls between adjustments of k"),
    Param("hit_rate_window", 10, kind="int", low=1, doc="latest per-step hit rates averaged"),
    Param("tolerance", 0.02, low=0.0, doc="band around the target in which k stays"),
    Param("k_step_up", 4, kind="int", low=0, doc="k grows by this below the band"),
    Param("k_step_down", 2, kind="int", low=0, doc="k shrinks by this above the band"),
    Param("k_min", 8, kind="int", low=1, doc="k never shrinks below this"),
    Param("k_max", 0, kind="int", low=0, doc="k never grows above this; 0: E // 2, as the seed"),
)


STRATEGY = StrategyDef(
    name="adaptive-top-k",
    init=init,
    observe=observe,
    params=PARAMS,
    builtin=True,
    description="top-k whose k follows the layer's hit rate (the seed's adaptive-K variant of strategy D)",
    feedback=feedback,
)
