"""Shared helpers for the per-strategy tests: random demand sets, and every per-(step, layer)
wanted list of a strategy's kernel and of its reference over one schedule."""
from __future__ import annotations

import numpy as np

from fastsim.timeline.core import prefetch_lists


def random_sets(seed, steps, layers, num_experts, top_k, skewed=False):
    """``sets[s][l]``: up to ``top_k`` distinct experts; about one set in eight is empty.

    ``skewed`` draws experts from a skewed popularity, so that counts separate.
    """
    rng = np.random.default_rng(seed)
    weights = None
    if skewed:
        weights = rng.random(num_experts) ** 3 + 1e-3
        weights /= weights.sum()
    sets = []
    for _ in range(steps):
        row = []
        for _ in range(layers):
            size = 0 if rng.random() < 0.125 else int(rng.integers(1, top_k + 1))
            row.append(sorted(rng.choice(num_experts, size=size, replace=False, p=weights).tolist()))
        sets.append(row)
    return sets


def kernel_lists(defn, sched, top_k, params):
    """The kernel's wanted keys per position (``s * L + l``), as lists."""
    ptr, keys = prefetch_lists(sched, top_k, defn.resolve(params), defn.init, defn.observe)
    return [keys[ptr[p] : ptr[p + 1]].tolist() for p in range(ptr.shape[0] - 1)]


def reference_lists(reference, sched, top_k, params):
    """The reference's wanted keys per position, driven over the same schedule."""
    ref = reference(sched.num_layers, sched.num_experts, top_k, sched, **params)
    lists = []
    for s in range(sched.num_steps):
        for l in range(sched.num_layers):
            R, n = sched.R(s, l)
            lists.append([int(k) for k in ref.observe(s, l, R.tolist(), n.tolist())])
    return lists
