"""``.npy`` routing arrays: ``(tokens, L, K)``, or per layer ``(L, steps, requests, K)``.

Loaded with pickling off, so an object array is refused, never unpickled.
"""
from __future__ import annotations

import numpy as np

from ...errors import TraceError
from .arrays import (
    NPY_MAGIC, build, check_layout, check_magic, fit_layers, int_array, metadata, per_layer,
    source_text, split_lengths, tokens_layers_topk,
)
from .base import ImportOptions, Reader, display

__all__ = ["NpyReader", "import_npy_file"]


def _load_npy(path):
    name = display(path)
    check_magic(path, NPY_MAGIC, ".npy")
    try:
        obj = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise TraceError(
                f"{name}: holds pickled Python objects; fastsim never unpickles, expected a "
                "plain integer array"
            ) from None
        raise TraceError(f"{name}: not a NumPy .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise TraceError(f"{name}: not a readable NumPy file ({exc})") from None
    return obj


def import_npy_file(src, options: ImportOptions):
    """Import one ``.npy`` array.

    ``tokens-layers-topk``: a ``(tokens, L, K)`` integer array, one sequence unless
    ``sequence_lengths`` splits it. ``per-layer``: ``(L, steps, requests, K)``, or
    ``(steps, requests, K)`` for a model with one MoE layer.
    """
    layout, sequence_lengths, dims = options.layout, options.sequence_lengths, options.dims
    check_layout(layout)
    where = display(src)
    arr = _load_npy(src)
    if layout == "tokens-layers-topk":
        arr = tokens_layers_topk(arr, where, dims)
        lengths = None if sequence_lengths is None else split_lengths(sequence_lengths, arr.shape[0], where)
    else:
        if sequence_lengths is not None:
            raise TraceError(f"{where}: sequence_lengths does not apply to the per-layer layout")
        arr = int_array(arr, where, (3, 4), "(layers, steps, requests, top_k)")
        if arr.ndim == 3:
            arr = arr[None]
        fit_layers(arr.shape[0], where, dims)
        layers = {layer: arr[layer] for layer in range(arr.shape[0])}
        arr, lengths = per_layer(layers, where, dims, {layer: f"layer {layer}" for layer in layers})
    meta = metadata("npy", src, import_layout=layout)
    return build(arr, lengths, None, dims, where, source_text("npy", src, layout), meta)


class NpyReader(Reader):
    name = "npy"
    suffixes = (".npy",)

    def read(self, path, options: ImportOptions):
        return import_npy_file(path, options)
