"""MoE-Infinity's saved expert activation matrices as the ``moe-infinity`` strategy's starting
library (its ``library`` parameter).

MoE-Infinity keeps its library as ``ExpertTracer.trace_collection``, a ``(capacity, layers,
experts)`` array of per-request token counts, and ``ExpertTracer.load_trace`` reads one saved with
``numpy.save`` (``moe_infinity/memory/expert_tracer.py``). The loaded matrices are persistent:
``finish_entry`` fills empty slots, then replaces the least matched slot *after* them. This module
reads such a file and checks it against the trace, with one message naming the file and what is
wrong; docs/strategies/moe-infinity.md says how the strategy uses it.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = ["load_library"]


def load_library(path, num_layers: int, num_experts: int, params: dict) -> np.ndarray:
    """The ``(n, L, E)`` float64 matrices of ``path``, checked: ``n >= 1`` and at most the
    strategy's ``capacity``, finite counts ``>= 0``, no all-zero matrix (MoE-Infinity takes such
    a slot for an empty one)."""
    where = f"{path} (moe-infinity library)"
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{where}: no such file")
    if zipfile.is_zipfile(file):
        raise ConfigError(f"{where}: a .npz archive; save the (requests, layers, experts) array with numpy.save")
    try:
        matrices = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{where}: not a NumPy .npy array ({exc})") from None
    want = f"(requests, {num_layers}, {num_experts}): one matrix of token counts per request, layers x experts"
    if matrices.ndim != 3 or matrices.shape[1:] != (num_layers, num_experts):
        raise ConfigError(f"{where}: expected an array of shape {want}, got shape {matrices.shape}")
    if matrices.dtype.kind not in "biuf":
        raise ConfigError(f"{where}: expected numeric counts, got dtype {matrices.dtype}")
    n = matrices.shape[0]
    if n == 0:
        raise ConfigError(f"{where}: holds no matrices; expected shape {want}")
    capacity = int(params["capacity"])
    if n > capacity:
        raise ConfigError(f"{where}: holds {n} matrices, more than capacity = {capacity} (MoE-Infinity's "
                          "load_trace refuses that too); raise capacity or save fewer")
    counts = matrices.astype(np.float64)
    bad = ~np.isfinite(counts) | (counts < 0)
    if bad.any():
        i, j, e = (int(x) for x in np.argwhere(bad)[0])
        raise ConfigError(f"{where}: matrix {i}, layer {j}, expert {e} is {matrices[i, j, e].item()!r}; "
                          "expected a finite count >= 0")
    empty = np.flatnonzero(counts.sum(axis=(1, 2)) == 0)
    if empty.size:
        raise ConfigError(f"{where}: matrix {int(empty[0])} is all zeros; MoE-Infinity takes such a slot for "
                          "an empty one")
    return counts
