"""Strategy D, top-k: decayed expert frequencies, top ``k`` recomputed every ``update_frequency`` calls.

Per layer, each call first decays every count by ``decay_factor``, then adds 1 for every expert of
the last ``min(window, calls so far)`` ``R`` sets (the seed re-adds its last 10 tokens on every
call, so one set is counted up to ``window`` times; with ``weighting = 1``, the seed's weighted
variant, the ``i``-th oldest of them adds ``(i + 1) / window`` instead). Every
``update_frequency``-th call recomputes the top ``min(k, E)`` experts by count; every call returns
the set of the last recompute, empty before the first one. The order is count descending, then id
ascending: the counts of that recompute (``order = 0``, the default) or those of the call
(``order = 1``, as SPEC section 4 states it).

Decay is lazy: the kernel keeps ``v`` with ``count = v * g`` and ``g`` the running product of
decays, so a call costs ``O(window * |R|)`` instead of ``O(E)``; ``g`` is folded back into ``v``
(``O(E)``) before it falls below ``1e-150``. :mod:`fastsim.reference.top_k` performs the same
floating-point operations in the same order, so both give identical lists.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from ..lazy_decay import SCALE_FLOOR
from . import Param, StrategyDef

__all__ = ["init", "observe", "count_call", "emit", "recompute_top", "PARAMS", "STRATEGY"]

# params: k, decay_factor, window, update_frequency, min_count_threshold, order, weighting
ORDER = 5
WEIGHTING = 6


@kernel
def init(num_layers, num_experts, top_k, params):
    """State, per layer ``l``:

    - ``v`` (L, E) float64: scaled counts, ``count = v[l, e] * g[l]``;
    - ``g`` (L,) float64: running product of decays since the last fold;
    - ``calls`` (L,) int64: calls so far (the seed's ``token_count``);
    - ``chosen`` (L, k') int64: keys of the last recompute, most wanted first, ``k' = min(k, E)``;
    - ``nchosen`` (L,) int64: how many of them are valid (0 before the first recompute);
    - ``scratch`` (E,) float64: current counts during a recompute (with ``order = 1``, of the
      chosen keys at each call).

    The recent ``R`` sets are read back from the schedule (positions already demanded), so no
    copy of the window is kept.
    """
    k = int(params[0])
    kk = min(k, num_experts)
    v = np.zeros((num_layers, num_experts), np.float64)
    g = np.ones(num_layers, np.float64)
    calls = np.zeros(num_layers, np.int64)
    chosen = np.zeros((num_layers, max(kk, 1)), np.int64)
    nchosen = np.zeros(num_layers, np.int64)
    scratch = np.zeros(num_experts, np.float64)
    return v, g, calls, chosen, nchosen, scratch


@kernel(inline="always")
def recompute_top(v, g_l, scratch, chosen, l, kk):
    """Write layer ``l``'s top ``kk`` experts by ``v[l] * g_l`` (count descending, id ascending)
    as keys into ``chosen[l]``; returns how many (``kk``, or 0 when ``kk < 1``)."""
    num_experts = v.shape[1]
    if kk < 1:
        return 0
    for e in range(num_experts):
        scratch[e] = v[l, e] * g_l
    # bounded insertion: experts arrive in ascending id, so an equal count never displaces
    n = 0
    for e in range(num_experts):
        c = scratch[e]
        if n == kk and c <= scratch[chosen[l, n - 1]]:
            continue
        pos = n if n < kk else kk - 1
        while pos > 0 and scratch[chosen[l, pos - 1]] < c:
            chosen[l, pos] = chosen[l, pos - 1]
            pos -= 1
        chosen[l, pos] = e
        if n < kk:
            n += 1
    base = np.int64(l) * num_experts
    for i in range(n):
        chosen[l, i] = base + chosen[l, i]
    return n


@kernel(inline="always")
def count_call(v, g, params, sched, s, l):
    """One call's count update for layer ``l``: decay, then re-add the recent window's sets.

    Returns the layer's scale ``g[l]`` after the decay (``count = v[l, e] * g[l]``).
    """
    num_experts = v.shape[1]
    decay = params[1]
    window = np.int64(params[2])

    # decay: fold g into v (the seed's eager multiply) before g gets too small to invert
    gl = g[l]
    ng = gl * decay
    if ng < SCALE_FLOOR:
        for e in range(num_experts):
            v[l, e] = v[l, e] * gl
            v[l, e] = v[l, e] * decay
        ng = 1.0
    g[l] = ng

    # re-add the last min(window, s + 1) R sets of this layer, oldest first like
    # history[-window:]; calls arrive in step order, so they are the schedule's steps s-a
    num_layers = sched.num_layers
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    kept = s + 1 if s + 1 < window else window
    if params[WEIGHTING] == 0.0:
        inc = 1.0 / ng
        for a in range(kept - 1, -1, -1):
            p = (s - a) * num_layers + l
            for j in range(r_ptr[p], r_ptr[p + 1]):
                v[l, r_experts[j]] += inc
    else:
        # the seed's weighted variant: the i-th oldest set of the window adds (i + 1) / window
        wf = params[2]
        for a in range(kept - 1, -1, -1):
            inc = ((kept - a) / wf) / ng
            p = (s - a) * num_layers + l
            for j in range(r_ptr[p], r_ptr[p + 1]):
                v[l, r_experts[j]] += inc
    return ng


@kernel(inline="always")
def emit(v, ng, chosen, n, l, order, out, scratch):
    """Write layer ``l``'s ``n`` chosen keys into ``out``, most wanted first; returns ``n``.

    ``order == 0``: as the last recompute ranked them; otherwise by the counts of this call
    (``v * ng``) descending, then id ascending. That order is total, so ``chosen[l]`` may keep
    the last call's order: an insertion sort of it (``scratch`` holds the counts) is nearly
    sorted already, as the ranking drifts slowly between calls.
    """
    if order != 0.0:
        num_experts = v.shape[1]
        row = chosen[l]
        for i in range(n):
            scratch[i] = v[l, row[i] % num_experts] * ng
        for i in range(1, n):
            key = row[i]
            c = scratch[i]
            b = i
            while b > 0 and (scratch[b - 1] < c or (scratch[b - 1] == c and row[b - 1] > key)):
                row[b] = row[b - 1]
                scratch[b] = scratch[b - 1]
                b -= 1
            row[b] = key
            scratch[b] = c
    for i in range(n):
        out[i] = chosen[l, i]
    return n


# inlined into each entry point, which lets numba drop per-call reference counting
@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    v, g, calls, chosen, nchosen, scratch = state
    num_experts = v.shape[1]
    ng = count_call(v, g, params, sched, s, l)
    t = calls[l] + 1
    calls[l] = t
    if t % np.int64(params[3]) == 0:
        k = np.int64(params[0])
        nchosen[l] = recompute_top(v, ng, scratch, chosen, l, k if k < num_experts else num_experts)
    return emit(v, ng, chosen, nchosen[l], l, params[ORDER], out, scratch)


#: top-k's parameters; the variants (``adaptive-top-k``) start from these
PARAMS = (
    Param("k", 32, kind="int", low=1, doc="experts kept per layer"),
    Param("decay_factor", 0.999, low=0.0, high=1.0, low_open=True, doc="per-call decay of the counts"),
    Param("window", 10, kind="int", low=1, doc="recent R sets re-added on every call (the seed's 10)"),
    Param("update_frequency", 100, kind="int", low=1, doc="calls between top-k recomputes"),
    Param(
        "min_count_threshold",
        1.0,
        low=0.0,
        doc="the seed's filter; it never changes the chosen set (the fill restores it)",
    ),
    Param("order", 0, kind="int", low=0, high=1, hashed_at_default=False,
          doc="0: counts of the last recompute (the committed results); 1: counts of the call (SPEC section 4)"),
    Param("weighting", 0, kind="int", low=0, high=1, hashed_at_default=False,
          doc="0: each recent set adds 1 (the seed's class); 1: linear recency weights (the seed's weighted variant)"),
)


STRATEGY = StrategyDef(
    name="top-k",
    init=init,
    observe=observe,
    params=PARAMS,
    builtin=True,
    description="decayed frequency counts, top k recomputed every update_frequency steps (seed strategy D)",
)
