"""Strategy E, intelligent adaptive: transition, frequency, recency and pattern components fused
with online-learned weights (the seed's ``IntelligentStrategy``, one instance per layer).

Each call at step ``s`` for layer ``l`` does what the seed's ``predict_experts`` does with that
layer's sets of steps ``0..s`` as its history:

1. re-adds ``adaptation_rate`` to the transition matrix for every consecutive pair of sets in the
   last ``history_window`` sets, adds 1 to the frequency of every expert in each of them, decays
   recency and stamps the current set with the call count, then decays matrix and frequency;
2. predicts: transitions (experts whose probability from any current expert exceeds
   ``transition_threshold``; from the second call), frequency (the ``frequency_limit`` largest
   counts), recency (the ``recency_limit`` most recent) and patterns (probability above
   ``pattern_threshold``; from the third call), each truncated to its limit;
3. fuses them: every predicted expert scores the weights of the components naming it; the
   ``max_predictions`` best are wanted, zero-score experts filling up (``zero_score_fill``);
4. adapts each component's weight by ``weight_learning_rate * (f1 - 0.5)``, ``f1`` of its
   prediction against the current set, then normalises the weights to sum 1; with
   ``weight_update = 1``, the seed's ``adaptive_weight_update`` instead: each weight moves by the
   rate ``weight_learning_rate`` towards its component's share of ``1 / (1 - f1 + 0.1)``.

With ``max_transitions = N > 0`` the matrix is the seed's ``SparseTransitionMatrix``: a row keeps
at most ``N`` entries, and an addition that makes it ``N + 1`` drops its smallest (ties: the
highest id), whose weight leaves the row sum.

Order (the seed relies on set order and ascending argsorts): the fused score descending, then the
id ascending; inside each truncated component its own score (the count, the recency value, or the
largest transition probability over the current experts), then the id.

Speed: the seed decays the whole ``E x E`` matrix every call. Here each layer stores
``M' = M / scale`` and only ``scale`` decays; an addition of ``x`` becomes ``M' += x / scale``
and a per-row sum kept in the same units gives the probabilities ``M'[i, j] / rowsum'[i]``. When
``scale`` falls below :data:`RENORMALISE_BELOW` the layer's matrix is multiplied out (a rare
``O(E^2)`` step). A call costs ``O(K^2 * window + K * E)``.
"""
import numpy as np

from .._jit import kernel
from ..lazy_decay import SCALE_FLOOR
from . import Param, StrategyDef


__all__ = ["STRATEGY", "init", "observe", "RENORMALISE_BELOW", "INITIAL_WEIGHTS", "COMPONENTS"]

#: The lazy scale is multiplied into the matrix when it falls below this (far above underflow,
#: while ``x / scale`` stays far below overflow).
RENORMALISE_BELOW = SCALE_FLOOR

#: The seed's fusion components, in its dictionary order, and their starting weights.
COMPONENTS = ("transition", "frequency", "recency", "pattern")
INITIAL_WEIGHTS = (0.4, 0.3, 0.2, 0.1)

PARAMS = (
    Param("adaptation_rate", 0.1, "float", low=0.0, low_open=True,
          doc="added to the transition matrix for every consecutive pair in the window"),
    Param("decay_rate", 0.99, "float", low=0.0, high=1.0, low_open=True,
          doc="per-call decay of transitions, frequencies and recencies"),
    Param("weight_learning_rate", 0.01, "float", low=0.0,
          doc="step of the fusion-weight adaptation"),
    Param("max_predictions", 32, "int", low=1, doc="experts wanted per call (at most E)"),
    Param("transition_limit", 12, "int", low=0, doc="length of the transition component's list"),
    Param("frequency_limit", 8, "int", low=0, doc="length of the frequency component's list"),
    Param("recency_limit", 6, "int", low=0, doc="length of the recency component's list"),
    Param("pattern_limit", 8, "int", low=0, doc="length of the pattern component's list"),
    Param("transition_threshold", 0.05, "float", low=0.0, high=1.0, high_open=True,
          doc="transition probability an expert must exceed to be predicted"),
    Param("pattern_threshold", 0.1, "float", low=0.0, high=1.0, high_open=True,
          doc="transition probability an expert must exceed to be a pattern prediction"),
    Param("history_window", 10, "int", low=1, doc="sets the learning update re-reads each call"),
    Param("zero_score_fill", True, "bool",
          doc="fill up to max_predictions with zero-score experts, as the seed's argsort does"),
    Param("weight_update", 0, "int", low=0, high=1, hashed_at_default=False,
          doc="0: the class's _adapt_fusion_weights; 1: the seed's adaptive_weight_update (EMA to inverse-error targets)"),
    Param("max_transitions", 0, "int", low=0, hashed_at_default=False,
          doc="0: the dense matrix; N: the seed's SparseTransitionMatrix, at most N entries per expert (its 32)"),
)

# Indices into ``params``.
(_RATE, _DECAY, _LR, _MAXPRED, _LIM_T, _LIM_F, _LIM_R, _LIM_P, _THR_T, _THR_P, _WINDOW, _FILL,
 _WUPD, _MAXT) = range(14)


@kernel
def init(num_layers, num_experts, top_k, params):
    """Per-layer learning state plus scratch arrays.

    Returns
    -------
    tuple of ndarray
        ``trans`` (L, E, E) float64, the scaled transition matrices ``M'``; ``row_sum`` (L, E)
        float64, their row sums in the same units; ``scale`` (L,) float64; ``freq`` and
        ``recency`` (L, E) float64; ``weights`` (L, 4) float64; ``clock`` (L,) int64, calls so far
        (the seed's ``time_step``); then scratch: ``best`` (E,) float64 (largest transition
        probability this call), ``cand`` (E,) int64, ``fused`` (E,) float64, ``in_r`` and
        ``touched`` (E,) int64 stamps, ``lists`` (4, E) int64 and ``lens`` (4,) int64 (the
        components' truncated lists), ``order`` (E,) int64, ``vals`` (E,) float64, ``stamp`` (1,) int64;
        then ``top_f``, ``top_r``, ``n_top``, ``cstamp`` (see :func:`_top_tracked`); with
        ``max_transitions``, ``live`` (L, E, E) uint8 (the entries a row keeps) and ``n_live``
        (L, E) int64, else 1-element stand-ins; ``errs`` (4,) float64, the components' errors.
    """
    L = num_layers
    E = num_experts
    trans = np.zeros((L, E, E), np.float64)
    row_sum = np.zeros((L, E), np.float64)
    scale = np.ones(L, np.float64)
    freq = np.zeros((L, E), np.float64)
    recency = np.zeros((L, E), np.float64)
    weights = np.empty((L, 4), np.float64)
    for l in range(L):
        weights[l, 0] = 0.4
        weights[l, 1] = 0.3
        weights[l, 2] = 0.2
        weights[l, 3] = 0.1
    clock = np.zeros(L, np.int64)
    best = np.zeros(E, np.float64)
    cand = np.empty(E, np.int64)
    fused = np.zeros(E, np.float64)
    in_r = np.zeros(E, np.int64)
    touched = np.zeros(E, np.int64)
    lists = np.empty((4, E), np.int64)
    lens = np.zeros(4, np.int64)
    order = np.empty(E, np.int64)
    vals = np.empty(E, np.float64)
    stamp = np.zeros(1, np.int64)
    # the frequency and recency components' last lists, per layer (see _top_tracked)
    top_f = np.empty((L, max(1, min(E, int(params[_LIM_F])))), np.int64)
    top_r = np.empty((L, max(1, min(E, int(params[_LIM_R])))), np.int64)
    n_top = np.zeros((2, L), np.int64)
    cstamp = np.zeros(E, np.int64)
    sparse = params[_MAXT] > 0
    live = np.zeros((L, E, E) if sparse else (1, 1, 1), np.uint8)
    n_live = np.zeros((L, E) if sparse else (1, 1), np.int64)
    errs = np.zeros(4, np.float64)
    return (trans, row_sum, scale, freq, recency, weights, clock,
            best, cand, fused, in_r, touched, lists, lens, order, vals, stamp,
            top_f, top_r, n_top, cstamp, live, n_live, errs)


@kernel
def _insert_ranked(dst, n, limit, e, score):
    """Insert expert ``e`` into ``dst[:n]``, kept ordered by (score desc, id asc) and at most
    ``limit`` long; returns the new length."""
    v = score[e]
    if n == limit:
        last = dst[n - 1]
        w = score[last]
        if not (v > w or (v == w and e < last)):
            return n
        n -= 1
    i = n
    while i > 0:
        f = dst[i - 1]
        w = score[f]
        if v > w or (v == w and e < f):
            dst[i] = f
            i -= 1
        else:
            break
    dst[i] = e
    return n + 1


@kernel
def _top_of_all(dst, vals, limit, score, num_experts):
    """The ``limit`` best experts of ``0..E-1`` by (score desc, id asc) into ``dst`` (their scores
    into ``vals``); returns how many (``min(limit, E)``)."""
    if limit <= 0:
        return 0
    n = 0
    cut = 0.0
    for e in range(num_experts):
        v = score[e]
        # ids ascend, so an equal score never displaces an earlier id
        if n == limit:
            if v <= cut:
                continue
            n -= 1
        i = n
        while i > 0 and vals[i - 1] < v:
            vals[i] = vals[i - 1]
            dst[i] = dst[i - 1]
            i -= 1
        vals[i] = v
        dst[i] = e
        n += 1
        cut = vals[n - 1]
    return n


@kernel(inline="always")
def _top_tracked(top, n_top, l, limit, score, num_experts, r_ptr, r_experts, num_layers, first, last, cstamp, stamp, dst, vals):
    """:func:`_top_of_all` for a component whose scores, since its last list ``top[l]``, were all
    scaled by one factor except the experts of layer ``l``'s sets at steps ``first..last``, which
    rose.

    Uniform scaling keeps the order of the unchanged experts, so the new list is drawn from the
    old list and the changed experts; a vectorisable count then checks that no other expert
    reaches its last score (rounding under scaling can create ties), falling back to the full
    scan when one does. Exact either way; O(limit + changed + E) with the E part branch-free.
    """
    if limit <= 0:
        return 0
    stamp[0] += 1
    mark = stamp[0]
    n = 0
    for i in range(n_top[l]):
        e = top[l, i]
        cstamp[e] = mark
        n = _insert_ranked(dst, n, limit, e, score)
    for u in range(first, last + 1):
        p = u * num_layers + l
        for j in range(r_ptr[p], r_ptr[p + 1]):
            e = r_experts[j]
            if cstamp[e] != mark:
                cstamp[e] = mark
                n = _insert_ranked(dst, n, limit, e, score)
    exact = n == limit
    if exact:
        cut = score[dst[n - 1]]
        outside = 0
        for e in range(num_experts):
            outside += (score[e] >= cut) & (cstamp[e] != mark)
        exact = outside == 0
    if not exact:
        n = _top_of_all(dst, vals, limit, score, num_experts)
    for i in range(n):
        top[l, i] = dst[i]
    n_top[l] = n
    return n


@kernel(inline="always")
def _sparse_update(T, rs, live, n_live, cap, x, r_ptr, r_experts, L, l, first, s):
    """The learning update's transition additions into a matrix that keeps at most ``cap``
    entries per row (the seed's ``SparseTransitionMatrix.update_transition``): a new entry that
    makes a row ``cap + 1`` long drops the row's smallest entry (ties: the highest id), whose
    weight leaves the row sum."""
    E = T.shape[0]
    for u in range(first, s):
        p = u * L + l
        q = p + L
        for i in range(r_ptr[p], r_ptr[p + 1]):
            c = r_experts[i]
            for j in range(r_ptr[q], r_ptr[q + 1]):
                n = r_experts[j]
                T[c, n] += x
                rs[c] += x
                if live[c, n] == 0:
                    live[c, n] = 1
                    n_live[c] += 1
                    if n_live[c] > cap:
                        victim = -1
                        low = 0.0
                        for e in range(E):
                            if live[c, e] != 0 and (victim < 0 or T[c, e] <= low):
                                victim = e
                                low = T[c, e]
                        rs[c] -= T[c, victim]
                        T[c, victim] = 0.0
                        live[c, victim] = 0
                        n_live[c] -= 1


@kernel(inline="always")
def _inverse_error_update(w_l, lists, lens, in_r, mark, n_cur, lr, errs):
    """The seed's ``adaptive_weight_update`` against the current set: a component's error is
    ``1 - f1`` (1 for an empty list); each weight moves by ``lr`` towards its component's share of
    the inverse errors ``1 / (error + 0.1)``."""
    total = 0.0
    for comp in range(4):
        m = lens[comp]
        if m > 0:
            lst = lists[comp]
            inter = 0
            for k in range(m):
                if in_r[lst[k]] == mark:
                    inter += 1
            precision = inter / m
            recall = inter / n_cur if n_cur > 0 else 0.0
            f1 = 2 * precision * recall / (precision + recall + 1e-10)
            errs[comp] = 1 - f1
        else:
            errs[comp] = 1.0
        total += 1 / (errs[comp] + 0.1)
    for comp in range(4):
        target = (1 / (errs[comp] + 0.1)) / total
        w_l[comp] = (1 - lr) * w_l[comp] + lr * target


@kernel
def _int_param(value, cap):
    """An integer parameter clamped to ``cap`` (parameters travel as float64)."""
    if value > cap:
        return cap
    return int(value)


# inlined into each entry point, which lets numba drop per-call reference counting
@kernel(inline="always")
def observe(state, params, sched, s, l, experts, counts, out):
    (trans, row_sum, scale, freq, recency, weights, clock,
     best, cand, fused, in_r, touched, lists, lens, order, vals, stamp,
     top_f, top_r, n_top, cstamp, live, n_live, errs) = state
    E = sched.num_experts
    L = sched.num_layers
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    decay = params[_DECAY]
    T = trans[l]
    rs = row_sum[l]
    fr = freq[l]
    rc = recency[l]

    clock[l] += 1
    t = clock[l]
    stamp[0] += 1
    mark = stamp[0]
    n_cur = experts.shape[0]
    for i in range(n_cur):
        in_r[experts[i]] = mark

    # 1. learning update over the window of this layer's last sets (steps first..s)
    window = _int_param(params[_WINDOW], s + 1)
    first = s + 1 - window
    x = params[_RATE] / scale[l]
    cap = np.int64(params[_MAXT])
    if cap > 0:
        _sparse_update(T, rs, live[l], n_live[l], cap, x, r_ptr, r_experts, L, l, first, s)
    else:
        for u in range(first, s):
            p = u * L + l
            q = p + L
            for i in range(r_ptr[p], r_ptr[p + 1]):
                c = r_experts[i]
                acc = rs[c]
                for j in range(r_ptr[q], r_ptr[q + 1]):
                    T[c, r_experts[j]] += x
                    acc += x
                rs[c] = acc
    for u in range(first, s + 1):
        p = u * L + l
        for i in range(r_ptr[p], r_ptr[p + 1]):
            fr[r_experts[i]] += 1.0
    # the seed decays recency before stamping and frequency after counting: both counted above
    for e in range(E):
        rc[e] *= decay
        fr[e] *= decay
    for i in range(n_cur):
        rc[experts[i]] = float(t)
    scale[l] *= decay
    if scale[l] < RENORMALISE_BELOW:
        g = scale[l]
        for c in range(E):
            # a sparse row's sum, kept by additions and removals, may round to zero with entries left
            if rs[c] != 0.0 or (cap > 0 and n_live[l, c] > 0):
                for e in range(E):
                    T[c, e] *= g
            rs[c] *= g
        scale[l] = 1.0

    # 2. component predictions
    thr_t = params[_THR_T]
    thr_p = params[_THR_P]
    use_t = s >= 1
    use_p = s >= 2
    n_cand = 0
    if use_t:
        thr = thr_t
        if use_p and thr_p < thr:
            thr = thr_p
        for i in range(n_cur):
            c = experts[i]
            total = rs[c]
            if total > 0:
                # a rounded quotient above thr needs T[c, e] > thr * total exactly; the cut lies
                # below that (the 1e-12 margin covers its own rounding), so the division is
                # skipped only where it could not pass
                cut = thr * total * (1.0 - 1e-12)
                if cut < 1e-290:
                    cut = 0.0
                for e in range(E):
                    a = T[c, e]
                    if a <= cut:
                        continue
                    prob = a / total
                    if prob > thr:
                        if best[e] == 0.0:
                            cand[n_cand] = e
                            n_cand += 1
                        if prob > best[e]:
                            best[e] = prob
    lim_t = _int_param(params[_LIM_T], E)
    lim_p = _int_param(params[_LIM_P], E)
    n_t = 0
    n_p = 0
    dst_t = lists[0]
    dst_p = lists[3]
    for k in range(n_cand):
        e = cand[k]
        v = best[e]
        if v > thr_t and lim_t > 0:
            n_t = _insert_ranked(dst_t, n_t, lim_t, e, best)
        if use_p and v > thr_p and lim_p > 0:
            n_p = _insert_ranked(dst_p, n_p, lim_p, e, best)
    for k in range(n_cand):
        best[cand[k]] = 0.0
    lens[0] = n_t
    # frequency rose for the window's experts, recency for the current set's; the rest decayed
    lens[1] = _top_tracked(
        top_f, n_top[0], l, _int_param(params[_LIM_F], E), fr, E, r_ptr, r_experts, L, first, s, cstamp, stamp,
        lists[1], vals,
    )
    lens[2] = _top_tracked(
        top_r, n_top[1], l, _int_param(params[_LIM_R], E), rc, E, r_ptr, r_experts, L, s, s, cstamp, stamp,
        lists[2], vals,
    )
    lens[3] = n_p

    # 3. fusion: each component adds its weight to its experts, in the seed's component order
    n_touch = 0
    w_l = weights[l]
    for comp in range(4):
        w = w_l[comp]
        lst = lists[comp]
        for k in range(lens[comp]):
            e = lst[k]
            if touched[e] != mark:
                touched[e] = mark
                order[n_touch] = e
                n_touch += 1
            fused[e] += w
    # rank the touched experts by (fused desc, id asc)
    for a in range(1, n_touch):
        e = order[a]
        v = fused[e]
        b = a
        while b > 0:
            f = order[b - 1]
            w = fused[f]
            if v > w or (v == w and e < f):
                order[b] = f
                b -= 1
            else:
                break
        order[b] = e
    limit = _int_param(params[_MAXPRED], E)
    base = l * E
    n_out = 0
    k = 0
    while k < n_touch and n_out < limit and fused[order[k]] > 0.0:
        out[n_out] = base + order[k]
        n_out += 1
        k += 1
    if params[_FILL] != 0.0:
        e = 0
        while e < E and n_out < limit:
            if fused[e] == 0.0:
                out[n_out] = base + e
                n_out += 1
            e += 1
        while k < n_touch and n_out < limit:
            e = order[k]
            if fused[e] < 0.0:
                out[n_out] = base + e
                n_out += 1
            k += 1
    for a in range(n_touch):
        fused[order[a]] = 0.0

    # 4. weight adaptation against the set just seen
    if params[_WUPD] != 0.0:
        _inverse_error_update(w_l, lists, lens, in_r, mark, n_cur, params[_LR], errs)
    elif s >= 1:
        lr = params[_LR]
        for comp in range(4):
            m = lens[comp]
            if m > 0 and n_cur > 0:
                lst = lists[comp]
                inter = 0
                for k in range(m):
                    if in_r[lst[k]] == mark:
                        inter += 1
                precision = inter / m
                recall = inter / n_cur
                f1 = 2 * precision * recall / (precision + recall + 1e-10)
                w_l[comp] += lr * (f1 - 0.5)
        total = w_l[0] + w_l[1] + w_l[2] + w_l[3]
        if total > 0:
            for comp in range(4):
                w_l[comp] /= total
    return n_out



STRATEGY = StrategyDef(
    name="intelligent",
    init=init,
    observe=observe,
    params=PARAMS,
    builtin=True,
    description="transition, frequency, recency and pattern components fused with learned weights (strategy E)",
)
