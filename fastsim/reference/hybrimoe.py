"""Pure-Python reference of ``hybrimoe`` (docs/strategies/hybrimoe.md), from its definition."""
from __future__ import annotations

from .router_scores import entry_scores

__all__ = ["HybriMoEReference"]


class HybriMoEReference:
    """Scores ``S[l][e]``; ``observe`` updates layer ``l`` and returns layer ``l + 1``'s top ``k``."""

    def __init__(self, num_layers, num_experts, top_k, schedule, alpha=0.5, prefetch_size=0):
        self.L, self.E = int(num_layers), int(num_experts)
        self.schedule = schedule
        self.alpha = float(alpha)
        k = int(prefetch_size) or int(top_k)
        self.k = max(1, min(k, self.E))
        self.S = [[0.0] * self.E for _ in range(self.L)]

    def observe(self, s, l, R, n):
        x = entry_scores(self.schedule, s, l)
        if x is None:  # no router scores: the share of active tokens routed to each expert
            active = len(self.schedule.steps[s])
            x = {int(e): c / active for e, c in zip(R, n)}
        row = self.S[l]
        for e in range(self.E):
            if e in x:
                row[e] = self.alpha * x[e] + (1.0 - self.alpha) * row[e]
            else:
                row[e] = (1.0 - self.alpha) * row[e]
        if l + 1 >= self.L:
            return []
        nxt = self.S[l + 1]
        ranked = sorted((e for e in range(self.E) if nxt[e] > 0.0), key=lambda e: (-nxt[e], e))
        return [(l + 1) * self.E + e for e in ranked[: self.k]]
