"""The reference's own durations (SPEC sections 2-3), written from the SPEC's formulas.

Each is computed once in floating point from the profile fields and rounded half up to whole
nanoseconds. The kernel side has its own copy (``fastsim.timeline.durations``); the two are kept
apart on purpose so that a slip in either shows up as a disagreement in the tests.
"""
from __future__ import annotations

__all__ = ["nanoseconds", "load_ns", "expert_ns", "dense_ns"]


def nanoseconds(seconds: float) -> int:
    """Round half up: ``int(seconds * 1e9 + 0.5)``."""
    return int(seconds * 1e9 + 0.5)


def load_ns(model, hardware) -> int:
    """``transfer_latency_s + expert_bytes / h2d_bytes_per_s``."""
    return nanoseconds(hardware.transfer_latency_s + model.expert_bytes / hardware.h2d_bytes_per_s)


def expert_ns(model, hardware, n: int) -> int:
    """``launch_s + max(expert_bytes / mem_bytes_per_s, n * expert_flops_per_token / flops_per_s)``."""
    weights = model.expert_bytes / hardware.mem_bytes_per_s
    compute = n * model.expert_flops_per_token / hardware.flops_per_s
    return nanoseconds(hardware.launch_s + max(weights, compute))


def dense_ns(model, hardware, b: int) -> int:
    """``launch_s + max(dense_bytes_per_layer / mem_bytes_per_s, b * dense_flops_per_token / flops_per_s)``."""
    weights = model.dense_bytes_per_layer / hardware.mem_bytes_per_s
    compute = b * model.dense_flops_per_token / hardware.flops_per_s
    return nanoseconds(hardware.launch_s + max(weights, compute))
