"""Pure-Python reference of strategy D (top-k), written after the seed's ``TopKStrategy``.

It follows the seed's call sequence (decay, re-add the recent window, count the call, recompute
every ``update_frequency`` calls) with the decay kept lazily: ``count = v * scale``. The seed
multiplies every count by the decay on every call; here only ``scale`` is multiplied, and each
addition of 1 becomes an addition of ``1 / scale`` to ``v``. Before ``scale * decay`` would fall
below :data:`SCALE_FLOOR`, ``scale`` is folded into ``v`` and the seed's eager multiply is done
once. Counts agree with the seed's up to rounding (a few ulps per fold); the kernel performs these
same operations in the same order and so agrees with this reference bit for bit.

Two options beyond the seed's class: ``weighting = 1`` re-adds the window with the seed's
``_update_frequencies_weighted`` (the ``i``-th oldest set adds ``(i + 1) / window``), and
``order = 1`` returns the chosen set ordered by the counts of the call (SPEC section 4) instead of
those of the last recompute.
"""
from __future__ import annotations

from ..lazy_decay import SCALE_FLOOR

__all__ = ["TopKLayer", "TopKReference"]


class TopKLayer:
    """The seed's ``TopKStrategy`` for one layer (lazy decay, deterministic order).

    ``predict_experts`` returns the experts chosen at the last recompute, count descending (the
    counts of that recompute, or with ``order = 1`` those of this call), then id ascending; empty
    before the first recompute.
    """

    def __init__(self, num_experts, k=32, decay_factor=0.999, window=10, update_frequency=100,
                 min_count_threshold=1.0, order=0, weighting=0):
        self.num_experts = int(num_experts)
        self.k = int(k)
        self.decay_factor = float(decay_factor)
        self.window = int(window)
        self.update_frequency = int(update_frequency)
        self.min_count_threshold = float(min_count_threshold)
        self.order = int(order)
        self.weighting = int(weighting)
        self.scaled_counts = [0.0] * self.num_experts
        self.scale = 1.0
        self.current_top_k = []
        self.token_count = 0

    def counts(self):
        """The decayed counts, as the seed's ``expert_counts`` (up to rounding)."""
        return [v * self.scale for v in self.scaled_counts]

    def predict_experts(self, routing_history, current_token):
        self._update_frequencies(routing_history)
        self.token_count += 1
        if self.token_count % self.update_frequency == 0:
            self._recompute_top_k()
        return self._ordered()

    def _ordered(self):
        if self.order == 0:
            return list(self.current_top_k)
        counts = self.counts()
        return sorted(self.current_top_k, key=lambda e: (-counts[e], e))

    def _update_frequencies(self, routing_history):
        v = self.scaled_counts
        if self.scale * self.decay_factor < SCALE_FLOOR:
            for e in range(self.num_experts):
                v[e] = v[e] * self.scale
                v[e] = v[e] * self.decay_factor
            self.scale = 1.0
        else:
            self.scale = self.scale * self.decay_factor
        recent_window = min(self.window, len(routing_history))
        recent = routing_history[len(routing_history) - recent_window:]
        if self.weighting == 0:
            increment = 1.0 / self.scale
            for token_experts in recent:
                for expert_id in token_experts:
                    v[expert_id] += increment
            return
        # _update_frequencies_weighted: linear decay, more recent = higher weight
        for i, token_experts in enumerate(recent):
            increment = ((i + 1) / self.window) / self.scale
            for expert_id in token_experts:
                v[expert_id] += increment

    def _recompute_top_k(self):
        # The seed keeps argsort(counts)[-k:], drops counts below min_count_threshold, then refills
        # from the descending argsort of the same counts, which puts the dropped ones straight
        # back: the set is the top min(k, E) by count whatever the threshold.
        counts = self.counts()
        ranked = sorted(range(self.num_experts), key=lambda e: (-counts[e], e))
        self.current_top_k = ranked[: min(self.k, self.num_experts)]


class TopKReference:
    """One :class:`TopKLayer` per layer; ``observe(s, l, R, n)`` returns keys ``l * E + e``."""

    def __init__(self, num_layers, num_experts, top_k, schedule, **params):
        self.num_experts = int(num_experts)
        self.layers = [TopKLayer(num_experts, **params) for _ in range(int(num_layers))]
        self.history = [[] for _ in range(int(num_layers))]

    def observe(self, s, l, R, n):
        self.history[l].append([int(e) for e in R])
        experts = self.layers[l].predict_experts(self.history[l], s)
        return [l * self.num_experts + int(e) for e in experts]
