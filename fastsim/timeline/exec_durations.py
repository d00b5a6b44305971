"""The execution timeline's own durations (SPEC section 7), integer nanoseconds as in section 3:
a CPU execution, a zero-copy read and its compute, an NVMe read. Rules in ``docs/model.md``,
"Where a miss runs" and "Memory tiers"."""
from __future__ import annotations

import numpy as np

from .durations import to_ns

__all__ = ["execution_cost_tables"]


def execution_cost_tables(model, hardware, max_tokens: int, need_cpu: bool, need_nvme: bool):
    """``(cpu_ns (L, N + 1), zc_ns (L,), zc_compute_ns (N + 1,), nvme_ns (L,))`` for token counts
    up to ``N = max_tokens``; the CPU and NVMe tables are zeros when the replay does not use them
    (the caller has checked the figures exist when it does)."""
    sizes = model.layer_bytes()
    L = len(sizes)
    cpu_ns = np.zeros((L, max_tokens + 1), np.int64)
    zc_ns = np.zeros(L, np.int64)
    zc_compute_ns = np.zeros(max_tokens + 1, np.int64)
    nvme_ns = np.zeros(L, np.int64)
    rate = hardware.flops_per_s
    efficiency = getattr(hardware, "expert_efficiency", None)
    if efficiency is not None:
        rate = efficiency * rate  # as expert(n) does
    for n in range(1, max_tokens + 1):
        zc_compute_ns[n] = to_ns(hardware.launch_s + n * model.expert_flops_per_token / rate)
    for l, size in enumerate(sizes):
        zc_ns[l] = to_ns(size / hardware.h2d_bytes_per_s)
        if need_cpu:
            for n in range(1, max_tokens + 1):
                cpu_ns[l, n] = to_ns(hardware.cpu_overhead_s + max(
                    size / hardware.cpu_mem_bytes_per_s, n * model.expert_flops_per_token / hardware.cpu_flops_per_s
                ))
        if need_nvme:
            nvme_ns[l] = to_ns(size / hardware.nvme_bytes_per_s)
    return cpu_ns, zc_ns, zc_compute_ns, nvme_ns
