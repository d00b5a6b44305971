"""Import routing logs written by serving engines as :class:`~fastsim.trace.model.Trace` objects.

Four formats, all described in ``docs/importing.md``:

- ``npy``: one NumPy array. Layout ``tokens-layers-topk`` (the default): ``(tokens, L, K)``, one
  sequence unless ``sequence_lengths`` splits it. Layout ``per-layer``: ``(L, steps, requests, K)``,
  or ``(steps, requests, K)`` for a single layer.
- ``npz``: several NumPy arrays. Layout ``tokens-layers-topk``: either an ``experts`` array
  (optionally with ``sequence_lengths`` and ``scores`` arrays) or one ``(tokens, L, K)`` array per
  request, requests ordered by a natural sort of the array names. Layout ``per-layer``: one
  ``(steps, requests, K)`` array per layer, the layer taken from the last number in the array name
  (``layer_0``, ``layer_1``, ...), or a single ``(L, steps, requests, K)`` array.
- ``jsonl``: one JSON object per line, one per (request, token, layer).
- ``csv``: a header row, then one row per (request, token, layer).

NumPy files are always loaded with pickling off, so an object array is refused, never unpickled.
Gaps are tolerated (missing tokens, layers or experts become ``-1`` entries); contradictions (a
layer given twice for one token, an id out of range, more than ``K`` experts in one row, a repeated
id in one row) raise :class:`~fastsim.errors.TraceError` naming the file and the line or array.
"""
from __future__ import annotations

import csv
import json
import os
import re
import zipfile
from dataclasses import dataclass
from itertools import chain
from typing import Any, Mapping

import numpy as np

from ..errors import TraceError
from .model import Trace, expert_dtype

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "FIELD_ALIASES",
    "import_trace",
    "import_npy",
    "import_npz",
    "import_jsonl",
    "import_csv",
    "parse_field_options",
]

FORMATS = ("npy", "npz", "jsonl", "csv")
LAYOUTS = ("tokens-layers-topk", "per-layer")

# Names tried, in order, for each role of a JSON Lines record or CSV column when the caller does
# not name the field. ``layer`` and ``experts`` are required; the others are optional.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "request": ("request_id", "req_id", "seq_id", "sequence"),
    "token": ("token_idx", "token_pos", "position", "token"),
    "layer": ("layer", "layer_id"),
    "experts": ("experts", "topk_ids", "expert_ids"),
    "scores": ("gating_probs", "topk_weights", "scores"),
}
_REQUIRED_ROLES = ("layer", "experts")
# CSV only: prefixes of one-column-per-slot layouts (``expert_0 .. expert_{K-1}``), tried after the
# role's own names.
_COLUMN_PREFIXES = {"experts": ("expert",), "scores": ("score", "weight")}

# A log whose token positions would need far more rows than it has records is almost surely
# misread (a timestamp taken for a position, say); refuse it instead of allocating the gap.
_MAX_ROWS_PER_RECORD = 64
_MIN_ROW_ALLOWANCE = 1 << 20

_SUFFIXES = {".npy": "npy", ".npz": "npz", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


# ---------------------------------------------------------------------------------- dimensions
@dataclass
class _Dims:
    """Known trace dimensions (``None`` = infer from the data) and where they came from."""

    model: str | None = None
    num_experts: int | None = None
    num_layers: int | None = None
    top_k: int | None = None


def _model_profile(model):
    """Load a model profile (kept as one indirection so tests can stand in a fake)."""
    from ..profiles import model_profile

    return model_profile(model)


def _positive(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise TraceError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _resolve_dims(model, num_experts, num_layers, top_k) -> _Dims:
    """Merge the model profile's ``E, L, K`` with explicit numbers; a disagreement is an error."""
    given = {
        "num_experts": _positive(num_experts, "num_experts"),
        "num_layers": _positive(num_layers, "num_layers"),
        "top_k": _positive(top_k, "top_k"),
    }
    if model is None:
        return _Dims(None, **given)
    profile = _model_profile(model)
    dims = _Dims(str(profile.name))
    for key, value in given.items():
        own = int(getattr(profile, key))
        if value is not None and value != own:
            raise TraceError(f"{key}={value} contradicts model {dims.model!r}, which has {key}={own}")
        setattr(dims, key, own)
    return dims


def _limit_text(dims: _Dims, key: str) -> str:
    """A known limit and where it came from, for error messages: ``top_k=2 of model 'x'``."""
    origin = f"of model {dims.model!r}" if dims.model is not None else "as given"
    return f"{key}={getattr(dims, key)} {origin}"


# ---------------------------------------------------------------------------------- entry point
def import_trace(
    src,
    format: str | None = None,
    *,
    model=None,
    num_experts: int | None = None,
    num_layers: int | None = None,
    top_k: int | None = None,
    layout: str = "tokens-layers-topk",
    fields: Mapping[str, str | None] | None = None,
    sequence_lengths=None,
) -> Trace:
    """Import a routing log as a :class:`Trace`.

    Parameters
    ----------
    src : str or path
        The log file.
    format : {"npy", "npz", "jsonl", "csv"}, optional
        Defaults to the file suffix (``.npy``, ``.npz``, ``.jsonl``/``.ndjson``, ``.csv``).
    model : str, path or mapping, optional
        A model profile; gives ``E``, ``L`` and ``K`` and is recorded as the trace's model.
    num_experts, num_layers, top_k : int, optional
        Explicit ``E``, ``L``, ``K``. With ``model`` they must agree with the profile. Without
        either, ``E`` is the largest id seen plus one, ``L`` the largest layer plus one (JSON
        Lines, CSV) or the array's layer axis, and ``K`` the widest row.
    layout : {"tokens-layers-topk", "per-layer"}
        How NumPy arrays are laid out (see the module docstring); text formats ignore it.
    fields : mapping role -> name, optional
        JSON Lines / CSV field names for the roles ``request``, ``token``, ``layer``, ``experts``,
        ``scores``; ``None`` or ``""`` switches an optional role off. Unnamed roles try
        :data:`FIELD_ALIASES` in order.
    sequence_lengths : sequence of int, optional
        Splits a single ``(tokens, L, K)`` array into requests (``npy``, or ``npz`` with an
        ``experts`` array).

    Returns
    -------
    Trace
        ``experts`` is ``(tokens, L, K)`` int16 (int32 when ``E > 32767``) with ``-1`` for gaps;
        ``source`` names the format and the file's base name.

    Raises
    ------
    TraceError
        Naming the file and the line (text) or array (NumPy) of the first problem.
    """
    fmt = _format_of(src, format)
    common = dict(model=model, num_experts=num_experts, num_layers=num_layers, top_k=top_k)
    if fmt in ("jsonl", "csv"):
        if sequence_lengths is not None:
            raise TraceError(f"sequence_lengths applies to npy and npz imports, not {fmt}")
        reader = import_jsonl if fmt == "jsonl" else import_csv
        return reader(src, fields=fields, **common)
    if fields:
        raise TraceError(f"field names apply to jsonl and csv imports, not {fmt}")
    reader = import_npy if fmt == "npy" else import_npz
    return reader(src, layout=layout, sequence_lengths=sequence_lengths, **common)


def _format_of(src, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise TraceError(f"unknown import format {format!r}; expected one of {', '.join(FORMATS)}")
        return format
    suffix = os.path.splitext(os.fspath(src))[1].lower()
    if suffix not in _SUFFIXES:
        raise TraceError(
            f"{os.fspath(src)}: cannot tell the format from the suffix {suffix!r}; give one of "
            f"{', '.join(FORMATS)}"
        )
    return _SUFFIXES[suffix]


def parse_field_options(items) -> dict[str, str | None]:
    """Turn ``["experts=topk_ids", "token="]`` into ``{"experts": "topk_ids", "token": None}``."""
    out: dict[str, str | None] = {}
    for item in items or ():
        role, sep, name = str(item).partition("=")
        role = role.strip()
        if not sep or role not in FIELD_ALIASES:
            raise TraceError(
                f"field option {item!r} must be ROLE=NAME with ROLE one of {', '.join(FIELD_ALIASES)}"
            )
        out[role] = name.strip() or None
    return out


def _display(src) -> str:
    return os.fspath(src)


def _source(fmt: str, src, layout: str | None = None) -> str:
    text = f"import {fmt} {os.path.basename(os.fspath(src))}"
    return text if layout in (None, "tokens-layers-topk") else f"{text} layout={layout}"


def _metadata(fmt: str, src, **extra: str) -> dict[str, str]:
    meta = {"import_format": fmt, "import_file": os.path.basename(os.fspath(src))}
    meta.update(extra)
    return meta


# ---------------------------------------------------------------------------------- NumPy
def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise TraceError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _check_magic(path, magic: bytes, what: str) -> None:
    """Refuse a file that is not what the format says before NumPy sees it (NumPy would try to
    unpickle anything without an .npy header, and then report it as pickled data)."""
    with open(path, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if not head.startswith(magic):
        other = next((k for m, k in ((_NPY_MAGIC, "npy"), (_ZIP_MAGIC, "npz")) if head.startswith(m)), None)
        hint = f"; it is an .{other} file, import it with format {other}" if other else ""
        raise TraceError(f"{_display(path)}: not a NumPy {what} file{hint}")


def _load_npy(path):
    name = _display(path)
    _check_magic(path, _NPY_MAGIC, ".npy")
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


def _load_npz(path) -> dict[str, np.ndarray]:
    name = _display(path)
    _check_magic(path, _ZIP_MAGIC, ".npz")
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


def _natural_key(text: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def _int_array(arr: np.ndarray, where: str, ndim: tuple[int, ...], shape_text: str) -> np.ndarray:
    if arr.dtype.kind not in "iu":
        raise TraceError(f"{where}: expected integer expert ids, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        raise TraceError(f"{where}: expected shape {shape_text}, got {arr.ndim} dimensions {arr.shape}")
    return arr


def _check_ids(arr: np.ndarray, where: str, dims: _Dims, axes: tuple[str, ...]) -> None:
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
        expected = f"-1 or 0..{limit - 1} ({_limit_text(dims, 'num_experts')})"
    raise TraceError(f"{where}: expert id {value} at {place} is out of range: expected {expected}")


def _fit_k(arr: np.ndarray, where: str, dims: _Dims, k_axis: int = -1) -> np.ndarray:
    if dims.top_k is not None and arr.shape[k_axis] != dims.top_k:
        raise TraceError(
            f"{where}: {arr.shape[k_axis]} experts per row, but {_limit_text(dims, 'top_k')}"
        )
    return arr


def _fit_layers(count: int, where: str, dims: _Dims) -> None:
    if dims.num_layers is not None and count != dims.num_layers:
        raise TraceError(
            f"{where}: {count} layers, but {_limit_text(dims, 'num_layers')}"
        )


def _build(experts, lengths, scores, dims: _Dims, where: str, source: str, metadata) -> Trace:
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


def _split_lengths(sequence_lengths, tokens: int, where: str) -> np.ndarray:
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


def _tokens_layers_topk(arr, where: str, dims: _Dims) -> np.ndarray:
    arr = _int_array(arr, where, (3,), "(tokens, layers, top_k)")
    _fit_layers(arr.shape[1], where, dims)
    _fit_k(arr, where, dims)
    _check_ids(arr, where, dims, ("token", "layer", "slot"))
    return arr


def _per_layer(layers: dict[int, np.ndarray], where: str, dims: _Dims, names: dict[int, str]):
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
        _fit_k(arr, f"{where}: array {names[layer]!r}", dims)
        _check_ids(arr, f"{where}: array {names[layer]!r}", dims, ("step", "request", "slot"))
    top = max(layers)
    num_layers = dims.num_layers if dims.num_layers is not None else top + 1
    if top >= num_layers:
        raise TraceError(
            f"{where}: array {names[top]!r} is layer {top}, but {_limit_text(dims, 'num_layers')}"
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


def import_npy(
    src,
    *,
    model=None,
    num_experts=None,
    num_layers=None,
    top_k=None,
    layout: str = "tokens-layers-topk",
    sequence_lengths=None,
) -> Trace:
    """Import one ``.npy`` array; see :func:`import_trace` for the parameters.

    ``tokens-layers-topk``: a ``(tokens, L, K)`` integer array, one sequence unless
    ``sequence_lengths`` splits it. ``per-layer``: ``(L, steps, requests, K)``, or
    ``(steps, requests, K)`` for a model with one MoE layer.
    """
    _check_layout(layout)
    where = _display(src)
    dims = _resolve_dims(model, num_experts, num_layers, top_k)
    arr = _load_npy(src)
    if layout == "tokens-layers-topk":
        arr = _tokens_layers_topk(arr, where, dims)
        lengths = None if sequence_lengths is None else _split_lengths(sequence_lengths, arr.shape[0], where)
    else:
        if sequence_lengths is not None:
            raise TraceError(f"{where}: sequence_lengths does not apply to the per-layer layout")
        arr = _int_array(arr, where, (3, 4), "(layers, steps, requests, top_k)")
        if arr.ndim == 3:
            arr = arr[None]
        _fit_layers(arr.shape[0], where, dims)
        layers = {layer: arr[layer] for layer in range(arr.shape[0])}
        arr, lengths = _per_layer(layers, where, dims, {layer: f"layer {layer}" for layer in layers})
    meta = _metadata("npy", src, import_layout=layout)
    return _build(arr, lengths, None, dims, where, _source("npy", src, layout), meta)


def import_npz(
    src,
    *,
    model=None,
    num_experts=None,
    num_layers=None,
    top_k=None,
    layout: str = "tokens-layers-topk",
    sequence_lengths=None,
) -> Trace:
    """Import an ``.npz`` archive; see :func:`import_trace` and the module docstring."""
    _check_layout(layout)
    where = _display(src)
    dims = _resolve_dims(model, num_experts, num_layers, top_k)
    arrays = _load_npz(src)
    meta = _metadata("npz", src, import_layout=layout)
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
        experts = _tokens_layers_topk(arrays["experts"], f"{where}: array 'experts'", dims)
        if sequence_lengths is None and "sequence_lengths" in arrays:
            sequence_lengths = arrays["sequence_lengths"]
        lengths = (
            None
            if sequence_lengths is None
            else _split_lengths(sequence_lengths, experts.shape[0], f"{where}: array 'sequence_lengths'")
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
        keys = sorted(arrays, key=_natural_key)
        pieces = []
        for key in keys:
            pieces.append(_tokens_layers_topk(arrays[key], f"{where}: array {key!r}", dims))
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
    return _build(experts, lengths, scores, dims, where, _source("npz", src, layout), meta)


def _npz_per_layer(arrays: dict[str, np.ndarray], where: str, dims: _Dims):
    if len(arrays) == 1:
        key, arr = next(iter(arrays.items()))
        if arr.ndim == 4:
            arr = _int_array(arr, f"{where}: array {key!r}", (4,), "(layers, steps, requests, top_k)")
            _fit_layers(arr.shape[0], where, dims)
            layers = {layer: arr[layer] for layer in range(arr.shape[0])}
            return _per_layer(layers, where, dims, {layer: f"{key}[{layer}]" for layer in layers})
    layers, names = {}, {}
    for key, arr in arrays.items():
        numbers = re.findall(r"\d+", key)
        if not numbers:
            raise TraceError(
                f"{where}: array {key!r} names no layer; per-layer arrays are named like 'layer_0'"
            )
        layer = int(numbers[-1])
        if layer in layers:
            raise TraceError(f"{where}: arrays {names[layer]!r} and {key!r} both give layer {layer}")
        layers[layer], names[layer] = (
            _int_array(arr, f"{where}: array {key!r}", (3,), "(steps, requests, top_k)"),
            key,
        )
    return _per_layer(layers, where, dims, names)


# ---------------------------------------------------------------------------------- text formats
class _Records:
    """Columns collected from a text log, one entry per record, converted to arrays in bulk."""

    def __init__(self, has_token: bool):
        self.lines: list[int] = []
        self.request: list[int] = []  # dense request index, first-appearance order
        self.request_ids: list[Any] = []
        self._request_index: dict[Any, int] = {}
        self.token: list[Any] | None = [] if has_token else None
        self.layer: list[Any] = []
        self.experts: list[list] = []
        self.scores: list[list | None] = []
        self.any_scores = False

    def request_of(self, rid, where: str, line: int) -> int:
        try:
            idx = self._request_index.get(rid)
        except TypeError:
            raise TraceError(f"{where} line {line}: request id {rid!r} must be a string or integer") from None
        if idx is None:
            idx = self._request_index[rid] = len(self.request_ids)
            self.request_ids.append(rid)
        return idx


def _ints(values: list, lines: np.ndarray, what: str, where: str, counts=None) -> np.ndarray:
    """Values as int64, or an error naming the line of the first one that is not an integer."""
    try:
        arr = np.asarray(values) if values else np.zeros(0, dtype=np.int64)
    except (ValueError, OverflowError, TypeError):
        arr = None
    if arr is not None and arr.dtype.kind in "iu" and arr.ndim == 1:
        return arr.astype(np.int64, copy=False)
    for i, v in enumerate(values):
        if type(v) is not int or not (-(2**62) < v < 2**62):
            rec = i if counts is None else int(np.searchsorted(np.cumsum(counts), i, side="right"))
            raise TraceError(f"{where} line {int(lines[rec])}: {what} {v!r} is not an integer")
    raise TraceError(f"{where}: {what} values are not integers")  # pragma: no cover


def _floats(values: list, lines: np.ndarray, what: str, where: str, counts) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64) if values else np.zeros(0)
        if arr.ndim == 1:
            return arr
    except (ValueError, TypeError):
        pass
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            rec = int(np.searchsorted(np.cumsum(counts), i, side="right"))
            raise TraceError(f"{where} line {int(lines[rec])}: {what} {v!r} is not a number")
    raise TraceError(f"{where}: {what} values are not numbers")  # pragma: no cover


def _padded(flat: np.ndarray, counts: np.ndarray, fill, dtype) -> np.ndarray:
    """Ragged rows (``flat`` split by ``counts``) as an ``(n, max count)`` matrix padded by ``fill``."""
    width = int(counts.max()) if counts.size else 0
    out = np.full((counts.size, width), fill, dtype=dtype)
    if flat.size:
        out[np.arange(width)[None, :] < counts[:, None]] = flat
    return out


def _request_label(rid) -> str:
    return "the log (no request field)" if rid is None else f"request {rid!r}"


def _assemble(rec: _Records, dims: _Dims, fmt: str, src, has_token: bool) -> Trace:
    """Records -> Trace: check every contradiction in bulk, naming the line of the first one."""
    where = _display(src)
    n = len(rec.lines)
    lines = np.asarray(rec.lines, dtype=np.int64)
    if n == 0:
        raise TraceError(f"{where}: holds no routing records")
    req = np.asarray(rec.request, dtype=np.int64)
    layer = _ints(rec.layer, lines, "layer", where)

    # Layers.
    if layer.min() < 0:
        i = int(np.flatnonzero(layer < 0)[0])
        raise TraceError(f"{where} line {lines[i]}: layer {layer[i]} is negative")
    num_layers = dims.num_layers if dims.num_layers is not None else int(layer.max()) + 1
    if layer.max() >= num_layers:
        i = int(np.flatnonzero(layer >= num_layers)[0])
        raise TraceError(
            f"{where} line {lines[i]}: layer {layer[i]} is out of range: "
            f"layers are 0..{num_layers - 1} ({_limit_text(dims, 'num_layers')})"
        )

    # Experts: ragged lists -> (n, width) padded with -1; trailing -1 entries are padding, so
    # a row needs as many slots as its last real id's position plus one.
    counts = np.fromiter(map(len, rec.experts), dtype=np.int64, count=n)
    flat = _ints(list(chain.from_iterable(rec.experts)), lines, "expert id", where, counts)
    rows = _padded(flat, counts, -1, np.int64)
    if rows.shape[1]:
        real = rows >= 0
        needed = np.where(real.any(axis=1), rows.shape[1] - np.argmax(real[:, ::-1], axis=1), 0)
    else:
        needed = np.zeros(n, dtype=np.int64)
    top_k = dims.top_k if dims.top_k is not None else max(int(needed.max()), 1)
    if needed.max() > top_k:
        i = int(np.flatnonzero(needed > top_k)[0])
        raise TraceError(
            f"{where} line {lines[i]}: {int(needed[i])} experts in one row, more than "
            f"{_limit_text(dims, 'top_k')}"
        )
    if rows.shape[1] < top_k:
        rows = np.concatenate([rows, np.full((n, top_k - rows.shape[1]), -1, np.int64)], axis=1)
    rows = rows[:, :top_k]
    bad = (rows < -1) | (rows >= dims.num_experts if dims.num_experts is not None else False)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        value = int(rows[i][bad[i]][0])
        expected = (
            "-1 (a gap) or a non-negative id"
            if value < -1
            else f"-1 or 0..{dims.num_experts - 1} ({_limit_text(dims, 'num_experts')})"
        )
        raise TraceError(f"{where} line {lines[i]}: expert id {value} is out of range: expected {expected}")
    ordered = np.sort(rows, axis=1)
    repeat = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1)
    if repeat.any():
        i = int(np.flatnonzero(repeat)[0])
        same = ordered[i, 1:][(ordered[i, 1:] == ordered[i, :-1]) & (ordered[i, 1:] >= 0)][0]
        raise TraceError(f"{where} line {lines[i]}: expert id {int(same)} repeated in one row")

    scores = None
    if rec.any_scores:
        scores = np.full((n, top_k), np.nan, dtype=np.float64)
        have = np.fromiter((s is not None for s in rec.scores), dtype=bool, count=n)
        picked = [s for s in rec.scores if s is not None]
        score_counts = np.fromiter(map(len, picked), dtype=np.int64, count=len(picked))
        if not np.array_equal(score_counts, counts[have]):
            i = int(np.flatnonzero(have)[np.flatnonzero(score_counts != counts[have])[0]])
            raise TraceError(
                f"{where} line {lines[i]}: {len(rec.scores[i])} scores for {int(counts[i])} experts"
            )
        flat_scores = _floats(list(chain.from_iterable(picked)), lines[have], "score", where, score_counts)
        padded = _padded(flat_scores, score_counts, np.nan, np.float64)
        width = min(padded.shape[1], top_k)
        scores[np.flatnonzero(have)[:, None], np.arange(width)[None, :]] = padded[:, :width]

    # Requests, in numeric order when every id is an integer, else in order of first appearance.
    ids = rec.request_ids
    if ids and all(type(r) is int for r in ids):
        order = np.asarray(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        req = rank[req]
        ids = [ids[i] for i in order]
    num_requests = len(ids)

    # Token positions: given, or the record's rank among its request's records of that layer.
    if has_token:
        pos = _ints(rec.token, lines, "token position", where)
        if pos.min() < 0:
            i = int(np.flatnonzero(pos < 0)[0])
            raise TraceError(f"{where} line {lines[i]}: token position {pos[i]} is negative")
    else:
        order = np.lexsort((np.arange(n), layer, req))
        group = req[order] * num_layers + layer[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        pos = np.empty(n, dtype=np.int64)
        pos[order] = rank
    first = np.full(num_requests, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(num_requests, -1, dtype=np.int64)
    np.minimum.at(first, req, pos)
    np.maximum.at(last, req, pos)
    lengths = last - first + 1
    total = int(lengths.sum())
    if total > max(_MAX_ROWS_PER_RECORD * n, _MIN_ROW_ALLOWANCE):
        r = int(np.argmax(lengths))
        raise TraceError(
            f"{where}: {_request_label(ids[r])} spans token positions {first[r]}..{last[r]}, far more "
            f"rows than the {n} records of the file fill; check the token field"
        )
    offsets = np.zeros(num_requests + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    row = offsets[req] + pos - first[req]

    # A (request, token, layer) given twice is a contradiction: name both lines.
    key = row * num_layers + layer
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if dup.size:
        later = order[dup + 1]
        j = int(np.argmin(later))
        i_first, i_second = int(order[dup[j]]), int(later[j])
        raise TraceError(
            f"{where} line {lines[i_second]}: layer {layer[i_second]} of token {pos[i_second]} of "
            f"{_request_label(ids[req[i_second]])} was already given on line {lines[i_first]}"
        )

    num_experts = dims.num_experts if dims.num_experts is not None else max(int(rows.max()) + 1, 1)
    experts = np.full((total, num_layers, top_k), -1, dtype=expert_dtype(num_experts))
    experts[row, layer] = rows
    trace_scores = None
    if scores is not None:
        trace_scores = np.full((total, num_layers, top_k), np.nan, dtype=np.float32)
        trace_scores[row, layer] = scores
    meta = _metadata(fmt, src, request_ids=json.dumps(ids, default=str))
    if first.any():
        meta["first_positions"] = json.dumps(first.tolist())
    built = _Dims(dims.model, num_experts, num_layers, top_k)
    return _build(experts, lengths, trace_scores, built, where, _source(fmt, src), meta)


def _role_names(fields: Mapping[str, str | None] | None) -> dict[str, tuple[str, ...]]:
    """Candidate field names per role; an empty tuple switches an optional role off."""
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(FIELD_ALIASES))
    if unknown:
        raise TraceError(f"unknown field role {unknown[0]!r}; expected one of {', '.join(FIELD_ALIASES)}")
    out = {}
    for role, aliases in FIELD_ALIASES.items():
        if role in fields:
            name = fields[role]
            if not name:
                if role in _REQUIRED_ROLES:
                    raise TraceError(f"the {role} field is required and cannot be switched off")
                out[role] = ()
            else:
                out[role] = (str(name),)
        else:
            out[role] = aliases
    return out


def _pick(role: str, names: tuple[str, ...], present, where: str, line: int, given: bool) -> str | None:
    for name in names:
        if name in present:
            return name
    if role in _REQUIRED_ROLES:
        what = f"field {names[0]!r}" if given else f"any of the fields {', '.join(map(repr, names))}"
        raise TraceError(f"{where} line {line}: no {role} given: expected {what}")
    return None


def import_jsonl(
    src,
    *,
    model=None,
    num_experts=None,
    num_layers=None,
    top_k=None,
    fields: Mapping[str, str | None] | None = None,
) -> Trace:
    """Import a JSON Lines routing log: one object per (request, token, layer).

    Field names are taken from the first record (see :func:`import_trace` for ``fields``); every
    later record must carry the same request, token, layer and experts fields, while scores may
    be missing or ``null`` on any record (its scores become NaN). ``experts`` is a list of ids, best
    first (``-1`` = lost), or a single id. Blank lines are skipped.
    """
    where = _display(src)
    dims = _resolve_dims(model, num_experts, num_layers, top_k)
    candidates = _role_names(fields)
    given = set(fields or ())
    loads = json.JSONDecoder().decode  # skips json.loads' per-call argument handling
    rec: _Records | None = None
    f_req = f_tok = f_layer = f_exp = None
    score_names = candidates["scores"]
    # Binary lines decoded one by one, so undecodable bytes are reported on their own line.
    with open(src, "rb") as fh:
        for line, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = loads(raw.decode("utf-8-sig" if line == 1 else "utf-8"))
            except UnicodeDecodeError:
                raise TraceError(f"{where} line {line}: not UTF-8 text; is this a JSON Lines file?") from None
            except ValueError as exc:
                raise TraceError(f"{where} line {line}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
            if type(obj) is not dict:
                raise TraceError(f"{where} line {line}: expected a JSON object, got {type(obj).__name__}")
            if rec is None:
                f_req = _pick("request", candidates["request"], obj, where, line, "request" in given)
                f_tok = _pick("token", candidates["token"], obj, where, line, "token" in given)
                f_layer = _pick("layer", candidates["layer"], obj, where, line, "layer" in given)
                f_exp = _pick("experts", candidates["experts"], obj, where, line, "experts" in given)
                for role, name in (("request", f_req), ("token", f_tok)):
                    if name is None and role in given and candidates[role]:
                        raise TraceError(f"{where} line {line}: no field {candidates[role][0]!r} ({role})")
                rec = _Records(f_tok is not None)
            try:
                rid = obj[f_req] if f_req is not None else None
                layer = obj[f_layer]
                experts = obj[f_exp]
                if f_tok is not None:
                    rec.token.append(obj[f_tok])
            except KeyError as exc:
                raise TraceError(f"{where} line {line}: missing field {exc.args[0]!r}") from None
            if type(experts) is not list:
                if type(experts) is int:
                    experts = [experts]
                else:
                    raise TraceError(
                        f"{where} line {line}: field {f_exp!r} must be a list of expert ids, "
                        f"got {type(experts).__name__}"
                    )
            score = None
            for name in score_names:
                if name in obj:
                    score = obj[name]
                    break
            if score is not None:
                if type(score) is not list:
                    score = [score] if isinstance(score, (int, float)) and not isinstance(score, bool) else score
                if type(score) is not list:
                    raise TraceError(f"{where} line {line}: scores must be a list of numbers")
                if len(score) != len(experts):
                    raise TraceError(
                        f"{where} line {line}: {len(score)} scores for {len(experts)} experts"
                    )
                rec.any_scores = True
            rec.lines.append(line)
            rec.request.append(rec.request_of(rid, where, line))
            rec.layer.append(layer)
            rec.experts.append(experts)
            rec.scores.append(score)
    if rec is None:
        raise TraceError(f"{where}: holds no routing records")
    return _assemble(rec, dims, "jsonl", src, f_tok is not None)


_ID_SEPARATORS = re.compile(r"[\s,;|]+")


def _cell_ids(cell: str, where: str, line: int) -> list[int]:
    text = cell.strip().strip("[](){}").strip()
    if not text:
        return []
    try:
        return [int(part) for part in _ID_SEPARATORS.split(text) if part]
    except ValueError:
        raise TraceError(f"{where} line {line}: cannot read expert ids from {cell!r}") from None


def _cell_floats(cell: str, where: str, line: int) -> list[float]:
    text = cell.strip().strip("[](){}").strip()
    if not text:
        return []
    try:
        return [float(part) for part in _ID_SEPARATORS.split(text) if part]
    except ValueError:
        raise TraceError(f"{where} line {line}: cannot read scores from {cell!r}") from None


def _int_cell(cell: str, what: str, where: str, line: int) -> int:
    try:
        return int(cell)
    except ValueError:
        raise TraceError(f"{where} line {line}: {what} {cell!r} is not an integer") from None


def _slot_columns(header: list[str], names: tuple[str, ...]) -> tuple[str, list[int]] | None:
    """Columns ``<prefix>_0, <prefix>_1, ...`` for the first prefix that has a ``_0`` column."""
    index = {name: i for i, name in enumerate(header)}
    for prefix in names:
        if f"{prefix}_0" in index:
            cols, k = [], 0
            while f"{prefix}_{k}" in index:
                cols.append(index[f"{prefix}_{k}"])
                k += 1
            return prefix, cols
    return None


def import_csv(
    src,
    *,
    model=None,
    num_experts=None,
    num_layers=None,
    top_k=None,
    fields: Mapping[str, str | None] | None = None,
) -> Trace:
    """Import a CSV routing log: a header, then one row per (request, token, layer).

    The experts are either one cell holding a list (``"3 17"``, ``"[3, 17]"``, ``"3;17"``,
    separators: spaces, commas, semicolons, bars) or one column per slot, ``expert_0 ..
    expert_{K-1}`` (also ``<name>_0 ..`` for any experts field name); an empty cell is a lost
    entry. Scores likewise (``score_0 ..`` or ``weight_0 ..`` columns). Line numbers in errors
    count the header as line 1.
    """
    where = _display(src)
    dims = _resolve_dims(model, num_experts, num_layers, top_k)
    candidates = _role_names(fields)
    given = set(fields or ())
    line = 0
    try:
        with open(src, "r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise TraceError(f"{where}: empty file, expected a header row") from None
            except csv.Error as exc:
                raise TraceError(f"{where} line 1: unreadable CSV ({exc})") from None
            line = 1
            present = set(header)
            col = {name: i for i, name in enumerate(header)}
            f_req = _pick("request", candidates["request"], present, where, 1, "request" in given)
            f_tok = _pick("token", candidates["token"], present, where, 1, "token" in given)
            f_layer = _pick("layer", candidates["layer"], present, where, 1, "layer" in given)
            for role, name in (("request", f_req), ("token", f_tok)):
                if name is None and role in given and candidates[role]:
                    raise TraceError(f"{where} line 1: no column {candidates[role][0]!r} ({role})")
            exp_col = next((col[n] for n in candidates["experts"] if n in col), None)
            exp_slots = None
            if exp_col is None:
                found = _slot_columns(header, candidates["experts"] + _COLUMN_PREFIXES["experts"])
                if found is None:
                    names = candidates["experts"]
                    raise TraceError(
                        f"{where} line 1: no experts column: expected one of "
                        f"{', '.join(map(repr, names))} or columns like 'expert_0', 'expert_1'"
                    )
                exp_slots = found[1]
            score_col = next((col[n] for n in candidates["scores"] if n in col), None)
            score_slots = None
            if score_col is None and candidates["scores"]:
                found = _slot_columns(header, candidates["scores"] + _COLUMN_PREFIXES["scores"])
                score_slots = None if found is None else found[1]
            rec = _Records(f_tok is not None)
            i_req = None if f_req is None else col[f_req]
            i_tok = None if f_tok is None else col[f_tok]
            i_layer = col[f_layer]
            width = len(header)
            for cells in reader:
                line = reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != width:
                    raise TraceError(f"{where} line {line}: {len(cells)} cells, but the header has {width}")
                if exp_slots is None:
                    experts = _cell_ids(cells[exp_col], where, line)
                else:
                    experts = [
                        _int_cell(c, "expert id", where, line) if c.strip() else -1
                        for c in (cells[j] for j in exp_slots)
                    ]
                score = None
                if score_col is not None and cells[score_col].strip():
                    score = _cell_floats(cells[score_col], where, line)
                elif score_slots is not None:
                    raw = [cells[j].strip() for j in score_slots]
                    if any(raw):
                        try:
                            score = [float(c) if c else float("nan") for c in raw]
                        except ValueError:
                            raise TraceError(f"{where} line {line}: cannot read scores {raw!r}") from None
                if score is not None:
                    if len(score) < len(experts):
                        score = score + [float("nan")] * (len(experts) - len(score))
                    if len(score) != len(experts):
                        raise TraceError(f"{where} line {line}: {len(score)} scores for {len(experts)} experts")
                    rec.any_scores = True
                rid = None
                if i_req is not None:
                    rid = cells[i_req].strip()
                    try:
                        rid = int(rid)
                    except ValueError:
                        pass
                rec.lines.append(line)
                rec.request.append(rec.request_of(rid, where, line))
                rec.layer.append(_int_cell(cells[i_layer], "layer", where, line))
                if i_tok is not None:
                    rec.token.append(_int_cell(cells[i_tok], "token position", where, line))
                rec.experts.append(experts)
                rec.scores.append(score)
    except UnicodeDecodeError:
        raise TraceError(f"{where} line {line + 1}: not UTF-8 text; is this a CSV file?") from None
    except csv.Error as exc:
        raise TraceError(f"{where} line {line + 1}: unreadable CSV ({exc})") from None
    return _assemble(rec, dims, "csv", src, f_tok is not None)
