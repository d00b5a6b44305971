"""Pure-Python reference of ``moe-infinity`` (docs/strategies/moe-infinity.md): the library as a
list of count dicts, every similarity recomputed from scratch; a ``library`` file's matrices are
its first, persistent entries."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["MoEInfinityReference"]


def inv_norm(sq):
    return 1.0 / math.sqrt(sq) if sq > 0 else 0.0


class MoEInfinityReference:
    """``library``: request matrices ``{(layer, expert): tokens}``; ``access``: their match counts;
    ``current``: the summed matrix of the requests in flight."""

    def __init__(self, num_layers, num_experts, top_k, schedule, capacity=64, max_predictions=32, library=None):
        self.L, self.E = int(num_layers), int(num_experts)
        self.capacity, self.most = int(capacity), int(max_predictions)
        self.schedule = schedule
        self.library, self.access = [], []
        if library is not None:  # MoE-Infinity's saved matrices: (requests, layers, experts) counts
            for matrix in np.load(library, allow_pickle=False).tolist():
                self.library.append({(j, e): float(c) for j, row in enumerate(matrix) for e, c in enumerate(row) if c})
                self.access.append(0)
        self.persistent = len(self.library)
        self.current: dict = {}
        # each sequence's own matrix, counted from its rows (the rows each step ran, slot order)
        self.matrix: dict = {}
        for rows, seqs in zip(schedule.steps, schedule.step_sequences):
            for t, q in zip(rows, seqs):
                m = self.matrix.setdefault(q, {})
                for j in range(self.L):
                    for e in schedule.experts[t][j]:
                        if int(e) >= 0:
                            m[(j, int(e))] = m.get((j, int(e)), 0) + 1

    def similarity(self, entry, l):
        sim = 0.0
        for j in range(l + 1, self.L):
            cur = [self.current.get((j, e), 0) for e in range(self.E)]
            lib = [entry.get((j, e), 0) for e in range(self.E)]
            dot = sum(a * b for a, b in zip(cur, lib))
            sim += float(dot) * inv_norm(float(sum(a * a for a in cur))) * inv_norm(float(sum(b * b for b in lib)))
        return sim

    def observe(self, s, l, R, n):
        for e, c in zip(R, n):
            self.current[(l, int(e))] = self.current.get((l, int(e)), 0) + int(c)
        wanted = []
        if self.library:
            sims = [self.similarity(entry, l) for entry in self.library]
            best = sims.index(max(sims))
            self.access[best] += 1
            weight = lambda j: (-1.0 / (self.L + 1)) * (j - l) + 1.0  # noqa: E731
            entry = self.library[best]
            keys = [(j, e) for (j, e), c in entry.items() if j >= l and c > 0]
            keys.sort(key=lambda k: (-(entry[k] * weight(k[0])), k))
            wanted = [j * self.E + e for j, e in keys[: self.most]]
        if l == self.L - 1:
            joined: dict = {}
            for q in self.schedule.finished[s]:
                for k, c in self.matrix.get(q, {}).items():
                    joined[k] = joined.get(k, 0) + c
            if joined:
                for k, c in joined.items():
                    self.current[k] -= c
                if len(self.library) < self.capacity:
                    self.library.append(joined)
                    self.access.append(1)
                elif self.persistent < self.capacity:  # the least matched entry after the persistent ones
                    rest = self.access[self.persistent:]
                    slot = self.persistent + rest.index(min(rest))
                    self.library[slot], self.access[slot] = joined, 1
        return wanted
