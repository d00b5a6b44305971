"""The reference's own figures for SPEC section 7 (docs/model.md "Execution"): the durations of
CPU execution, zero-copy reads and NVMe reads, the ``cache_bytes="auto"`` budget, and the
checks that a profile gives every figure an option needs.

Plain Python written from the docs' formulas; nothing here is shared with the kernel side. Every
duration is computed once in floating point and rounded half up to whole nanoseconds, as in
:mod:`fastsim.reference.durations`.
"""
from __future__ import annotations

from .durations import nanoseconds

__all__ = ["GIB", "DEFAULT_RESERVE_BYTES", "ExecutionDurations", "need_figures", "auto_cache_bytes"]

GIB = 1024**3
#: The workspace reserve of ``cache_bytes="auto"`` when none is given: 2 GiB.
DEFAULT_RESERVE_BYTES = 2 * GIB

#: The hardware figures each option needs.
CPU_FIGURES = ("cpu_flops_per_s", "cpu_mem_bytes_per_s", "cpu_overhead_s")
TIER_FIGURES = ("nvme_bytes_per_s",)
AUTO_MODEL_FIGURES = ("dense_bytes_total", "kv_bytes_per_token")


def need_figures(profile, names, option: str, kind: str) -> None:
    """Raise ``ValueError`` naming the first of ``names`` the profile leaves out."""
    for name in names:
        if getattr(profile, name, None) is None:
            raise ValueError(f"{option} needs {kind} profile field {name!r}, which {profile.name!r} does not give")


class ExecutionDurations:
    """Per-layer durations of the execution options, in integer nanoseconds.

    ``sizes[l]`` is layer ``l``'s expert bytes. ``cpu(l, n)`` is ``cpu_overhead_s +
    max(bytes / cpu_mem_bytes_per_s, n * expert_flops_per_token / cpu_flops_per_s)``;
    ``zero_copy(l)`` is ``bytes / h2d_bytes_per_s`` (no per-transfer latency);
    ``zero_copy_compute(n)`` is ``launch_s + n * expert_flops_per_token / flops_per_s`` (the
    flops rate at ``expert_efficiency`` when the profile gives it, as in ``expert(n)``);
    ``nvme(l)`` is ``bytes / nvme_bytes_per_s``.
    """

    def __init__(self, model, hardware, sizes):
        self.model, self.hardware, self.sizes = model, hardware, list(sizes)

    def cpu(self, layer: int, n: int) -> int:
        h = self.hardware
        weights = self.sizes[layer] / h.cpu_mem_bytes_per_s
        compute = n * self.model.expert_flops_per_token / h.cpu_flops_per_s
        return nanoseconds(h.cpu_overhead_s + max(weights, compute))

    def zero_copy(self, layer: int) -> int:
        return nanoseconds(self.sizes[layer] / self.hardware.h2d_bytes_per_s)

    def zero_copy_compute(self, n: int) -> int:
        h = self.hardware
        rate = h.flops_per_s
        efficiency = getattr(h, "expert_efficiency", None)
        if efficiency is not None:
            rate = efficiency * rate
        return nanoseconds(h.launch_s + n * self.model.expert_flops_per_token / rate)

    def nvme(self, layer: int) -> int:
        return nanoseconds(self.sizes[layer] / self.hardware.nvme_bytes_per_s)


def auto_cache_bytes(model, hardware, batch_size: int, context_tokens, reserve_bytes, longest_sequence: int):
    """``(budget, figures)`` of ``cache_bytes="auto"``: ``memory_bytes - dense_bytes_total -
    kv_bytes_per_token * batch_size * context_tokens - reserve_bytes``, with ``context_tokens``
    the trace's longest sequence and ``reserve_bytes`` 2 GiB unless given. ``figures`` names each
    term (for the config and for messages). A budget at or below zero is a ``ValueError``."""
    need_figures(model, AUTO_MODEL_FIGURES, 'cache_bytes="auto"', "model")
    context = int(longest_sequence if context_tokens is None else context_tokens)
    reserve = int(DEFAULT_RESERVE_BYTES if reserve_bytes is None else reserve_bytes)
    if context < 0 or reserve < 0:
        raise ValueError(f'cache_bytes="auto" needs context_tokens >= 0 and reserve_bytes >= 0, got {context} and {reserve}')
    kv = int(model.kv_bytes_per_token) * int(batch_size) * context
    budget = int(hardware.memory_bytes) - int(model.dense_bytes_total) - kv - reserve
    figures = {
        "memory_bytes": int(hardware.memory_bytes), "dense_bytes_total": int(model.dense_bytes_total),
        "kv_bytes": kv, "kv_bytes_per_token": int(model.kv_bytes_per_token), "batch_size": int(batch_size),
        "context_tokens": context, "reserve_bytes": reserve, "cache_bytes": budget,
    }
    if budget <= 0:
        raise ValueError(f'cache_bytes="auto" leaves no room for experts: {describe_budget(figures)}')
    return budget, figures


def describe_budget(f) -> str:
    return (
        f"{f['memory_bytes']} B of GPU memory - {f['dense_bytes_total']} B of dense weights - "
        f"{f['kv_bytes']} B of KV cache ({f['kv_bytes_per_token']} B/token x batch {f['batch_size']} x "
        f"{f['context_tokens']} tokens) - {f['reserve_bytes']} B reserve = {f['cache_bytes']} B"
    )
