"""Pure-Python reference of ``cross-layer`` (docs/strategies/cross-layer.md): dicts of counts."""
from __future__ import annotations

__all__ = ["CrossLayerReference"]


class CrossLayerReference:
    """Co-activation counts ``pairs[(d, l, e', e)]`` and step counts ``runs[(l, e')]``."""

    def __init__(self, num_layers, num_experts, top_k, schedule, threshold=0.25, depth=1):
        self.L, self.E = int(num_layers), int(num_experts)
        self.schedule = schedule
        self.threshold, self.depth = float(threshold), int(depth)
        self.pairs: dict = {}
        self.runs: dict = {}

    def observe(self, s, l, R, n):
        R = [int(e) for e in R]
        for d in range(1, self.depth + 1):
            if l - d >= 0:
                for a in self.schedule.R(s, l - d)[0]:
                    for e in R:
                        key = (d, l - d, int(a), e)
                        self.pairs[key] = self.pairs.get(key, 0) + 1
        wanted = []
        for d in range(1, self.depth + 1):
            if not R or l + d >= self.L:
                break
            prob = {}
            for e in range(self.E):
                ratios = [self.pairs.get((d, l, a, e), 0) / self.runs[(l, a)] for a in R if self.runs.get((l, a), 0) > 0]
                p = max(ratios, default=0.0)
                if p > 0.0 and p >= self.threshold:
                    prob[e] = p
            wanted += [(l + d) * self.E + e for e in sorted(prob, key=lambda e: (-prob[e], e))]
        for a in R:
            self.runs[(l, a)] = self.runs.get((l, a), 0) + 1
        return wanted
