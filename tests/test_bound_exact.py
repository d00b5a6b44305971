"""The exact optimum of tiny traces (an integer program, SciPy's HiGHS): bound <= exact optimum
<= the best built-in strategy x eviction, and the fewest-loads rule the bound rests on (Belady on
whole demand sets, from the best starting cache) against an exhaustive search."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.bound import bound, exact_optimum
from fastsim.reference.bound import fewest_loads

from hypothesis_budget import examples
from timeline_helpers import hardware, model_for

pytest.importorskip("scipy")

STRATEGIES = {"on-demand": {}, "oracle": {"lookahead": 2}, "multi-look": {}, "top-k": {}, "intelligent": {}}
POLICIES = ["lru", "belady", "fifo", "lfu"]


@st.composite
def tiny(draw):
    L = draw(st.integers(1, 2))
    E = draw(st.integers(2, 4))
    K = draw(st.integers(1, min(2, E)))
    T = draw(st.integers(1, 6 // L + 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    experts = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)]) for _ in range(T)])
    trace = fastsim.Trace.from_arrays(experts, E, None)
    slots = draw(st.integers(K, K + 2))
    batch = draw(st.integers(1, 2))
    h2d = draw(st.sampled_from([3e9, 1e10, 3e10]))
    return trace, model_for(L, E, K), hardware(h2d), slots, batch


@examples(0.1)
@given(tiny())
def test_bound_exact_best(case):
    trace, model, hw, slots, batch = case
    try:
        b = bound(trace, model, hw, slots, batch, exact=True)
    except fastsim.ConfigError as exc:
        assert "working set" in str(exc)
        return
    best = min(
        fastsim.replay(trace, s, model, hw, cache_slots=slots, eviction=e, batch_size=batch, **p).metrics["total_time_s"]
        for s, p in STRATEGIES.items() for e in POLICIES
    )
    assert b.total_time_s <= b.exact_s + 1e-15 <= best + 2e-15


def test_exact_worked_examples():
    """docs/bounds.md: keys 0, 1, 1, 2 with loads of 100 ns and 15 ns of compute a position."""
    trace = fastsim.Trace.from_arrays(np.array([0, 1, 1, 2]).reshape(-1, 1, 1), 3, None)
    model, hw = model_for(1, 3, 1), hardware()
    assert round(exact_optimum(trace, model, hw, 1, 1) * 1e9) == 360
    assert round(exact_optimum(trace, model, hw, 2, 1) * 1e9) == 315


def test_exact_is_below_a_suboptimal_builtin():
    """A case where every built-in pair is slower than the optimum (the optimum prefetches two
    steps ahead while keeping the key it needs again)."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        experts = rng.integers(0, 3, size=(6, 2, 1))
        trace = fastsim.Trace.from_arrays(experts, 3, None)
        model, hw = model_for(2, 3, 1), hardware(3e10)
        x = exact_optimum(trace, model, hw, 3, 1)
        best = min(fastsim.replay(trace, s, model, hw, cache_slots=3, eviction=e, **p).metrics["total_time_s"]
                   for s, p in STRATEGIES.items() for e in POLICIES)
        if x < best - 1e-12:
            assert bound(trace, model, hw, 3, 1).total_time_s <= x
            return
    pytest.fail("no drawn trace where the optimum beats every built-in pair")


# ---- the fewest loads of a window, against every feasible sequence of cache contents


def exhaustive_fewest(sets, a, end, part_of, cap):
    """Least ``sum |T_q - T_(q-1)|`` over every ``T_q`` (``R_q`` within it, at most ``cap`` keys a
    partition), for each ``r`` in ``a + 1 .. end``; ``T_a`` empty for ``a = -1``, else any
    set holding ``R_a``."""
    universe = sorted({k for s in sets for k in s})

    def feasible(T, R):
        return set(R) <= T and all(sum(1 for k in T if part_of(k) == q) <= c for q, c in enumerate(cap))

    states = [frozenset(c) for n in range(len(universe) + 1) for c in itertools.combinations(universe, n)]
    if a < 0:
        cost = {frozenset(): 0}
    else:
        cost = {T: 0 for T in states if feasible(T, sets[a])}
    out = []
    for r in range(a + 1, end + 1):
        nxt = {}
        for T in states:
            if not feasible(T, sets[r]):
                continue
            nxt[T] = min(c + len(T - S) for S, c in cost.items())
        cost = nxt
        out.append(min(cost.values()))
    return out


@examples(0.5)
@given(st.data())
def test_belady_on_demand_sets_is_the_fewest(data):
    keys = data.draw(st.integers(2, 5))
    parts = data.draw(st.sampled_from([1, 2]))
    part_of = (lambda k: 0) if parts == 1 else (lambda k: k % 2)
    P = data.draw(st.integers(1, 7))
    sets = [sorted(set(data.draw(st.lists(st.integers(0, keys - 1), max_size=3)))) for _ in range(P)]
    need = [max([sum(1 for k in s if part_of(k) == q) for s in sets] + [0]) for q in range(parts)]
    cap = [n + data.draw(st.integers(0, 2)) for n in need]
    a = data.draw(st.integers(-1, P - 1))
    if a == P - 1:
        return
    want = exhaustive_fewest(sets, a, P - 1, part_of, cap)
    got = fewest_loads(sets, a, P - 1, part_of, cap, [1] * parts)
    assert got == want
