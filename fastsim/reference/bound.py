"""Reference lower bound (SPEC section 8) in plain Python, written from ``docs/bounds.md``.

Slow on purpose: its own schedule, layout and durations (the reference's), the fewest loads of a
window found by Belady's rule with linear scans, and the chain of inequalities written as it
reads in the proof. The kernel (``fastsim.bound``) must give the same number on every input.
"""
from __future__ import annotations

from ..profiles import hardware_profile, model_profile
from .durations import dense_ns
from .layout import LayerDurations, resolve_layout
from .timeline import ReferenceSchedule

__all__ = ["bound_reference", "fewest_loads", "position_keys"]


def position_keys(schedule, pinned) -> list[list[int]]:
    """Each position's demanded keys (``layer * E + expert``), pinned keys dropped."""
    out = []
    for s in range(schedule.num_steps):
        for l in range(schedule.num_layers):
            out.append([k for k in schedule.keys(s, l) if k not in pinned])
    return out


def _next_use(sets, key, after: int) -> float:
    for p in range(after + 1, len(sets)):
        if key in sets[p]:
            return p
    return float("inf")


def fewest_loads(sets, a: int, end: int, part_of, cap, part_load) -> list[int]:
    """``[W(a, r) for r in a + 1 .. end]``: the least link time of the loads any policy issues
    after position ``a`` to serve the demands of ``a + 1 .. r`` (``docs/bounds.md``, "Fewest
    loads"), in nanoseconds.

    ``a = -1`` starts from an empty cache; otherwise from the best cache after ``a``: ``R_a``
    and, per partition, the keys first demanded soonest in ``a + 1 .. end`` (ties to the lower
    key) while slots remain. A miss with a full partition evicts the cached key of that
    partition outside the current ``R`` whose next demand is farthest.
    """
    cache: set[int] = set()
    if a >= 0:
        cache = set(sets[a])
        first: dict[int, int] = {}
        for r in range(a + 1, end + 1):
            for k in sets[r]:
                first.setdefault(k, r)
        for k in sorted(first, key=lambda k: (first[k], k)):
            if k in cache:
                continue
            if sum(1 for x in cache if part_of(x) == part_of(k)) < cap[part_of(k)]:
                cache.add(k)
    out = []
    total = 0
    for r in range(a + 1, end + 1):
        R = sets[r]
        for k in R:
            if k in cache:
                continue
            q = part_of(k)
            total += part_load[q]
            mine = [x for x in cache if part_of(x) == q]
            if len(mine) >= cap[q]:
                victims = [x for x in mine if x not in R]
                cache.remove(max(victims, key=lambda x: (_next_use(sets, x, r), x)))
            cache.add(k)
        out.append(total)
    return out


def bound_reference(trace, model=None, hardware="rtx3090", cache_slots=None, batch_size: int = 1, *,
                    cache_bytes=None, cache_partition="global", pinned=None, pin_profile: float = 1.0,
                    horizon=64, batching="continuous") -> int:
    """The lower bound on the total time in nanoseconds (``docs/bounds.md``, "The chain");
    ``batching="recorded"`` schedules one step per recorded pass, as the replay does."""
    mprof = model_profile(model if model is not None else trace.model)
    hprof = hardware_profile(hardware)
    L, E = trace.num_layers, trace.num_experts
    schedule = ReferenceSchedule(trace.experts, trace.sequence_lengths, L, E, int(batch_size), batching=batching)
    layout = resolve_layout(cache_slots, cache_bytes, "on-demand", mprof, schedule, cache_partition, pinned,
                            pin_profile, trace.experts)
    if layout.unit != "slots":
        raise ValueError("the bound counts slots")
    durations = LayerDurations(mprof, hprof, layout.byte_size)
    sets = position_keys(schedule, layout.pinned)
    P = len(sets)
    if P == 0:
        return 0
    c = []
    for s in range(schedule.num_steps):
        b = len(schedule.steps[s])
        for l in range(L):
            experts, counts = schedule.R(s, l)
            c.append(dense_ns(mprof, hprof, b) + sum(durations.expert(l, n) for n in counts))
    parts = len(layout.budgets)
    cap = [layout.budgets[q] - sum(1 for k in layout.pinned if layout.partition(k) == q) for q in range(parts)]
    part_load = [min(durations.load(l) for l in range(L) if layout.part[l] == q) if q in layout.part else 0
                 for q in range(parts)]
    part_of = layout.partition
    span = P - 1 if horizon is None else min(int(horizon), P - 1)

    lb = list(fewest_loads(sets, -1, P - 1, part_of, cap, part_load))  # lb[p] >= W(-1, p)
    for a in range(P):
        if a > 0:
            lb[a] = max(lb[a], lb[a - 1] + c[a - 1])  # compute is serial
        end = min(P - 1, a + span)
        if end > a:
            w = fewest_loads(sets, a, end, part_of, cap, part_load)
            for r in range(a + 1, end + 1):
                lb[r] = max(lb[r], lb[a] + c[a] + w[r - a - 1])  # loads after a start after a ends
    return lb[P - 1] + c[P - 1]
