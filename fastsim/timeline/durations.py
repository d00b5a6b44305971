"""Durations of one replay in integer nanoseconds (SPEC sections 2-3).

Each duration is computed once in floating point from the profiles and rounded half up
(``int(seconds * 1e9 + 0.5)``); the clock then runs on integers, so every implementation makes
the same hit/late decisions.
"""
from __future__ import annotations

import numpy as np

__all__ = ["to_ns", "load_seconds", "expert_seconds", "dense_seconds", "cost_tables"]


def to_ns(seconds: float) -> int:
    return int(seconds * 1e9 + 0.5)


def load_seconds(model, hardware) -> float:
    return hardware.transfer_latency_s + model.expert_bytes / hardware.h2d_bytes_per_s


def expert_seconds(model, hardware, n: int) -> float:
    """An expert serving ``n`` tokens: weights read once, or compute, whichever is slower."""
    return hardware.launch_s + max(
        model.expert_bytes / hardware.mem_bytes_per_s, n * model.expert_flops_per_token / hardware.flops_per_s
    )


def dense_seconds(model, hardware, b: int) -> float:
    """A layer's non-expert work for ``b`` active tokens."""
    return hardware.launch_s + max(
        model.dense_bytes_per_layer / hardware.mem_bytes_per_s, b * model.dense_flops_per_token / hardware.flops_per_s
    )


def cost_tables(model, hardware, batch_size: int):
    """``(load_ns, expert_ns, dense_ns)`` with ``expert_ns[n]`` and ``dense_ns[b]`` for 1..batch."""
    expert_ns = np.zeros(batch_size + 1, np.int64)
    dense_ns = np.zeros(batch_size + 1, np.int64)
    for n in range(1, batch_size + 1):
        expert_ns[n] = to_ns(expert_seconds(model, hardware, n))
        dense_ns[n] = to_ns(dense_seconds(model, hardware, n))
    return np.int64(to_ns(load_seconds(model, hardware))), expert_ns, dense_ns
