"""``.npz`` routing archives: one array per request, one ``experts`` array, or per-layer arrays.

Loaded with pickling off, so an object array is refused, never unpickled.
"""
from __future__ import annotations

import json
import re
import zipfile

import numpy as np

from ...errors import TraceError
from .arrays import (
    ZIP_MAGIC, build, check_layout, check_magic, fit_layers, int_array, metadata, natural_key,
    per_layer, source_text, split_lengths, tokens_layers_topk,
)
from .base import Dims, ImportOptions, Reader, display

__all__ = ["NpzReader", "import_npz_file"]


def _load_npz(path) -> dict[str, np.ndarray]:
    name = display(path)
    check_magic(path, ZIP_MAGIC, ".npz")
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise TraceError(f"{name}: holds pickled data; fastsim never unpickles") from None
        raise TraceError(f"{name}: not a NumPy .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise TraceError(f"{name}: not a readable NumPy archive ({exc})") from None
    out = {}
    with archive:
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError as exc:
                if "pickle" in str(exc).lower():
                    raise TraceError(
                        f"{name}: array {key!r} holds pickled Python objects; fastsim never "
                        "unpickles, expected a plain integer array"
                    ) from None
                raise TraceError(f"{name}: array {key!r} is unreadable ({exc})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise TraceError(f"{name}: array {key!r} is unreadable ({exc})") from None
    if not out:
        raise TraceError(f"{name}: the archive holds no arrays")
    return out


def import_npz_file(src, options: ImportOptions):
    """Import an ``.npz`` archive (see the module docstring)."""
    layout, sequence_lengths, dims = options.layout, options.sequence_lengths, options.dims
    check_layout(layout)
    where = display(src)
    arrays = _load_npz(src)
    meta = metadata("npz", src, import_layout=layout)
    scores = None
    if layout == "per-layer":
        if sequence_lengths is not None:
            raise TraceError(f"{where}: sequence_lengths does not apply to the per-layer layout")
        experts, lengths = _npz_per_layer(arrays, where, dims)
    elif "experts" in arrays:
        extra = sorted(set(arrays) - {"experts", "scores", "sequence_lengths"})
        if extra:
            raise TraceError(
                f"{where}: array {extra[0]!r} is not expected next to 'experts' (only "
                "'sequence_lengths' and 'scores')"
            )
        experts = tokens_layers_topk(arrays["experts"], f"{where}: array 'experts'", dims)
        if sequence_lengths is None and "sequence_lengths" in arrays:
            sequence_lengths = arrays["sequence_lengths"]
        lengths = (
            None
            if sequence_lengths is None
            else split_lengths(sequence_lengths, experts.shape[0], f"{where}: array 'sequence_lengths'")
        )
        if "scores" in arrays:
            scores = arrays["scores"]
            if scores.dtype.kind not in "fiu" or scores.shape != experts.shape:
                raise TraceError(
                    f"{where}: array 'scores' must be numbers of shape {experts.shape}, got "
                    f"{scores.dtype} {scores.shape}"
                )
    else:
        if sequence_lengths is not None:
            raise TraceError(
                f"{where}: sequence_lengths applies to an 'experts' array, but this archive holds "
                "one array per request"
            )
        keys = sorted(arrays, key=natural_key)
        pieces = []
        for key in keys:
            pieces.append(tokens_layers_topk(arrays[key], f"{where}: array {key!r}", dims))
        shapes = {p.shape[1:] for p in pieces}
        if len(shapes) > 1:
            a, b = sorted(shapes)[:2]
            raise TraceError(
                f"{where}: request arrays disagree on (layers, top_k): {a} and {b}; each array "
                "must be (tokens, layers, top_k) for the same model"
            )
        experts = np.concatenate(pieces, axis=0)
        lengths = np.asarray([p.shape[0] for p in pieces], dtype=np.int64)
        meta["request_ids"] = json.dumps(keys)
    return build(experts, lengths, scores, dims, where, source_text("npz", src, layout), meta)


def _npz_per_layer(arrays: dict[str, np.ndarray], where: str, dims: Dims):
    if len(arrays) == 1:
        key, arr = next(iter(arrays.items()))
        if arr.ndim == 4:
            arr = int_array(arr, f"{where}: array {key!r}", (4,), "(layers, steps, requests, top_k)")
            fit_layers(arr.shape[0], where, dims)
            layers = {layer: arr[layer] for layer in range(arr.shape[0])}
            return per_layer(layers, where, dims, {layer: f"{key}[{layer}]" for layer in layers})
    layers, names = {}, {}
    for key, arr in arrays.items():
        numbers = re.findall(r"\d+", key)
        if not numbers:
            raise TraceError(
                f"{where}: array {key!r} names no layer; per-layer arrays are named like 'layer_0'"
            )
        layer = int(numbers[-1])
        if dims.layers is not None:  # a model layer number: its place among the listed layers
            if layer not in dims.layers:
                raise TraceError(
                    f"{where}: array {key!r} is layer {layer}, not one of the listed layers "
                    f"{','.join(map(str, dims.layers))}"
                )
            layer = dims.layers.index(layer)
        if layer in layers:
            raise TraceError(f"{where}: arrays {names[layer]!r} and {key!r} both give layer {layer}")
        layers[layer], names[layer] = (
            int_array(arr, f"{where}: array {key!r}", (3,), "(steps, requests, top_k)"),
            key,
        )
    return per_layer(layers, where, dims, names)


class NpzReader(Reader):
    name = "npz"
    suffixes = (".npz",)

    def read(self, path, options: ImportOptions):
        return import_npz_file(path, options)
