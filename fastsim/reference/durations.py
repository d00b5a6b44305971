"""The reference's own durations (SPEC sections 2-3), written from the SPEC's formulas.

Each is computed once in floating point from the profile fields and rounded half up to whole
nanoseconds. The kernel side has its own copy (``fastsim.timeline.durations``); the two are kept
apart on purpose so that a slip in either shows up as a disagreement in the tests.

Fixed costs (docs/profiles.md, "Fixed costs"): with ``expert_efficiency`` (``dense_efficiency``)
``f`` given, the expert's (dense part's) weight read is ``bytes / (f * mem_bytes_per_s)`` and its
compute ``flops / (f * flops_per_s)``; with ``layer_overhead_s`` given, the dense part is
``(launch_s + layer_overhead_s) + max(read, compute)``. A figure the profile leaves out takes no
part in the arithmetic.
"""
from __future__ import annotations

__all__ = ["nanoseconds", "load_ns", "expert_ns", "dense_ns"]


def nanoseconds(seconds: float) -> int:
    """Round half up: ``int(seconds * 1e9 + 0.5)``."""
    return int(seconds * 1e9 + 0.5)


def load_ns(model, hardware) -> int:
    """``transfer_latency_s + expert_bytes / h2d_bytes_per_s``."""
    return nanoseconds(hardware.transfer_latency_s + model.expert_bytes / hardware.h2d_bytes_per_s)


def _achieved(rate: float, fraction) -> float:
    """A device rate as achieved: the datasheet rate times the profile's efficiency, if any."""
    return rate if fraction is None else fraction * rate


def expert_ns(model, hardware, n: int) -> int:
    """``launch_s + max(expert_bytes / mem_bytes_per_s, n * expert_flops_per_token / flops_per_s)``,
    both rates at ``expert_efficiency`` when the profile gives it."""
    f = hardware.expert_efficiency
    weights = model.expert_bytes / _achieved(hardware.mem_bytes_per_s, f)
    compute = n * model.expert_flops_per_token / _achieved(hardware.flops_per_s, f)
    return nanoseconds(hardware.launch_s + max(weights, compute))


def dense_ns(model, hardware, b: int) -> int:
    """``launch_s + layer_overhead_s + max(dense_bytes_per_layer / mem_bytes_per_s,
    b * dense_flops_per_token / flops_per_s)``, both rates at ``dense_efficiency`` and the
    overhead only when the profile gives them."""
    f = hardware.dense_efficiency
    weights = model.dense_bytes_per_layer / _achieved(hardware.mem_bytes_per_s, f)
    compute = b * model.dense_flops_per_token / _achieved(hardware.flops_per_s, f)
    fixed = hardware.launch_s
    if hardware.layer_overhead_s is not None:
        fixed += hardware.layer_overhead_s
    return nanoseconds(fixed + max(weights, compute))
