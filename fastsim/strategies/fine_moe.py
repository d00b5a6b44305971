"""``fine-moe``: FineMoE's expert maps, trajectory matching and top-delta selection.

FineMoE (IntelliSys-Lab, EuroSys 2026; ``finemoe/memory/expert_map.py``) stores, per iteration,
an *expert map*: every layer's router probabilities. While a new iteration runs, the layers seen
so far (its *trajectory*) are matched against the stored maps by cosine similarity
(``ExpertMapStore.match_traj``), and for the next ``prefetch_distance`` layers the best match's
experts are prefetched, most probable first, until their cumulative probability reaches
``1 - similarity`` (at least ``top_k``; ``prefetch_rows``). A full store replaces its most similar
map (``ExpertMapStore.add``).

Here a map is one step's: at layer ``j`` the probability of each expert of ``R(s, j)`` is its
weight over the layer's total weight, the weight being the entry's router score (``r_scores``)
when the trace has scores, else its token count ``n_e``. Every sum runs per layer over ``R`` in
ascending id, then across layers in layer order, as FineMoE's incremental trajectory products do.
At ``(s, l)``, with ``dot_c`` and ``|cur|^2`` the sums over layers ``0..l``, slot ``c`` scores
``dot_c * inv(|cur|^2) * inv(|map_c|^2 over 0..l)``, ``inv(x) = 1 / max(sqrt(x), 1e-12)``; the
first best slot wins. After the step's last layer its map (unless all zero) joins the store: a
free slot, else the slot with the best score over all layers. See docs/strategies/fine-moe.md.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef

__all__ = ["init", "observe", "STRATEGY"]

# params: capacity, prefetch_distance, min_experts


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``maps`` (capacity, L, E) stored probabilities; ``inv_prefix`` (capacity, L)
    ``inv`` of each map's squared norm over layers ``0..j``; ``slot_step`` (capacity,) the step
    each map came from (its nonzero entries are that step's ``R``); ``stored`` (1,) maps held;
    ``dots`` (capacity,) this step's trajectory products; ``cur_sq`` (1,); ``min_k`` (1,); scratch
    ``prob`` (E,) this layer's probabilities, ``row_e`` (E,) and ``row_p`` (E,) a matched row."""
    capacity = int(params[0])
    k = int(params[2])
    if k == 0:
        k = top_k
    k = max(1, min(k, num_experts))
    maps = np.zeros((capacity, num_layers, num_experts), np.float64)
    inv_prefix = np.zeros((capacity, num_layers), np.float64)
    slot_step = np.zeros(capacity, np.int64)
    stored = np.zeros(1, np.int64)
    dots = np.zeros(capacity, np.float64)
    cur_sq = np.zeros(1, np.float64)
    min_k = np.full(1, k, np.int64)
    prob = np.zeros(num_experts, np.float64)
    row_e = np.zeros(num_experts, np.int64)
    row_p = np.zeros(num_experts, np.float64)
    return maps, inv_prefix, slot_step, stored, dots, cur_sq, min_k, prob, row_e, row_p


@kernel(inline="always")
def _inv_norm(sq):
    r = math.sqrt(sq)
    return 1.0 / (r if r > 1e-12 else 1e-12)


@kernel(inline="always")
def _probabilities(sched, p, has_scores, prob):
    """Write position ``p``'s probabilities into ``prob[0 : |R|]``; return ``|R|``."""
    lo = sched.r_ptr[p]
    hi = sched.r_ptr[p + 1]
    total = 0.0
    for j in range(lo, hi):
        w = sched.r_scores[j] if has_scores else np.float64(sched.r_counts[j])
        prob[j - lo] = w
        total += w
    for j in range(lo, hi):
        prob[j - lo] = prob[j - lo] / total if total > 0.0 else 0.0
    return hi - lo


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    maps, inv_prefix, slot_step, stored, dots, cur_sq, min_k, prob, row_e, row_p = state
    capacity = maps.shape[0]
    distance = np.int64(params[1])
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    has_scores = sched.r_scores.shape[0] == sched.r_experts.shape[0]
    n = stored[0]
    if l == 0:
        for c in range(n):
            dots[c] = 0.0
        cur_sq[0] = 0.0
    nr = _probabilities(sched, s * num_layers + l, has_scores, prob)
    for c in range(n):
        t = 0.0
        for i in range(nr):
            t += prob[i] * maps[c, l, experts[i]]
        dots[c] += t
    sq = 0.0
    for i in range(nr):
        sq += prob[i] * prob[i]
    cur_sq[0] += sq

    best = 0
    best_v = -1.0
    if n > 0:
        inv_cur = _inv_norm(cur_sq[0])
        for c in range(n):
            v = dots[c] * inv_cur * inv_prefix[c, l]
            if v > best_v:
                best = c
                best_v = v
    m = 0
    if n > 0 and l + 1 < num_layers:
        threshold = 1.0 - best_v
        threshold = 0.0 if threshold < 0.0 else (1.0 if threshold > 1.0 else threshold)
        last = np.int64(l) + distance
        if last > num_layers - 1:
            last = num_layers - 1
        for j in range(l + 1, last + 1):
            src = slot_step[best] * num_layers + j
            nz = 0
            for q in range(sched.r_ptr[src], sched.r_ptr[src + 1]):
                e = sched.r_experts[q]
                v = maps[best, j, e]
                if v <= 0.0:
                    continue
                # by probability descending; ids arrive ascending, so an equal one stays behind
                pos = nz
                while pos > 0 and row_p[pos - 1] < v:
                    row_p[pos] = row_p[pos - 1]
                    row_e[pos] = row_e[pos - 1]
                    pos -= 1
                row_p[pos] = v
                row_e[pos] = e
                nz += 1
            mass = 0.0
            below = 0
            for i in range(nz):
                mass += row_p[i]
                if mass < threshold:
                    below += 1
            take = below + 1
            if take < min_k[0]:
                take = min_k[0]
            if take > nz:
                take = nz
            base = j * num_experts
            for i in range(take):
                out[m] = base + row_e[i]
                m += 1

    if l == num_layers - 1 and cur_sq[0] > 0.0:
        # the step's map joins the store: a free slot, else the most similar map's
        if n < capacity:
            slot = n
            stored[0] = n + 1
        else:
            slot = best
            old = slot_step[slot] * num_layers
            for j in range(num_layers):
                for q in range(sched.r_ptr[old + j], sched.r_ptr[old + j + 1]):
                    maps[slot, j, sched.r_experts[q]] = 0.0
        acc = 0.0
        for j in range(num_layers):
            p = s * num_layers + j
            nj = _probabilities(sched, p, has_scores, prob)
            lo = sched.r_ptr[p]
            b = 0.0
            for i in range(nj):
                maps[slot, j, sched.r_experts[lo + i]] = prob[i]
                b += prob[i] * prob[i]
            acc += b
            inv_prefix[slot, j] = _inv_norm(acc)
        slot_step[slot] = s
    return m


STRATEGY = StrategyDef(
    name="fine-moe",
    init=init,
    observe=observe,
    params=(
        Param("capacity", 64, kind="int", low=1, doc="expert maps the store holds (FineMoE's demo: 1000)"),
        Param("prefetch_distance", 2, kind="int", low=1, doc="layers ahead prefetched from the matched map"),
        Param("min_experts", 0, kind="int", low=0, doc="least experts per layer (FineMoE's top_k); 0 = the trace's top-k"),
    ),
    builtin=True,
    needs_scores=True,
    description="FineMoE: per-step expert maps, trajectory matching, top-delta selection by cumulative probability",
)
