"""The exact optimum of a tiny replay: the least ``total_time_s`` over every way of issuing loads
and choosing victims, as a mixed-integer program solved by HiGHS (``scipy.optimize.milp``).

The program (``docs/bounds.md``, "The exact optimum") has, per demanded key ``k`` and position
``q`` up to ``k``'s last demand, a binary ``x[k, q]`` (a load of ``k`` issued at ``q``) and a
binary ``z[k, q]`` (``k`` resident after ``q``'s loads), and per position the clock ``g`` (the
position's start), the compute start ``st`` and the link's busy interval ``[b, e]`` for the loads
issued there. The loads of one position run back to back in the order of their first demands,
which is the best order (``docs/bounds.md`` shows why), so each load's readiness is a sum of load
times and one big-M constraint per load suffices.

Solver tolerances aside, the answer is then recomputed exactly in integer nanoseconds from the
chosen loads (:func:`replay_plan`), so it is the true cost of a plan the timeline can run.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["exact_optimum_ns", "MAX_BINARIES", "replay_plan"]

#: Binary variables the exact program may have: it is for tiny traces (a few positions and keys).
MAX_BINARIES = 4000


def _demands(inputs):
    """``{key: [positions demanding it]}`` (pinned keys are already out)."""
    uses: dict[int, list[int]] = {}
    ptr, keys = inputs.ptr, inputs.keys
    for p in range(ptr.shape[0] - 1):
        for j in range(ptr[p], ptr[p + 1]):
            uses.setdefault(int(keys[j]), []).append(p)
    return uses


def _first_use_at_or_after(uses: list[int], q: int) -> int:
    return next(p for p in uses if p >= q)


def replay_plan(loads: dict[int, list[int]], uses: dict[int, list[int]], compute, load_of) -> int:
    """The exact total time of a plan: ``loads[q]`` are the keys issued at position ``q``.

    Each position's loads run after the previous position's, from ``max(g, link_free)``, in the
    order of their first demand at or after ``q`` (ties by key); a position computes once every
    key it demands is ready.
    """
    positions = len(compute)
    ready: dict[int, int] = {}
    need: dict[int, int] = {}  # position -> latest readiness of a load it waits for
    g = 0
    link_free = 0
    for q in range(positions):
        batch = sorted(loads.get(q, []), key=lambda k: (_first_use_at_or_after(uses[k], q), k))
        t = max(g, link_free)
        for k in batch:
            t += load_of(k)
            ready[k] = t
            d = _first_use_at_or_after(uses[k], q)
            need[d] = max(need.get(d, 0), t)
        link_free = t
        st = max(g, need.get(q, 0))
        g = st + int(compute[q])
    return g


def exact_optimum_ns(inputs, time_limit_s: float = 60.0) -> int:
    """The least total time in nanoseconds of the configuration ``inputs`` (a
    :class:`~fastsim.bound.api.BoundInputs`) over every plan of loads and victims."""
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import coo_array
    except ImportError:
        raise ConfigError("the exact optimum needs SciPy: pip install 'fastsim[bound]'") from None
    if not (isinstance(time_limit_s, (int, float)) and not isinstance(time_limit_s, bool) and time_limit_s > 0):
        raise ConfigError(f"time_limit_s must be a positive number of seconds, got {time_limit_s!r}")
    compute = inputs.compute_ns
    P = int(compute.shape[0])
    if P == 0:
        return 0
    uses = _demands(inputs)
    E = inputs.part_of_key.shape[0] // inputs.load_ns.shape[0]

    def load_of(k):
        return int(inputs.load_ns[k // E])

    keys = sorted(uses)
    last = {k: uses[k][-1] for k in keys}
    n_bin = 2 * sum(last[k] + 1 for k in keys)
    if n_bin > MAX_BINARIES:
        raise ConfigError(
            f"the exact optimum is for tiny traces: {P} positions and {len(keys)} demanded keys need {n_bin} "
            f"binary variables (at most {MAX_BINARIES}); shorten the trace"
        )
    # variable layout: x[k, q], z[k, q] for q <= last[k], then g[0..P], st, b, e
    xi: dict[tuple[int, int], int] = {}
    n = 0
    for k in keys:
        for q in range(last[k] + 1):
            xi[k, q] = n
            n += 1
    zi = {kq: n + i for i, kq in enumerate(xi)}
    n += len(xi)
    g0 = n
    st0 = g0 + P + 1
    b0 = st0 + P
    e0 = b0 + P
    nvar = e0 + P
    accesses = sum(len(v) for v in uses.values())
    max_load = max((load_of(k) for k in keys), default=0)
    upper = int(compute.sum()) + accesses * max_load  # on demand never takes longer
    big = upper + accesses * max_load + 1

    rows, cols, vals, lo, hi = [], [], [], [], []

    def add(terms, lower, upper_):
        r = len(lo)
        for c, v in terms:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        lo.append(lower)
        hi.append(upper_)

    inf = np.inf
    for (k, q), i in xi.items():
        # resident after q only if resident after q - 1 or loaded at q
        terms = [(zi[k, q], 1.0), (i, -1.0)]
        if q > 0:
            terms.append((zi[k, q - 1], -1.0))
        add(terms, -inf, 0.0)
    for q in range(P):
        by_part: dict[int, list[int]] = {}
        for k in keys:
            if q <= last[k]:
                by_part.setdefault(int(inputs.part_of_key[k]), []).append(zi[k, q])
        for part, zs in by_part.items():
            if len(zs) > inputs.cap[part]:
                add([(z, 1.0) for z in zs], -inf, float(inputs.cap[part]))
        add([(st0 + q, 1.0), (g0 + q, -1.0)], 0.0, inf)
        add([(g0 + q + 1, 1.0), (st0 + q, -1.0)], float(compute[q]), inf)
        add([(b0 + q, 1.0), (g0 + q, -1.0)], 0.0, inf)
        if q > 0:
            add([(b0 + q, 1.0), (e0 + q - 1, -1.0)], 0.0, inf)
        batch = [k for k in keys if q <= last[k]]
        add([(e0 + q, 1.0), (b0 + q, -1.0)] + [(xi[k, q], -float(load_of(k))) for k in batch], 0.0, inf)
        first = {k: _first_use_at_or_after(uses[k], q) for k in batch}
        for k in batch:
            d = first[k]
            # st[d] >= b[q] + (loads at q demanded no later than d) when k is loaded at q
            terms = [(st0 + d, 1.0), (b0 + q, -1.0)]
            terms += [(xi[j, q], -float(load_of(j))) for j in batch if first[j] <= d and j != k]
            terms.append((xi[k, q], -float(load_of(k)) - big))
            add(terms, -float(big), inf)

    lower = np.zeros(nvar)
    upper_b = np.full(nvar, inf)
    integrality = np.zeros(nvar)
    for (k, q), i in xi.items():
        upper_b[i] = 1.0
        upper_b[zi[k, q]] = 1.0
        integrality[i] = 1
        integrality[zi[k, q]] = 1
    for k in keys:
        for p in uses[k]:
            lower[zi[k, p]] = 1.0  # demanded keys are resident at their position
    upper_b[g0] = 0.0
    objective = np.zeros(nvar)
    objective[g0 + P] = 1.0
    matrix = coo_array((vals, (rows, cols)), shape=(len(lo), nvar)).tocsr()
    res = milp(
        objective, constraints=LinearConstraint(matrix, lo, hi), integrality=integrality,
        bounds=Bounds(lower, upper_b), options={"time_limit": float(time_limit_s), "mip_rel_gap": 0.0, "disp": False},
    )
    if res.status != 0 or res.x is None:
        raise ConfigError(
            f"the exact optimum was not proven within {time_limit_s:g} s ({res.message.strip()}); "
            "shorten the trace or raise the time limit"
        )
    loads: dict[int, list[int]] = {}
    for (k, q), i in xi.items():
        if res.x[i] > 0.5:
            loads.setdefault(q, []).append(k)
    return replay_plan(loads, uses, compute, load_of)
