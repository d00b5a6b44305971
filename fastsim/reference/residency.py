"""The reference cache's resident keys and its victim rule (SPEC sections 3 and 6), in plain Python.

Both reference timelines (:mod:`fastsim.reference.timeline` and
:mod:`fastsim.reference.execution`) keep their cache here, so the rule of who may be evicted, the
order a policy sees and the prefetch loop are written once. What a resident key waits for
differs between them (a ready time, or a transfer of the link), so each passes its own test of
whether a key has settled. Nothing here is shared with the kernel side.
"""
from __future__ import annotations

__all__ = ["EVICT", "Residency"]

# Event kind this module writes into the replay's record (kept in step with
# ``fastsim.reference.timeline``, which lists every kind).
EVICT = "evict"  # (EVICT, step, layer, key)


class Residency:
    """The keys resident in the cache, each with what its residency waits for.

    ``settled(value, g)`` says whether a key whose entry is ``value`` has settled by ``g``.
    ``tick`` is the replay's access clock the policy orders by; the replay advances it.
    """

    def __init__(self, layout, policy, policy_name: str, sched, events: list, settled):
        self.layout = layout
        self.policy = policy
        self.belady = policy_name == "belady"
        self.sched = sched
        self.events = events
        self.pins = layout.pinned
        self.resident: dict = {}
        self.tick = 0
        self._settled = settled

    def settled(self, key, g) -> bool:
        return self._settled(self.resident[key], g)

    def pin(self, key, value) -> None:
        """``key`` resident before any step, never loaded."""
        self.resident[key] = value

    def admit(self, key, value, kind: str) -> None:
        """``key`` loaded (``kind`` ``"demand"`` or ``"prefetch"``), resident from now on."""
        self.resident[key] = value
        self.policy.on_load(key, kind, self.tick)

    def accessed(self, key) -> None:
        """A demand hit on ``key``; pinned keys are outside the policy's order."""
        if key not in self.pins:
            self.policy.on_access(key, self.tick)

    def room_needed(self, key) -> bool:
        q = self.layout.partition(key)
        return self.layout.used(self.resident, q) + self.layout.size(key) > self.layout.budgets[q]

    def candidates(self, key, exclude, g, want_settled: bool) -> list:
        """Keys of ``key``'s partition a load may evict: not pinned, not excluded, and settled at
        ``g`` (``want_settled``) or in flight (not ``want_settled``)."""
        layout = self.layout
        q = layout.partition(key)
        return [
            x for x in self.resident
            if layout.partition(x) == q and x not in self.pins and x not in exclude
            and self.settled(x, g) == want_settled
        ]

    def choose(self, cands, s, l):
        return min(cands, key=lambda x: self.policy.order(x, s, l, self.tick))

    def evict(self, key, s, l) -> None:
        del self.resident[key]  # on the execution path a transfer not yet ended stays in its queue
        self.policy.on_evict(key)
        self.events.append((EVICT, s, l, key))

    def make_room_for_demand(self, key, keys, g, s, l, may_overflow: bool = False) -> None:
        """Evict until a demand load of ``key`` fits, settled victims first, then those in
        flight; never a key of this layer's demand ``keys``. Where none is left the load goes
        in all the same, which only ``may_overflow`` allows (``overflow="exceed"``)."""
        while self.room_needed(key):
            cands = self.candidates(key, keys, g, True) or self.candidates(key, keys, g, False)
            if not cands:
                assert may_overflow, "the working-set check lets every demand load fit"
                return
            self.evict(self.choose(cands, s, l), s, l)

    def prefetch(self, wanted, keys, g, s, l, cap: int, load, staging_full=None) -> None:
        """Load the keys of ``wanted`` in order (SPEC section 3, step 3), then refresh every key
        processed, last first. ``load(key, g, "prefetch", s, l)`` issues one prefetch load;
        ``cap`` (``-1``: none) bounds how many, and ``staging_full(g)``, where given, stops the
        loop when true (the staging buffer of in-flight prefetches is full)."""
        processed: list[int] = []
        loads = 0
        for key in wanted:
            if key in self.resident:
                processed.append(key)
                continue
            if cap >= 0 and loads >= cap:
                break
            if staging_full is not None and staging_full(g):
                break
            room = self._room_for_prefetch(key, set(keys) | set(processed), g, s, l)
            if room is None:
                break
            if room:
                load(key, g, "prefetch", s, l)
                loads += 1
            processed.append(key)
        for key in reversed(processed):
            self.tick += 1
            if key in self.resident and key not in self.pins:
                self.policy.on_refresh(key, self.tick)

    def _room_for_prefetch(self, key, exclude, g, s, l):
        """Evict settled keys until ``key`` fits: ``True`` when it does, ``False`` when Belady
        would rather keep its victim (the key is skipped), ``None`` when no victim is left (the
        prefetch loop stops)."""
        while self.room_needed(key):
            cands = self.candidates(key, exclude, g, True)
            if not cands:
                return None
            victim = self.choose(cands, s, l)
            if self.belady and self.sched.next_use(victim, s, l) < self.sched.next_use(key, s, l):
                return False
            self.evict(victim, s, l)
        return True
