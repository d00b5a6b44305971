"""Durations of one replay in integer nanoseconds (SPEC sections 2-3).

Each duration is computed once in floating point from the profiles and rounded half up
(``int(seconds * 1e9 + 0.5)``); the clock then runs on integers, so every implementation makes
the same hit/late decisions. A key's load and its expert's weight read use its layer's expert
size (SPEC section 6); with one size every layer's figures are the same.

The hardware profile's optional fixed costs (docs/profiles.md, "Fixed costs") enter here: an
efficiency ``f`` scales both rates of its term (``bytes / (f * mem_bytes_per_s)``,
``flops / (f * flops_per_s)``) and ``layer_overhead_s`` is added to the dense part as
``(launch_s + layer_overhead_s) + max(...)``. Absent, they are skipped, not replaced by 1.0 and
0.0, so the default durations are section 2's expressions exactly.
"""
from __future__ import annotations

import numpy as np

__all__ = ["to_ns", "load_seconds", "expert_seconds", "dense_seconds", "cost_tables", "layer_cost_tables"]


def to_ns(seconds: float) -> int:
    return int(seconds * 1e9 + 0.5)


def load_seconds(model, hardware, expert_bytes=None) -> float:
    size = model.expert_bytes if expert_bytes is None else expert_bytes
    return hardware.transfer_latency_s + size / hardware.h2d_bytes_per_s


def _rates(hardware, efficiency):
    """``(mem_bytes_per_s, flops_per_s)`` as achieved at ``efficiency`` (None: the profile's)."""
    if efficiency is None:
        return hardware.mem_bytes_per_s, hardware.flops_per_s
    return efficiency * hardware.mem_bytes_per_s, efficiency * hardware.flops_per_s


def expert_seconds(model, hardware, n: int, expert_bytes=None) -> float:
    """An expert serving ``n`` tokens: weights read once, or compute, whichever is slower."""
    size = model.expert_bytes if expert_bytes is None else expert_bytes
    mem, flops = _rates(hardware, hardware.expert_efficiency)
    return hardware.launch_s + max(size / mem, n * model.expert_flops_per_token / flops)


def dense_seconds(model, hardware, b: int) -> float:
    """A layer's non-expert work for ``b`` active tokens, plus the per-layer fixed cost."""
    mem, flops = _rates(hardware, hardware.dense_efficiency)
    fixed = hardware.launch_s
    if hardware.layer_overhead_s is not None:
        fixed = fixed + hardware.layer_overhead_s
    return fixed + max(model.dense_bytes_per_layer / mem, b * model.dense_flops_per_token / flops)


def cost_tables(model, hardware, batch_size: int):
    """``(load_ns, expert_ns, dense_ns)`` with ``expert_ns[n]`` and ``dense_ns[b]`` for 1..batch
    (one expert size: the demand-only path)."""
    expert_ns = np.zeros(batch_size + 1, np.int64)
    dense_ns = np.zeros(batch_size + 1, np.int64)
    for n in range(1, batch_size + 1):
        expert_ns[n] = to_ns(expert_seconds(model, hardware, n))
        dense_ns[n] = to_ns(dense_seconds(model, hardware, n))
    return np.int64(to_ns(load_seconds(model, hardware))), expert_ns, dense_ns


def layer_cost_tables(model, hardware, batch_size: int):
    """``(load_ns, expert_ns, dense_ns)``: int64 ``(L,)``, ``(L, B + 1)`` and ``(B + 1,)``, each
    layer's figures from its own expert size."""
    sizes = model.layer_bytes()
    load_ns = np.zeros(len(sizes), np.int64)
    expert_ns = np.zeros((len(sizes), batch_size + 1), np.int64)
    dense_ns = np.zeros(batch_size + 1, np.int64)
    for n in range(1, batch_size + 1):
        dense_ns[n] = to_ns(dense_seconds(model, hardware, n))
    memo: dict[int, tuple] = {}
    for l, size in enumerate(sizes):
        if size not in memo:
            row = np.zeros(batch_size + 1, np.int64)
            for n in range(1, batch_size + 1):
                row[n] = to_ns(expert_seconds(model, hardware, n, size))
            memo[size] = (to_ns(load_seconds(model, hardware, size)), row)
        load_ns[l], expert_ns[l] = memo[size]
    return load_ns, expert_ns, dense_ns
