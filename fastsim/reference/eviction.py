"""Pure-Python references of the eviction policies (SPEC sections 3 and 6, docs/model.md "Policies").

One small class per policy, all with the same hooks, called by ``replay_reference`` for every
non-pinned key (pinned keys are outside every policy):

- ``on_position(s, l)``: at the start of ``(step, layer)``, before its demand;
- ``on_load(key, kind, tick)``: a load was issued (``kind`` ``"demand"`` or ``"prefetch"``); a
  demand-loaded key's recency is ``tick``, a prefetched key gets its recency at its refresh;
- ``on_access(key, tick)``: a demand access (hit or late) to a resident key;
- ``on_refresh(key, tick)``: a processed prefetch key's recency refresh;
- ``on_evict(key)``;
- ``after_step(s)``: after every layer of step ``s``;
- ``order(key, s, l, tick)``: a sortable value; the candidate with the smallest is evicted.
  ``tick`` is the section-3 counter's current value.

The base class keeps section 3 recency; unless a policy says otherwise, ties go to the least
recent key, then to the lowest key (``order`` = ``(rank, recency, key)``).
A user adds a policy with :func:`register_reference_eviction`.
"""
from __future__ import annotations

from fractions import Fraction

from ..plugin_references import add_eviction_reference, find_eviction_reference

__all__ = [
    "EvictionContext", "EvictionReference", "LRUReference", "BeladyReference", "FIFOReference",
    "LFUReference", "LFRUReference", "ActivationAwareReference", "ScoreAwareReference",
    "BUILTIN_EVICTIONS", "register_reference_eviction", "reference_eviction",
]


class EvictionContext:
    """What a policy may read: ``num_layers``, ``num_experts``, the ``schedule``
    (:class:`~fastsim.reference.timeline.ReferenceSchedule`), the trace's ``experts`` and
    ``scores`` as nested lists (``scores`` ``None`` when the trace has none)."""

    def __init__(self, num_layers, num_experts, schedule, experts, scores):
        self.num_layers, self.num_experts = num_layers, num_experts
        self.schedule, self.experts, self.scores = schedule, experts, scores


class EvictionReference:
    """The hooks, with section 3 recency kept and every other hook a no-op."""

    name = "base"
    defaults: dict = {}  # parameter name -> default value

    def __init__(self, ctx: EvictionContext, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"eviction {self.name!r} has no parameter {unknown[0]!r} (its parameters: {known})")
        self.ctx = ctx
        self.params = {**self.defaults, **params}
        self.recency: dict[int, int] = {}

    def on_position(self, s, l):
        pass

    def on_load(self, key, kind, tick):
        if kind == "demand":
            self.recency[key] = tick

    def on_access(self, key, tick):
        self.recency[key] = tick

    def on_refresh(self, key, tick):
        self.recency[key] = tick

    def on_evict(self, key):
        self.recency.pop(key, None)

    def after_step(self, s):
        pass

    def rank(self, key, s, l, tick):
        raise NotImplementedError

    def order(self, key, s, l, tick):
        return (self.rank(key, s, l, tick), self.recency[key], key)


class LRUReference(EvictionReference):
    """Evicts the least recent key."""

    name = "lru"

    def order(self, key, s, l, tick):
        return (self.recency[key], key)


class BeladyReference(EvictionReference):
    """Evicts the key whose next demand use is farthest (never = infinitely far), ties to the
    lowest key."""

    name = "belady"

    def order(self, key, s, l, tick):
        return (-self.ctx.schedule.next_use(key, s, l), key)


class FIFOReference(EvictionReference):
    """Evicts the key loaded earliest (one counter per load, demand or prefetch)."""

    name = "fifo"

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        self.loads = 0
        self.loaded: dict[int, int] = {}

    def on_load(self, key, kind, tick):
        super().on_load(key, kind, tick)
        self.loads += 1
        self.loaded[key] = self.loads

    def on_evict(self, key):
        super().on_evict(key)
        del self.loaded[key]

    def order(self, key, s, l, tick):
        return (self.loaded[key], key)


class LFUReference(EvictionReference):
    """Evicts the fewest demand accesses since the load: 1 on a demand load, 0 on a prefetch
    load, +1 per demand access (hit or late)."""

    name = "lfu"

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        self.count: dict[int, int] = {}

    def on_load(self, key, kind, tick):
        super().on_load(key, kind, tick)
        self.count[key] = 1 if kind == "demand" else 0

    def on_access(self, key, tick):
        super().on_access(key, tick)
        self.count[key] += 1

    def on_evict(self, key):
        super().on_evict(key)
        del self.count[key]

    def rank(self, key, s, l, tick):
        return self.count[key]


class LFRUReference(EvictionReference):
    """Evicts the smallest ``freq / (tick_now - last + 1)``, exactly (as a fraction); ``freq`` is
    1 on a load (demand or prefetch), +1 per demand access; ``last`` the key's recency."""

    name = "lfru"

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        self.freq: dict[int, int] = {}

    def on_load(self, key, kind, tick):
        super().on_load(key, kind, tick)
        self.freq[key] = 1

    def on_access(self, key, tick):
        super().on_access(key, tick)
        self.freq[key] += 1

    def on_evict(self, key):
        super().on_evict(key)
        del self.freq[key]

    def rank(self, key, s, l, tick):
        return Fraction(self.freq[key], tick - self.recency[key] + 1)


class ActivationAwareReference(EvictionReference):
    """MoE-Infinity's priority: evicts the smallest ``(1.0 - (d - 1) / L) * (act(k) + smoothing)``.

    ``act(k)`` counts the tokens of the requests now in the batch routed to ``k``: at the start
    of ``(s, l)`` each active token's layer-``l`` routing is added; after step ``s`` the counts of
    every request whose last token ran at step ``s`` are removed. ``d`` is how many layers from
    the current layer until the key's layer runs again (1 = the next, ``L`` = the current one)."""

    name = "activation-aware"
    defaults = {"smoothing": 1.0}

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        self.smoothing = float(self.params["smoothing"])
        if not self.smoothing > 0.0:
            raise ValueError(f"activation-aware smoothing must be > 0, got {self.params['smoothing']!r}")
        self.act: dict[int, int] = {}
        self.per_request: dict[int, dict[int, int]] = {}

    def on_position(self, s, l):
        sched, E = self.ctx.schedule, self.ctx.num_experts
        for row, q in zip(sched.steps[s], sched.step_sequences[s]):
            mine = self.per_request.setdefault(q, {})
            for e in self.ctx.experts[row][l]:
                if e >= 0:
                    k = l * E + e
                    self.act[k] = self.act.get(k, 0) + 1
                    mine[k] = mine.get(k, 0) + 1

    def after_step(self, s):
        for q in self.ctx.schedule.finished[s]:
            for k, c in self.per_request.pop(q, {}).items():
                self.act[k] -= c

    def rank(self, key, s, l, tick):
        L = self.ctx.num_layers
        d = ((key // self.ctx.num_experts - l - 1) % L) + 1
        return (1.0 - (d - 1) / L) * (self.act.get(key, 0) + self.smoothing)


class ScoreAwareReference(EvictionReference):
    """HybriMoE's score cache: evicts the smallest ``S(k)``. At the start of every ``(s, l)``
    each key of layer ``l`` is updated, ``S <- alpha * score + (1 - alpha) * S`` for the experts
    of ``R`` and ``S <- (1 - alpha) * S`` for the rest; ``score`` is the router weights of the
    active tokens for that expert summed in slot order (as float64) over the active tokens.
    ``S`` starts at 0 and is kept across evictions."""

    name = "score-aware"
    defaults = {"alpha": 0.5}

    def __init__(self, ctx, **params):
        super().__init__(ctx, **params)
        self.alpha = float(self.params["alpha"])
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"score-aware alpha must be in (0, 1], got {self.params['alpha']!r}")
        if ctx.scores is None:
            raise ValueError("eviction 'score-aware' needs a trace with router scores (trace.scores is None)")
        self.S: dict[int, float] = {}

    def on_position(self, s, l):
        sched, E, a = self.ctx.schedule, self.ctx.num_experts, self.alpha
        rows = sched.steps[s]
        total: dict[int, float] = {}
        for row in rows:  # slot order
            for j, e in enumerate(self.ctx.experts[row][l]):
                if e >= 0:
                    total[e] = total.get(e, 0.0) + float(self.ctx.scores[row][l][j])
        R = set(sched.R(s, l)[0])
        for e in range(E):
            k = l * E + e
            old = self.S.get(k, 0.0)
            if e in R:
                self.S[k] = a * (total[e] / len(rows)) + (1 - a) * old
            else:
                self.S[k] = (1 - a) * old

    def rank(self, key, s, l, tick):
        return self.S.get(key, 0.0)


BUILTIN_EVICTIONS = {
    cls.name: cls
    for cls in (LRUReference, BeladyReference, FIFOReference, LFUReference, LFRUReference,
                ActivationAwareReference, ScoreAwareReference)
}


def register_reference_eviction(name: str, cls) -> None:
    """Make ``replay_reference(eviction=name)`` use ``cls`` (a subclass of
    :class:`EvictionReference`, or any class with its hooks, built as ``cls(ctx, **params)``).
    ``cls=None`` forgets it. Built-in names cannot be replaced."""
    if name in BUILTIN_EVICTIONS:
        raise ValueError(f"eviction {name!r} is built in")
    add_eviction_reference(name, cls)


def reference_eviction(eviction):
    """``(name, cls)`` for a policy name, or for a policy class given directly."""
    if isinstance(eviction, type):
        return getattr(eviction, "name", eviction.__name__), eviction
    if eviction in BUILTIN_EVICTIONS:
        return eviction, BUILTIN_EVICTIONS[eviction]
    cls = find_eviction_reference(eviction) if isinstance(eviction, str) else None
    if cls is None:
        known = ", ".join(BUILTIN_EVICTIONS)
        raise ValueError(f"unknown eviction {eviction!r}: expected one of {known} or a registered name")
    return eviction, cls
