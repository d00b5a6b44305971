"""Pure-Python reference of ``pre-gated`` (docs/strategies/pre-gated.md), from its definition."""
from __future__ import annotations

from .counter_hash import uniform

__all__ = ["PreGatedReference"]


class PreGatedReference:
    """``observe(s, l, R, n)``: layer ``l + 1``'s experts of the same step, each kept by the hash
    with probability ``recall``, most tokens first, then ascending id."""

    def __init__(self, num_layers, num_experts, top_k, schedule, recall=1.0, seed=0):
        self.L, self.E = int(num_layers), int(num_experts)
        self.schedule = schedule
        self.recall, self.seed = float(recall), int(seed)

    def observe(self, s, l, R, n):
        if l + 1 >= self.L:
            return []
        experts, counts = self.schedule.R(s, l + 1)
        base = (l + 1) * self.E
        kept = [(int(c), base + int(e)) for e, c in zip(experts, counts)
                if uniform(self.seed, 0, s, l + 1, base + int(e)) < self.recall]
        return [k for c, k in sorted(kept, key=lambda x: (-x[0], x[1]))]
