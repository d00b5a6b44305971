"""Parquet trace files (SPEC section 1): atomic writing and validated, vectorised reading.

One row per token and layer, sorted by ``(sequence, token, layer)``:

========== ============================================ ==========================================
column     type                                         meaning
========== ============================================ ==========================================
sequence   int32                                        request id, ``0..S-1``
token      int32                                        position in the sequence, ``0..n-1``
layer      int16                                        MoE layer, ``0..L-1``
experts    fixed_size_list<int16>[K] (int32, E > 32767) chosen experts, best first, ``-1`` = lost
scores     fixed_size_list<float32>[K] (optional)       router weights of those experts
phase      string or integer (optional, read only)      ``prefill``/``decode`` or 0/1 per token
========== ============================================ ==========================================

File-level key/value metadata: ``fastsim.format_version`` (``"1"``), ``num_experts``,
``num_layers``, ``top_k``, ``num_sequences``, ``model`` (when known), ``source``,
``prompt_tokens`` (a JSON list, one prompt length per sequence, when the trace marks prompts),
plus every entry of :attr:`Trace.metadata`. A ``phase`` column, as other recorders write it,
gives the prompt marks too (see :mod:`fastsim.trace.phase`).

Reading accepts what other tools write for the same table: integer columns of any width and a
variable-size ``list<int>`` ``experts`` column whose every row holds ``K`` ids. Every malformed
input raises :class:`~fastsim.errors.TraceError` naming the file and the offending row (by its
``sequence``/``token``/``layer`` values) or field.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._jit import kernel
from ..errors import TraceError
from .model import Trace, _first_bad_entry, expert_dtype
from .phase import prompt_marks

__all__ = ["FORMAT_VERSION", "RESERVED_METADATA_KEYS", "read_trace", "write_trace"]

FORMAT_VERSION = "1"

# Metadata keys the format itself owns; Trace.metadata may not use them.
_FORMAT_KEYS = (
    "fastsim.format_version",
    "num_experts",
    "num_layers",
    "top_k",
    "num_sequences",
    "model",
    "source",
    "prompt_tokens",
)
#: Metadata keys the format owns (Trace.metadata may not use them).
RESERVED_METADATA_KEYS = _FORMAT_KEYS
# Keys other writers add to describe their own schema; they are not trace metadata.
_FOREIGN_KEY_PREFIXES = ("ARROW:", "pandas")
_COLUMNS = ("sequence", "token", "layer", "experts")
_INT32_MAX = np.iinfo(np.int32).max


# ---------------------------------------------------------------------------------------- writing
def write_trace(trace: Trace, path, *, compression: str | None = "zstd") -> None:
    """Write ``trace`` to ``path`` as Parquet, atomically.

    The file is written to a temporary name in the same folder and moved into place with
    :func:`os.replace`, so a reader never sees a partial file and a failed write leaves nothing.

    Parameters
    ----------
    trace : Trace
        The trace to store.
    path : str or os.PathLike
        Destination file; its folder must exist.
    compression : str or None
        Parquet codec (``"zstd"``, ``"snappy"``, ``"gzip"``, ``"lz4"``, ``"brotli"``, ``None``).
    """
    if not isinstance(trace, Trace):
        raise TraceError(f"write_trace needs a Trace, got {type(trace).__name__}")
    table = trace_table(trace)
    path = Path(os.fspath(path))
    tmp = _temp_path(path)
    try:
        pq.write_table(table, tmp, compression=compression)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def trace_table(trace: Trace) -> pa.Table:
    """The Arrow table (with file metadata) that :func:`write_trace` stores, built without
    per-row Python work: ``experts``/``scores`` share memory with the trace."""
    tokens, layers, top_k = trace.experts.shape
    lengths = trace.sequence_lengths
    if tokens > _INT32_MAX or trace.num_sequences > _INT32_MAX:
        raise TraceError(
            f"trace has {tokens} tokens in {trace.num_sequences} sequences; the file format "
            f"stores sequence and token ids as int32 (at most {_INT32_MAX})"
        )
    starts = trace.offsets[:-1]
    seq_of_token = np.repeat(np.arange(trace.num_sequences, dtype=np.int32), lengths)
    pos_of_token = (np.arange(tokens, dtype=np.int64) - np.repeat(starts, lengths)).astype(np.int32)
    columns = {
        "sequence": pa.array(np.repeat(seq_of_token, layers)),
        "token": pa.array(np.repeat(pos_of_token, layers)),
        "layer": pa.array(np.tile(np.arange(layers, dtype=np.int16), tokens)),
        "experts": pa.FixedSizeListArray.from_arrays(pa.array(trace.experts.reshape(-1)), top_k),
    }
    if trace.scores is not None:
        columns["scores"] = pa.FixedSizeListArray.from_arrays(
            pa.array(trace.scores.reshape(-1)), top_k
        )
    return pa.table(columns).replace_schema_metadata(_file_metadata(trace))


def _file_metadata(trace: Trace) -> dict[str, str]:
    meta = {
        "fastsim.format_version": FORMAT_VERSION,
        "num_experts": str(trace.num_experts),
        "num_layers": str(trace.num_layers),
        "top_k": str(trace.top_k),
        "num_sequences": str(trace.num_sequences),
        "source": str(trace.source),
    }
    if trace.model is not None:
        meta["model"] = str(trace.model)
    if trace.prompt_tokens is not None:
        meta["prompt_tokens"] = json.dumps([int(p) for p in trace.prompt_tokens])
    for key, value in trace.metadata.items():
        key = str(key)
        if key in _FORMAT_KEYS or key.startswith(_FOREIGN_KEY_PREFIXES):
            raise TraceError(
                f"trace metadata key {key!r} is reserved by the file format; rename it"
            )
        meta[key] = str(value)
    return meta


def _temp_path(path: Path) -> Path:
    """Create an empty, exclusive temporary file beside ``path`` (mode from the umask)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise TraceError(f"{path}: could not create a temporary file beside it")  # pragma: no cover


# ---------------------------------------------------------------------------------------- reading
# Codes returned by _first_bad_row.
_ROW_OK, _LAYER_RANGE, _NEGATIVE_SEQUENCE, _OUT_OF_ORDER, _DUPLICATE, _MISSING_LAYER, _TOKEN_GAP = range(7)


@kernel
def _first_bad_row(seq, tok, layer, num_layers):
    """Check the row layout: ``(code, row, expected)`` of the first problem, or ``_ROW_OK``.

    Valid rows are strictly sorted by ``(sequence, token, layer)``, every token has layers
    ``0..num_layers-1`` and the tokens of each sequence are numbered ``0..n-1``. Order is checked
    over the whole file first, so a misplaced row is reported as such rather than as the gap it
    leaves. For ``_MISSING_LAYER`` ``row`` is a row of the token lacking layer ``expected``; for
    ``_TOKEN_GAP`` ``expected`` is the token number that should have come.
    """
    n = seq.shape[0]
    last = num_layers - 1
    for i in range(n):
        s = np.int64(seq[i])
        t = np.int64(tok[i])
        l = np.int64(layer[i])
        if l < 0 or l > last:
            return _LAYER_RANGE, i, 0
        if s < 0:
            return _NEGATIVE_SEQUENCE, i, 0
        if i > 0:
            ps = np.int64(seq[i - 1])
            pt = np.int64(tok[i - 1])
            pl = np.int64(layer[i - 1])
            if s == ps and t == pt and l == pl:
                return _DUPLICATE, i, 0
            if s < ps or (s == ps and (t < pt or (t == pt and l < pl))):
                return _OUT_OF_ORDER, i, 0
    # Rows are now strictly increasing, so a layer or token not seen is really absent.
    for i in range(n):
        t = np.int64(tok[i])
        l = np.int64(layer[i])
        if i == 0:
            if t != 0:
                return _TOKEN_GAP, i, 0
            if l != 0:
                return _MISSING_LAYER, i, 0
            continue
        same_seq = np.int64(seq[i]) == np.int64(seq[i - 1])
        pt = np.int64(tok[i - 1])
        pl = np.int64(layer[i - 1])
        if same_seq and t == pt:
            if l != pl + 1:
                return _MISSING_LAYER, i, pl + 1
        else:
            if pl != last:
                return _MISSING_LAYER, i - 1, pl + 1
            expected = pt + 1 if same_seq else 0
            if t != expected:
                return _TOKEN_GAP, i, expected
            if l != 0:
                return _MISSING_LAYER, i, 0
    if n > 0 and np.int64(layer[n - 1]) != last:
        return _MISSING_LAYER, n - 1, np.int64(layer[n - 1]) + 1
    return _ROW_OK, 0, 0


def read_trace(path) -> Trace:
    """Read and validate a Parquet trace.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`write_trace` or by another tool with the same schema.

    Returns
    -------
    Trace
        ``experts`` is one C-contiguous, writable ``(tokens, L, K)`` array (int16, or int32 when
        ``num_experts > 32767``); ``scores`` is float32 of the same shape when the file has them.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    TraceError
        The file is not Parquet, is truncated or empty, lacks a column or metadata key, or its
        rows break a rule of SPEC section 1; the message names the file and row or field.
    """
    path = Path(os.fspath(path))
    name = str(path)
    if path.is_dir():
        raise TraceError(f"{name}: is a folder; expected a Parquet trace file")
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    try:
        schema = pq.read_schema(path, memory_map=True)
        present = [c for c in (*_COLUMNS, "scores", "phase") if c in schema.names]
        table = pq.read_table(path, columns=present, memory_map=True)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name) from None
    except (pa.ArrowException, OSError) as exc:
        if path.exists() and path.stat().st_size == 0:
            raise TraceError(f"{name}: empty file (0 bytes); expected a Parquet trace") from None
        raise TraceError(f"{name}: not a readable Parquet file ({_first_line(exc)})") from None

    raw_meta = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in (schema.metadata or {}).items()
    }
    if table.num_rows == 0 and not any(k in raw_meta for k in _FORMAT_KEYS):
        raise TraceError(f"{name}: empty trace file: no rows and no fastsim metadata")
    for column in _COLUMNS:
        if column not in schema.names:
            raise TraceError(
                f"{name}: missing column {column!r}; expected columns sequence, token, layer, "
                "experts (and optionally scores)"
            )

    version = raw_meta.get("fastsim.format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise TraceError(
            f"{name}: metadata fastsim.format_version is {version!r}; this fastsim reads "
            f"version {FORMAT_VERSION!r}"
        )
    num_experts = _meta_int(raw_meta, "num_experts", name)
    if num_experts > _INT32_MAX:
        raise TraceError(
            f"{name}: metadata num_experts is {num_experts}; expected at most {_INT32_MAX}"
        )
    num_layers = _meta_int(raw_meta, "num_layers", name)
    top_k = _meta_int(raw_meta, "top_k", name)
    num_sequences = _meta_int(raw_meta, "num_sequences", name, required=False)

    seq = _int_column(table, "sequence", name)
    tok = _int_column(table, "token", name)
    layer = _int_column(table, "layer", name)

    def where(row: int) -> str:
        return f"row (sequence {seq[row]}, token {tok[row]}, layer {layer[row]})"

    code, row, expected = _first_bad_row(seq, tok, layer, num_layers)
    if code != _ROW_OK:
        raise TraceError(f"{name}: " + _row_problem(code, row, expected, where, seq, tok, layer, num_layers))

    num_rows = table.num_rows
    tokens = num_rows // num_layers
    seq_of_token = seq[::num_layers].astype(np.int64)
    seen = int(seq_of_token.max()) + 1 if tokens else 0
    if num_sequences is None:
        num_sequences = seen
    elif num_sequences < seen:
        raise TraceError(
            f"{name}: metadata num_sequences is {num_sequences} but the rows use sequence id "
            f"{seen - 1}; expected num_sequences >= {seen}"
        )
    lengths = np.bincount(seq_of_token, minlength=num_sequences).astype(np.int64)

    experts = _list_column(
        table, "experts", name, top_k, expert_dtype(num_experts), where,
        id_range=(-1, num_experts - 1),
    ).reshape(tokens, num_layers, top_k)
    t, l, k, code = _first_bad_entry(experts, num_experts)
    if code != 0:  # range was checked per chunk, so this is a repeated id
        raise TraceError(
            f"{name}: expert id {int(experts[t, l, k])} repeated in {where(t * num_layers + l)}: "
            "each row must hold distinct experts"
        )
    scores = None
    if "scores" in table.column_names:
        scores = _list_column(
            table, "scores", name, top_k, np.dtype(np.float32), where
        ).reshape(tokens, num_layers, top_k)

    prompts = prompt_marks(raw_meta, table, name, lengths, num_layers, where)

    model = raw_meta.get("model")
    metadata = {
        k: v
        for k, v in raw_meta.items()
        if k not in _FORMAT_KEYS and not k.startswith(_FOREIGN_KEY_PREFIXES)
    }
    return Trace._trusted(
        experts=experts,
        sequence_lengths=lengths,
        num_experts=num_experts,
        scores=scores,
        model=model,
        source=raw_meta.get("source", ""),
        metadata=metadata,
        prompt_tokens=prompts,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _meta_int(meta: dict[str, str], key: str, name: str, required: bool = True) -> int | None:
    if key not in meta:
        if not required:
            return None
        raise TraceError(f"{name}: file metadata lacks {key!r}; expected an integer")
    text = meta[key].strip()
    try:
        value = int(text, 10)
    except ValueError:
        raise TraceError(f"{name}: metadata {key} is {meta[key]!r}; expected an integer") from None
    floor = 0 if key == "num_sequences" else 1
    if value < floor:
        raise TraceError(f"{name}: metadata {key} is {value}; expected an integer >= {floor}")
    return value


def _int_column(table: pa.Table, column: str, name: str) -> np.ndarray:
    """A 1-D NumPy view (or copy) of an integer column without nulls."""
    col = table.column(column)
    if not pa.types.is_integer(col.type):
        raise TraceError(f"{name}: column {column!r} has type {col.type}; expected an integer type")
    if col.null_count:
        row = _first_null(col)
        raise TraceError(f"{name}: column {column!r} is null at row {row}; expected an integer")
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    values = arr.to_numpy()
    if values.dtype == np.uint64:
        if values.size and values.max() > np.iinfo(np.int64).max:
            raise TraceError(f"{name}: column {column!r} holds values beyond int64")
        values = values.astype(np.int64)
    return values


def _first_null(col: pa.ChunkedArray) -> int:
    base = 0
    for chunk in col.chunks:
        if chunk.null_count:
            return base + int(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0])
        base += len(chunk)
    return -1  # pragma: no cover


def _list_column(table, column, name, top_k, dtype, where, id_range=None):
    """Flatten a list column holding ``top_k`` values per row into one new, writable 1-D array.

    Chunks are copied (and cast to ``dtype``) straight into the output, so a file with many row
    groups costs one copy, not two. ``id_range`` (inclusive) is checked on the stored values
    before the cast, so a wide id cannot wrap into range.
    """
    col = table.column(column)
    typ = col.type
    integer = dtype.kind in "iu"
    if pa.types.is_fixed_size_list(typ):
        if typ.list_size != top_k:
            raise TraceError(
                f"{name}: column {column!r} holds lists of {typ.list_size} values but metadata "
                f"top_k is {top_k}; expected them to agree"
            )
    elif not (pa.types.is_list(typ) or pa.types.is_large_list(typ)):
        raise TraceError(
            f"{name}: column {column!r} has type {typ}; expected a list of "
            f"{'integers' if integer else 'numbers'} (fixed_size_list[{top_k}])"
        )
    value_type = typ.value_type
    ok = pa.types.is_integer(value_type) if integer else (
        pa.types.is_floating(value_type) or pa.types.is_integer(value_type)
    )
    if not ok:
        raise TraceError(
            f"{name}: column {column!r} holds {value_type} values; expected "
            f"{'integers' if integer else 'numbers'}"
        )
    if col.null_count:
        row = _first_null(col)
        raise TraceError(f"{name}: column {column!r} is null in {where(row)}; expected {top_k} values")

    out = np.empty(table.num_rows * top_k, dtype=dtype)
    row0 = 0
    for chunk in col.chunks:
        rows = len(chunk)
        if not pa.types.is_fixed_size_list(typ):
            sizes = np.diff(chunk.offsets.to_numpy())
            bad = np.flatnonzero(sizes != top_k)
            if bad.size:
                row = row0 + int(bad[0])
                raise TraceError(
                    f"{name}: column {column!r} holds {int(sizes[bad[0]])} values in {where(row)}; "
                    f"expected top_k = {top_k} in every row"
                )
        flat = chunk.flatten()
        if flat.null_count:
            inner = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
            raise TraceError(
                f"{name}: column {column!r} has a null value in {where(row0 + inner // top_k)}; "
                + ("expected an id (-1 marks a lost entry)" if integer else "expected a number")
            )
        values = flat.to_numpy()
        if id_range is not None and values.size:
            lo, hi = id_range
            if values.min() < lo or values.max() > hi:
                inner = int(np.flatnonzero((values < lo) | (values > hi))[0])
                raise TraceError(
                    f"{name}: expert id {int(values[inner])} in {where(row0 + inner // top_k)} "
                    f"is out of range: expected -1 or 0..{hi} (num_experts = {hi + 1})"
                )
        out[row0 * top_k : (row0 + rows) * top_k] = values
        row0 += rows
    return out


def _row_problem(code, row, expected, where, seq, tok, layer, num_layers) -> str:
    if code == _LAYER_RANGE:
        return (
            f"layer {layer[row]} in {where(row)} is out of range: metadata num_layers is "
            f"{num_layers}, so layers must be 0..{num_layers - 1}"
        )
    if code == _NEGATIVE_SEQUENCE:
        return f"negative sequence id in {where(row)}; expected sequence ids >= 0"
    if code == _OUT_OF_ORDER:
        return (
            f"rows out of order: {where(row)} comes after {where(row - 1)}; expected rows "
            "sorted by sequence, token, layer"
        )
    if code == _DUPLICATE:
        return f"{where(row)} appears twice; expected one row per token and layer"
    if code == _MISSING_LAYER:
        return (
            f"sequence {seq[row]}, token {tok[row]} has no row for layer {expected}; expected "
            f"every token to have layers 0..{num_layers - 1} (num_layers = {num_layers})"
        )
    if code == _TOKEN_GAP:
        return (
            f"sequence {seq[row]} has token {tok[row]} where token {expected} was expected "
            f"({where(row)}); tokens of a sequence must be numbered 0..n-1"
        )
    raise AssertionError(code)  # pragma: no cover
