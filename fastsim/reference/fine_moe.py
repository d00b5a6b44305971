"""Pure-Python reference of ``fine-moe`` (docs/strategies/fine-moe.md): a list of stored maps,
every similarity recomputed from scratch."""
from __future__ import annotations

import math

from .router_scores import entry_scores

__all__ = ["FineMoEReference"]


def inv_norm(sq):
    return 1.0 / max(math.sqrt(sq), 1e-12)


class FineMoEReference:
    """``maps``: stored maps, each ``{"step": s, "layers": [{expert: probability}, ...]}``."""

    def __init__(self, num_layers, num_experts, top_k, schedule, capacity=64, prefetch_distance=2, min_experts=0):
        self.L, self.E = int(num_layers), int(num_experts)
        self.schedule = schedule
        self.capacity, self.distance = int(capacity), int(prefetch_distance)
        self.min_k = max(1, min(int(min_experts) or int(top_k), self.E))
        self.maps = []
        self.current = []  # this step's layers so far, each {expert: probability}

    def layer_map(self, s, l):
        """``{expert: probability}`` of ``R(s, l)``: weights over their sum (0 when it is 0)."""
        R, n = self.schedule.R(s, l)
        scores = entry_scores(self.schedule, s, l)
        weights = [scores[int(e)] if scores is not None else float(c) for e, c in zip(R, n)]
        total = 0.0
        for w in weights:
            total += w
        return {int(e): (w / total if total > 0.0 else 0.0) for e, w in zip(R, weights)}

    def similarity(self, stored, upto):
        """Cosine of this step's layers ``0..upto`` and ``stored``'s, per-layer sums first."""
        dot = cur = mine = 0.0
        for j in range(upto + 1):
            row, theirs = self.current[j], stored["layers"][j]
            block = 0.0
            for e in sorted(row):
                block += row[e] * theirs.get(e, 0.0)
            dot += block
            block = 0.0
            for e in sorted(row):
                block += row[e] * row[e]
            cur += block
            block = 0.0
            for e in sorted(theirs):
                block += theirs[e] * theirs[e]
            mine += block
        return dot * inv_norm(cur) * inv_norm(mine)

    def best(self, upto):
        sims = [self.similarity(m, upto) for m in self.maps]
        top = max(sims)
        return sims.index(top), top

    def observe(self, s, l, R, n):
        if l == 0:
            self.current = []
        self.current.append(self.layer_map(s, l))
        wanted = []
        if self.maps and l + 1 < self.L:
            c, sim = self.best(l)
            threshold = min(max(1.0 - sim, 0.0), 1.0)
            for j in range(l + 1, min(l + self.distance, self.L - 1) + 1):
                row = self.maps[c]["layers"][j]
                ranked = sorted((e for e in row if row[e] > 0.0), key=lambda e: (-row[e], e))
                mass, below = 0.0, 0
                for e in ranked:
                    mass += row[e]
                    below += mass < threshold
                take = min(max(below + 1, self.min_k), len(ranked))
                wanted += [j * self.E + e for e in ranked[:take]]
        if l == self.L - 1 and any(p > 0.0 for row in self.current for p in row.values()):
            entry = {"step": s, "layers": self.current}
            if len(self.maps) < self.capacity:
                self.maps.append(entry)
            else:
                self.maps[self.best(self.L - 1)[0]] = entry
        return wanted
