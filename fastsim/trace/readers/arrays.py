"""What the NumPy readers share: shape and id checks, the per-layer layout, building the trace.

Array logs hold ``(tokens, L, K)`` routing (one request, or several concatenated) or, per layer,
``(steps, requests, K)``. Every check names the file, the array and the index of the first
problem.
"""
from __future__ import annotations

import os
import re

import numpy as np

from ...errors import TraceError
from ..model import Trace
from .base import Dims, display, limit_text

ARRAY_LAYOUTS = ("tokens-layers-topk", "per-layer")


def check_layout(layout: str) -> None:
    if layout not in ARRAY_LAYOUTS:
        raise TraceError(
            f"unknown layout {layout!r} for NumPy imports; expected one of {', '.join(ARRAY_LAYOUTS)}"
        )


def source_text(fmt: str, src, layout: str | None = None) -> str:
    text = f"import {fmt} {os.path.basename(os.fspath(src))}"
    return text if layout in (None, "tokens-layers-topk") else f"{text} layout={layout}"


def metadata(fmt: str, src, **extra: str) -> dict[str, str]:
    meta = {"import_format": fmt, "import_file": os.path.basename(os.fspath(src))}
    meta.update(extra)
    return meta


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def check_magic(path, magic: bytes, what: str) -> None:
    """Refuse a file that is not what the format says before NumPy sees it (NumPy would try to
    unpickle anything without an .npy header, and then report it as pickled data)."""
    with open(path, "rb") as fh:
        head = fh.read(len(NPY_MAGIC))
    if not head.startswith(magic):
        other = next((k for m, k in ((NPY_MAGIC, "npy"), (ZIP_MAGIC, "npz")) if head.startswith(m)), None)
        hint = f"; it is an .{other} file, import it with format {other}" if other else ""
        raise TraceError(f"{display(path)}: not a NumPy {what} file{hint}")


def natural_key(text: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def int_array(arr: np.ndarray, where: str, ndim: tuple[int, ...], shape_text: str) -> np.ndarray:
    if arr.dtype.kind not in "iu":
        raise TraceError(f"{where}: expected integer expert ids, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        raise TraceError(f"{where}: expected shape {shape_text}, got {arr.ndim} dimensions {arr.shape}")
    return arr


def check_ids(arr: np.ndarray, where: str, dims: Dims, axes: tuple[str, ...]) -> None:
    """Refuse ids below -1 or at least ``E``, naming the first one by its array index."""
    if not arr.size:
        return
    lo, hi = int(arr.min()), int(arr.max())
    limit = dims.num_experts
    if lo >= -1 and (limit is None or hi < limit):
        return
    bad = (arr < -1) if limit is None else ((arr < -1) | (arr >= limit))
    index = np.argwhere(bad)[0]
    value = int(arr[tuple(index)])
    place = ", ".join(f"{axis} {int(i)}" for axis, i in zip(axes, index))
    if value < -1:
        expected = "-1 (a gap) or a non-negative id"
    else:
        expected = f"-1 or 0..{limit - 1} ({limit_text(dims, 'num_experts')})"
    raise TraceError(f"{where}: expert id {value} at {place} is out of range: expected {expected}")


def fit_k(arr: np.ndarray, where: str, dims: Dims, k_axis: int = -1) -> np.ndarray:
    if dims.top_k is not None and arr.shape[k_axis] != dims.top_k:
        raise TraceError(
            f"{where}: {arr.shape[k_axis]} experts per row, but {limit_text(dims, 'top_k')}"
        )
    return arr


def fit_layers(count: int, where: str, dims: Dims) -> None:
    if dims.num_layers is not None and count != dims.num_layers:
        raise TraceError(
            f"{where}: {count} layers, but {limit_text(dims, 'num_layers')}"
        )


def build(experts, lengths, scores, dims: Dims, where: str, source: str, metadata) -> Trace:
    """Make the Trace, inferring ``E`` when unknown; Trace's own errors get the file name."""
    num_experts = dims.num_experts
    if num_experts is None:
        num_experts = max(int(experts.max()) + 1, 1) if experts.size else 1
    try:
        return Trace.from_arrays(
            experts,
            num_experts=num_experts,
            sequence_lengths=lengths,
            scores=scores,
            model=dims.model,
            source=source,
            metadata=metadata,
        )
    except TraceError as exc:
        raise TraceError(f"{where}: {exc}") from None


def split_lengths(sequence_lengths, tokens: int, where: str) -> np.ndarray:
    lengths = np.asarray(sequence_lengths)
    if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
        raise TraceError(f"{where}: sequence_lengths must be a 1-D list of integers")
    lengths = lengths.astype(np.int64)
    if lengths.size and lengths.min() < 0:
        raise TraceError(f"{where}: sequence_lengths holds a negative length")
    if int(lengths.sum()) != tokens:
        raise TraceError(
            f"{where}: sequence_lengths add up to {int(lengths.sum())} tokens but the array has {tokens}"
        )
    return lengths


def tokens_layers_topk(arr, where: str, dims: Dims) -> np.ndarray:
    arr = int_array(arr, where, (3,), "(tokens, layers, top_k)")
    fit_layers(arr.shape[1], where, dims)
    fit_k(arr, where, dims)
    check_ids(arr, where, dims, ("token", "layer", "slot"))
    return arr


def per_layer(layers: dict[int, np.ndarray], where: str, dims: Dims, names: dict[int, str]):
    """``{layer: (steps, requests, K)}`` -> ``(experts (tokens, L, K), lengths (requests,))``.

    A request's sequence runs from its first to its last step with any id >= 0 in any layer;
    steps outside that span are trimmed (not started or finished), steps inside it are kept, all
    -1 when nothing was recorded. A request with no id at all becomes a zero-length sequence, so
    request ``r`` stays sequence ``r``. Layers with no array are all -1.
    """
    first = next(iter(layers.values()))
    steps, requests, top_k = first.shape
    for layer, arr in layers.items():
        if arr.shape != first.shape:
            raise TraceError(
                f"{where}: array {names[layer]!r} has shape {arr.shape} but "
                f"{names[min(layers)]!r} has {first.shape}; per-layer arrays must agree"
            )
        fit_k(arr, f"{where}: array {names[layer]!r}", dims)
        check_ids(arr, f"{where}: array {names[layer]!r}", dims, ("step", "request", "slot"))
    top = max(layers)
    num_layers = dims.num_layers if dims.num_layers is not None else top + 1
    if top >= num_layers:
        raise TraceError(
            f"{where}: array {names[top]!r} is layer {top}, but {limit_text(dims, 'num_layers')}"
        )
    # The narrowest signed dtype holding every input id and -1: these arrays can be large.
    dtype = np.result_type(np.int16, *(arr.dtype for arr in layers.values()))
    if dtype.kind != "i":  # uint64 promotes to float; ids that large fail the range check anyway
        dtype = np.dtype(np.int64)
    stacked = np.full((num_layers, steps, requests, top_k), -1, dtype=dtype)
    for layer, arr in layers.items():
        stacked[layer] = arr
    active = (stacked >= 0).any(axis=(0, 3))  # (steps, requests)
    pieces, lengths = [], np.zeros(requests, dtype=np.int64)
    for r in range(requests):
        seen = np.flatnonzero(active[:, r])
        if seen.size:
            lo, hi = int(seen[0]), int(seen[-1]) + 1
            pieces.append(stacked[:, lo:hi, r, :].transpose(1, 0, 2))
            lengths[r] = hi - lo
    if pieces:
        experts = np.concatenate(pieces, axis=0)
    else:
        experts = np.zeros((0, num_layers, top_k), dtype=dtype)
    return experts, lengths
