"""``noisy-oracle``: the future with a given recall and precision ("how accurate must a predictor be?").

At ``(s, l)`` the true set is oracle's window moved to the target layer ``t = (l + layer_distance)
mod L``: that layer's experts in the next ``lookahead`` of its positions after ``(s, l)`` (steps
``s + 1 ..`` when ``t <= l``, steps ``s ..`` when ``t > l``), nearest step first, then ascending id,
each key once. Noise comes from the counter-based hash :func:`~.counter_hash.uniform` of
``(seed, stream, s, l, key)``, so kernel and reference agree bit for bit:

- recall: a true key is kept when ``uniform(seed, 0, s, l, key) < recall``;
- precision: with ``t`` keys kept, ``f = min(int(t * (1 - precision) / precision + 0.5), F)``
  false keys join them (``F`` = layer ``t``'s experts outside the true set; none when ``t = 0``
  or ``precision = 1``): the ``f`` of those with the smallest ``uniform(seed, 1, s, l, key)``,
  ties to the lower key;
- order: kept key ``i`` (0-based, in oracle order) ranks at ``(i + 0.5) / t``, a false key at
  ``uniform(seed, 2, s, l, key)``; the list is by rank, a true key before a false one at equal
  rank, false keys among themselves by rank then key. False keys thus spread through the list as
  a real predictor's mistakes would, and with no false key the order is oracle's.

With ``recall = precision = 1`` and ``layer_distance = 0`` it is ``oracle``; with ``recall = 0`` it
wants nothing (on-demand). See docs/strategies/noisy-oracle.md.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef
from .counter_hash import uniform

__all__ = ["init", "observe", "STRATEGY"]

# params: recall, precision, lookahead, layer_distance, seed


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``mark`` (E,) call stamps (as oracle's), ``call`` (1,), and per-call scratch:
    ``kept`` (E,) kept true keys, ``false_keys`` (E,) and ``false_u`` (E,) false candidates with
    their selection draws, ``false_rank`` (E,) their rank draws."""
    mark = np.zeros(num_experts, np.int64)
    call = np.zeros(1, np.int64)
    kept = np.zeros(num_experts, np.int64)
    false_keys = np.zeros(num_experts, np.int64)
    false_u = np.zeros(num_experts, np.float64)
    false_rank = np.zeros(num_experts, np.float64)
    return mark, call, kept, false_keys, false_u, false_rank


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    mark, call, kept, false_keys, false_u, false_rank = state
    recall = params[0]
    precision = params[1]
    lookahead = np.int64(params[2])
    seed = np.int64(params[4])
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    num_steps = sched.active.shape[0]
    target = (np.int64(l) + np.int64(params[3])) % num_layers
    first = s + 1 if target <= l else s
    last = first + lookahead - 1
    if last > num_steps - 1:
        last = num_steps - 1
    call[0] += 1
    stamp = call[0]
    base = target * num_experts
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    truth = 0
    t = 0
    for step in range(first, last + 1):
        p = step * num_layers + target
        for j in range(r_ptr[p], r_ptr[p + 1]):
            e = r_experts[j]
            if mark[e] == stamp:
                continue
            mark[e] = stamp
            truth += 1
            key = base + e
            if uniform(seed, 0, s, l, key) < recall:
                kept[t] = key
                t += 1
        if truth == num_experts:
            break
    f = 0
    if t > 0 and precision < 1.0:
        f = np.int64(t * (1.0 - precision) / precision + 0.5)
        if f > num_experts - truth:
            f = num_experts - truth
    if f == 0:
        for i in range(t):
            out[i] = kept[i]
        return t
    # the f false keys with the smallest selection draws (bounded insertion, ties to the lower key:
    # experts arrive in ascending id, so an equal draw never displaces)
    n = 0
    for e in range(num_experts):
        if mark[e] == stamp:
            continue
        key = base + e
        u = uniform(seed, 1, s, l, key)
        if n == f and u >= false_u[n - 1]:
            continue
        pos = n if n < f else f - 1
        while pos > 0 and false_u[pos - 1] > u:
            false_u[pos] = false_u[pos - 1]
            false_keys[pos] = false_keys[pos - 1]
            pos -= 1
        false_u[pos] = u
        false_keys[pos] = key
        if n < f:
            n += 1
    # order the false keys by their rank draw (then key), and merge them into the true list
    for i in range(f):
        false_rank[i] = uniform(seed, 2, s, l, false_keys[i])
    for i in range(1, f):
        r = false_rank[i]
        k = false_keys[i]
        pos = i
        while pos > 0 and (false_rank[pos - 1] > r or (false_rank[pos - 1] == r and false_keys[pos - 1] > k)):
            false_rank[pos] = false_rank[pos - 1]
            false_keys[pos] = false_keys[pos - 1]
            pos -= 1
        false_rank[pos] = r
        false_keys[pos] = k
    i = 0
    j = 0
    m = 0
    while i < t or j < f:
        if j == f or (i < t and (i + 0.5) / t <= false_rank[j]):
            out[m] = kept[i]
            i += 1
        else:
            out[m] = false_keys[j]
            j += 1
        m += 1
    return m


STRATEGY = StrategyDef(
    name="noisy-oracle",
    init=init,
    observe=observe,
    params=(
        Param("recall", 1.0, low=0.0, high=1.0, doc="share of the true keys kept (each by its own draw)"),
        Param("precision", 1.0, low=0.0, high=1.0, low_open=True, doc="share of true keys in the list (false keys added)"),
        Param("lookahead", 8, kind="int", low=1, doc="positions of the target layer looked ahead (oracle's window)"),
        Param("layer_distance", 0, kind="int", low=0, doc="target layer = (l + layer_distance) mod L; 0 is oracle's own layer"),
        Param("seed", 0, kind="int", low=0, high=2.0 ** 53, doc="seed of the counter-based noise"),
    ),
    builtin=True,
    description="the future with a given recall and precision: how accurate must a predictor be?",
)
