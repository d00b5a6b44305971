"""Pure-Python reference of ``noisy-oracle`` (docs/strategies/noisy-oracle.md), from its definition."""
from __future__ import annotations

from .counter_hash import uniform

__all__ = ["NoisyOracleReference"]


class NoisyOracleReference:
    """``observe(s, l, R, n)``: oracle's window on the target layer, thinned to ``recall`` and
    padded with false keys to ``precision``, by the counter-based hash."""

    def __init__(self, num_layers, num_experts, top_k, schedule, recall=1.0, precision=1.0, lookahead=8,
                 layer_distance=0, seed=0):
        self.L, self.E = int(num_layers), int(num_experts)
        self.schedule = schedule
        self.recall, self.precision = float(recall), float(precision)
        self.lookahead, self.distance, self.seed = int(lookahead), int(layer_distance), int(seed)

    def truth(self, s, l):
        """The target layer and its experts in the window, nearest step first, then ascending id."""
        target = (l + self.distance) % self.L
        first = s + 1 if target <= l else s
        steps = range(first, min(first + self.lookahead, self.schedule.num_steps))
        nearest = {}
        for step in steps:
            for e in self.schedule.R(step, target)[0]:
                nearest.setdefault(int(e), step)
        return target, sorted(nearest, key=lambda e: (nearest[e], e))

    def observe(self, s, l, R, n):
        target, experts = self.truth(s, l)
        base = target * self.E
        kept = [base + e for e in experts if uniform(self.seed, 0, s, l, base + e) < self.recall]
        t = len(kept)
        if t == 0 or self.precision == 1.0:
            return kept
        outside = [base + e for e in range(self.E) if e not in set(experts)]
        f = min(int(t * (1.0 - self.precision) / self.precision + 0.5), len(outside))
        false = sorted(outside, key=lambda k: (uniform(self.seed, 1, s, l, k), k))[:f]
        ranked = [((i + 0.5) / t, 0, 0, k) for i, k in enumerate(kept)]
        ranked += [(uniform(self.seed, 2, s, l, k), 1, k, k) for k in false]
        return [k for *_, k in sorted(ranked)]
