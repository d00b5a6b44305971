"""``moe-infinity``: MoE-Infinity's request-level activation matching.

MoE-Infinity (TorchMoE/MoE-Infinity, ``moe_infinity/memory/``) records, per request, an *expert
activation matrix* (EAM: tokens routed to each layer's experts, ``ExpertTracer.update_entry``);
finished requests join a library of ``capacity`` matrices (``ExpertTracer.finish_entry``: the
first empty slot, else the least matched one). At each layer the request's EAM so far is matched
against the library by the cosine similarity of each coming layer's row, averaged
(``ExpertTracer.find_most_similar``); the best match's rows from the current layer on are weighted
by layer proximity, ``1 - (j - l) / (L + 1)`` (``ExpertPredictor.predict``), and its experts
prefetched by that value, highest first (``ExpertPrefetcher.prefetch_experts``).

Here the current EAM is the summed EAM of the requests in flight (exact at batch 1): the demand
counts ``n_e`` added as each ``(step, layer)`` runs, less each finished request's matrix (the
schedule's request releases). At ``(s, l)`` library slot ``c`` scores
``sum over j = l+1 .. L-1 of D[c][j] * inv(cur_j) * inv(lib_cj)``, ``D`` the integer dot
product, ``inv(x) = 1 / sqrt(|x|^2)`` (0 for a zero row); the first best slot wins and gains one
match. It wants that slot's keys of layers ``>= l`` with a positive count, by
``count * ((-1 / (L + 1)) * (j - l) + 1)`` descending, then key, at most ``max_predictions``.
After step ``s``'s last layer, the requests that finished in it join the library as one matrix:
the first empty slot, else the least matched slot after the persistent ones.

``library`` (a ``.npy`` file of MoE-Infinity's saved matrices, ``ExpertTracer.load_trace``) fills
the first slots before the replay; those slots are persistent (never replaced), as in
``ExpertTracer.finish_entry``; with every slot persistent the library stays as loaded.
See docs/strategies/moe-infinity.md for what this keeps and leaves out.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import kernel
from . import Param, StrategyDef
from .moe_infinity_library import load_library

__all__ = ["init", "observe", "STRATEGY"]

# params: capacity, max_predictions, library (its length), then the library's (n, L, E) counts


@kernel
def init(num_layers, num_experts, top_k, params):
    """State: ``lib`` (capacity, L, E) library counts; ``lib_inv`` (capacity, L) their rows'
    inverse norms; ``access`` (capacity,) matches (MoE-Infinity's ``collection_access``);
    ``stored`` (1,); ``cur`` (L, E) the in-flight EAM, ``cur_sq`` (L,) its rows' squared norms,
    ``inv_cur`` (L,); ``dots`` (capacity, L) exact row dot products of ``cur`` and each slot;
    ``ranked`` (capacity, L, M) each slot's wanted list for a call at layer ``l`` (built when it
    joins), ``nranked`` (capacity, L); ``value`` (M,) scratch; ``fixed`` (1,) the persistent slots
    (the loaded library's)."""
    capacity = int(params[0])
    most = max(1, min(int(params[1]), num_layers * num_experts))
    lib = np.zeros((capacity, num_layers, num_experts), np.float64)
    lib_inv = np.zeros((capacity, num_layers), np.float64)
    access = np.zeros(capacity, np.int64)
    stored = np.zeros(1, np.int64)
    cur = np.zeros((num_layers, num_experts), np.float64)
    cur_sq = np.zeros(num_layers, np.float64)
    inv_cur = np.zeros(num_layers, np.float64)
    dots = np.zeros((capacity, num_layers), np.float64)
    ranked = np.zeros((capacity, num_layers, most), np.int64)
    nranked = np.zeros((capacity, num_layers), np.int64)
    value = np.zeros(most, np.float64)
    fixed = np.zeros(1, np.int64)
    state = lib, lib_inv, access, stored, cur, cur_sq, inv_cur, dots, ranked, nranked, value, fixed
    size = num_layers * num_experts
    loaded = int(params[2]) // size if size else 0
    for slot in range(loaded):
        for j in range(num_layers):
            for e in range(num_experts):
                lib[slot, j, e] = params[3 + (slot * num_layers + j) * num_experts + e]
        _store(state, slot)
    stored[0] = loaded
    fixed[0] = loaded
    return state


@kernel(inline="always")
def _inv(sq):
    return 1.0 / math.sqrt(sq) if sq > 0.0 else 0.0


@kernel
def _store(state, slot):
    """Slot ``slot`` has a new matrix: its rows' inverse norms, its dot products with the
    in-flight EAM, and its wanted list for a call at each layer."""
    lib, lib_inv, access, stored, cur, cur_sq, inv_cur, dots, ranked, nranked, value, fixed = state
    capacity, num_layers, num_experts = lib.shape
    for j in range(num_layers):
        sq = 0.0
        d = 0.0
        for e in range(num_experts):
            v = lib[slot, j, e]
            sq += v * v
            d += cur[j, e] * v
        lib_inv[slot, j] = _inv(sq)
        dots[slot, j] = d
    # the wanted list for a call at each layer l: layers >= l, by proximity-weighted count
    most = ranked.shape[2]
    decay_step = -1.0 / (num_layers + 1)
    for l in range(num_layers):
        m = 0
        for j in range(l, num_layers):
            w = decay_step * (j - l) + 1.0
            for e in range(num_experts):
                cnt = lib[slot, j, e]
                if cnt <= 0.0:
                    continue
                v = cnt * w
                if m == most and v <= value[m - 1]:
                    continue
                # keys arrive ascending, so an equal value stays behind
                pos = m if m < most else most - 1
                while pos > 0 and value[pos - 1] < v:
                    value[pos] = value[pos - 1]
                    ranked[slot, l, pos] = ranked[slot, l, pos - 1]
                    pos -= 1
                value[pos] = v
                ranked[slot, l, pos] = j * num_experts + e
                if m < most:
                    m += 1
        nranked[slot, l] = m


@kernel(inline="always")
def _add(state, j, e, c):
    """``cur[j, e] += c``, keeping the squared norms and every slot's dot product exact."""
    lib, lib_inv, access, stored, cur, cur_sq, inv_cur, dots, ranked, nranked, value, fixed = state
    old = cur[j, e]
    cur[j, e] = old + c
    cur_sq[j] += (2.0 * old + c) * c
    for slot in range(stored[0]):
        dots[slot, j] += c * lib[slot, j, e]


@kernel(inline="always")
def _join(state, sched, s):
    """The requests that finished at step ``s`` leave the in-flight EAM and join the library."""
    lib, lib_inv, access, stored, cur, cur_sq, inv_cur, dots, ranked, nranked, value, fixed = state
    capacity, num_layers, num_experts = lib.shape
    lo = sched.rel_ptr[s]
    hi = sched.rel_ptr[s + 1]
    if hi == lo:
        return
    for q in range(lo, hi):
        key = sched.rel_keys[q]
        _add(state, key // num_experts, key % num_experts, -np.float64(sched.rel_counts[q]))
    for j in range(num_layers):
        inv_cur[j] = _inv(cur_sq[j])
    n = stored[0]
    if n < capacity:
        slot = n
        stored[0] = n + 1
    elif fixed[0] < capacity:
        slot = fixed[0]
        for c in range(fixed[0] + 1, capacity):
            if access[c] < access[slot]:
                slot = c
    else:
        return  # every slot holds a persistent matrix
    for j in range(num_layers):
        for e in range(num_experts):
            lib[slot, j, e] = 0.0
    for q in range(lo, hi):
        key = sched.rel_keys[q]
        lib[slot, key // num_experts, key % num_experts] += np.float64(sched.rel_counts[q])
    access[slot] = 1
    _store(state, slot)


@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    lib, lib_inv, access, stored, cur, cur_sq, inv_cur, dots, ranked, nranked, value, fixed = state
    num_layers = sched.num_layers
    if sched.rel_ptr.shape[0] != sched.active.shape[0] + 1:
        raise ValueError("moe-infinity reads the schedule's request releases: build it with with_requests")
    for i in range(experts.shape[0]):
        _add(state, l, experts[i], np.float64(counts[i]))
    inv_cur[l] = _inv(cur_sq[l])
    m = 0
    n = stored[0]
    if n > 0:
        best = 0
        best_v = -1.0
        for c in range(n):
            v = 0.0
            for j in range(l + 1, num_layers):
                v += dots[c, j] * inv_cur[j] * lib_inv[c, j]
            if v > best_v:
                best = c
                best_v = v
        access[best] += 1
        m = nranked[best, l]
        for i in range(m):
            out[i] = ranked[best, l, i]
    if l == num_layers - 1:
        _join(state, sched, s)
    return m


STRATEGY = StrategyDef(
    name="moe-infinity",
    init=init,
    observe=observe,
    params=(
        Param("capacity", 64, kind="int", low=1, doc="request matrices the library holds"),
        Param("max_predictions", 32, kind="int", low=1, doc="keys wanted per call, most valued first"),
        Param("library", None, kind="file", load=load_library, hashed_at_default=False,
              doc="a .npy of MoE-Infinity's saved activation matrices (requests x layers x experts): the "
                  "persistent first slots of the library"),
    ),
    builtin=True,
    needs_requests=True,
    description="MoE-Infinity: request-level activation matrices matched on the coming layers, proximity-weighted",
)
