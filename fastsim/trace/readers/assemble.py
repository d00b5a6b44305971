"""Routing records -> a :class:`~fastsim.trace.model.Trace`, every contradiction checked in bulk.

Records of one or several files are merged by request id and token position. Rows of a
request run from its smallest to its largest position (gaps become ``-1`` rows). A log whose
token index restarts for the same request id (an engine hook that numbers the tokens of each
forward pass) is read per :attr:`~.base.ImportOptions.on_restart`: an error (the same layer of
a token given twice), a new sequence, or a new recorded forward pass (``batching =
"recorded"``: one sequence per pass). Errors name the file and line of the first problem.
"""
from __future__ import annotations

import json
import os
from itertools import chain

import numpy as np

from ...errors import TraceError
from ..model import Trace, expert_dtype
from ..parquet import RESERVED_METADATA_KEYS
from ..phase import prompts_from_phase
from .base import Dims, ImportOptions, limit_text
from .records import Records

__all__ = ["assemble"]

# A log whose token positions would need far more rows than it has records is almost surely
# misread (a timestamp taken for a position, say); refuse it instead of allocating the gap.
_MAX_ROWS_PER_RECORD = 64
_MIN_ROW_ALLOWANCE = 1 << 20
# Metadata keys the importer writes itself; a log header entry of the same name gets "log.".
_IMPORT_KEYS = (
    "import_format", "import_file", "import_files", "request_ids", "first_positions",
    "skipped_records", "batching", "model_top_k", "model_layers",
)


def _ints(values: list, at, what: str, counts=None) -> np.ndarray:
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
            raise TraceError(f"{at(rec)}: {what} {v!r} is not an integer")
    raise TraceError(f"{what} values are not integers")  # pragma: no cover


def _floats(values: list, at, what: str, counts, index) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64) if values else np.zeros(0)
        if arr.ndim == 1:
            return arr
    except (ValueError, TypeError):
        pass
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            rec = int(index[int(np.searchsorted(np.cumsum(counts), i, side="right"))])
            raise TraceError(f"{at(rec)}: {what} {v!r} is not a number")
    raise TraceError(f"{what} values are not numbers")  # pragma: no cover


def _padded(flat: np.ndarray, counts: np.ndarray, fill, dtype) -> np.ndarray:
    """Ragged rows (``flat`` split by ``counts``) as an ``(n, max count)`` matrix padded by ``fill``."""
    width = int(counts.max()) if counts.size else 0
    out = np.full((counts.size, width), fill, dtype=dtype)
    if flat.size:
        out[np.arange(width)[None, :] < counts[:, None]] = flat
    return out


def _request_label(rid) -> str:
    return "the log (no request field)" if rid is None else f"request {rid!r}"


def _layers(rec: Records, dims: Dims, at) -> tuple[np.ndarray, np.ndarray, int]:
    """``(trace layer, log layer, L)`` per record; log layers map through ``dims.layers``."""
    logged = _ints(rec.layer, at, "layer")
    if logged.min() < 0:
        i = int(np.flatnonzero(logged < 0)[0])
        raise TraceError(f"{at(i)}: layer {logged[i]} is negative")
    if dims.layers is not None:
        listed = np.asarray(dims.layers, dtype=np.int64)
        index = np.minimum(np.searchsorted(listed, logged), listed.size - 1)
        bad = listed[index] != logged
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TraceError(
                f"{at(i)}: layer {logged[i]} is not one of the listed layers "
                f"{','.join(map(str, dims.layers))}"
            )
        return index, logged, listed.size
    num_layers = dims.num_layers if dims.num_layers is not None else int(logged.max()) + 1
    if logged.max() >= num_layers:
        i = int(np.flatnonzero(logged >= num_layers)[0])
        raise TraceError(
            f"{at(i)}: layer {logged[i]} is out of range: layers are 0..{num_layers - 1} "
            f"({limit_text(dims, 'num_layers')})"
        )
    return logged, logged, num_layers


def _expert_rows(rec: Records, dims: Dims, at, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Ragged expert lists -> ``(n, K)`` padded with -1, the list lengths, and ``K``.

    Trailing -1 entries are padding, so a row needs as many slots as its last real id's
    position plus one.
    """
    counts = np.fromiter(map(len, rec.experts), dtype=np.int64, count=n)
    flat = _ints(list(chain.from_iterable(rec.experts)), at, "expert id", counts)
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
            f"{at(i)}: {int(needed[i])} experts in one row, more than {limit_text(dims, 'top_k')}"
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
            else f"-1 or 0..{dims.num_experts - 1} ({limit_text(dims, 'num_experts')})"
        )
        raise TraceError(f"{at(i)}: expert id {value} is out of range: expected {expected}")
    ordered = np.sort(rows, axis=1)
    repeat = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1)
    if repeat.any():
        i = int(np.flatnonzero(repeat)[0])
        same = ordered[i, 1:][(ordered[i, 1:] == ordered[i, :-1]) & (ordered[i, 1:] >= 0)][0]
        raise TraceError(f"{at(i)}: expert id {int(same)} repeated in one row")
    return rows, counts, top_k


def _score_rows(rec: Records, at, n: int, counts: np.ndarray, top_k: int) -> np.ndarray | None:
    if not rec.any_scores:
        return None
    scores = np.full((n, top_k), np.nan, dtype=np.float64)
    have = np.fromiter((s is not None for s in rec.scores), dtype=bool, count=n)
    picked = [s for s in rec.scores if s is not None]
    score_counts = np.fromiter(map(len, picked), dtype=np.int64, count=len(picked))
    index = np.flatnonzero(have)
    if not np.array_equal(score_counts, counts[have]):
        i = int(index[np.flatnonzero(score_counts != counts[have])[0]])
        raise TraceError(f"{at(i)}: {len(rec.scores[i])} scores for {int(counts[i])} experts")
    flat = _floats(list(chain.from_iterable(picked)), at, "score", score_counts, index)
    padded = _padded(flat, score_counts, np.nan, np.float64)
    width = min(padded.shape[1], top_k)
    scores[index[:, None], np.arange(width)[None, :]] = padded[:, :width]
    return scores


def _restart_segments(file, req, layer, pos, num_layers) -> np.ndarray:
    """Per record, how many times its token index went back (or repeated) before it, counted
    over the records of the same file, request and layer in file order."""
    n = pos.shape[0]
    group = (file * (int(req.max()) + 1) + req) * num_layers + layer
    order = np.lexsort((np.arange(n), group))
    g, t = group[order], pos[order]
    same = np.r_[False, g[1:] == g[:-1]]
    restart = same & np.r_[False, t[1:] <= t[:-1]]
    count = np.cumsum(restart)
    first = np.flatnonzero(~same)
    segment_sorted = count - count[first][np.cumsum(~same) - 1]
    segment = np.empty(n, dtype=np.int64)
    segment[order] = segment_sorted
    return segment


def _token_phase(rec: Records, at, n, row, total, offsets, lengths) -> np.ndarray:
    """Per token, whether it is a prefill token; every record of a token must agree."""
    marks = np.fromiter((-1 if p is None else int(p) for p in rec.phase), dtype=np.int64, count=n)
    known = marks >= 0
    lo = np.full(total, 2, dtype=np.int64)
    hi = np.full(total, -1, dtype=np.int64)
    np.minimum.at(lo, row[known], marks[known])
    np.maximum.at(hi, row[known], marks[known])
    split = np.flatnonzero((lo == 0) & (hi == 1))
    if split.size:
        members = np.flatnonzero((row == split[0]) & known)
        a = int(members[0])
        b = int(next(i for i in members if marks[i] != marks[a]))
        raise TraceError(
            f"{at(b)}: phase {'prefill' if marks[b] else 'decode'} differs from "
            f"{at(a)} for the same token; expected one phase per token"
        )
    token = np.where(hi >= 0, hi, -1)
    # A token no record marks takes its predecessor's phase (decode at a sequence's start).
    starts = offsets[:-1][lengths > 0]
    token[starts] = np.where(token[starts] >= 0, token[starts], 0)
    filled = np.where(token >= 0, np.arange(total), 0)
    np.maximum.accumulate(filled, out=filled)
    return token[filled] == 1


def assemble(rec: Records, options: ImportOptions) -> Trace:
    """Merge the records of every file into one trace (see the module docstring)."""
    dims = options.dims
    n = len(rec)
    names = ", ".join(rec.files)
    if n == 0:
        skipped = rec.skipped_text()
        raise TraceError(
            f"{names}: holds no routing records"
            + (f"; {skipped}" if skipped else "")
            + "; a routing record has a layer field (layer, layer_id) and an experts field "
            "(experts, topk_ids, expert_ids), or name them with --field ROLE=NAME"
        )

    def at(i) -> str:
        return rec.where(int(i))

    file = np.asarray(rec.file, dtype=np.int64)
    req = np.asarray(rec.request, dtype=np.int64)
    layer, logged, num_layers = _layers(rec, dims, at)
    rows, counts, top_k = _expert_rows(rec, dims, at, n)
    scores = _score_rows(rec, at, n, counts, top_k)

    # Requests, in numeric order when every id is an integer, else in order of first appearance.
    ids = rec.request_ids
    if ids and all(type(r) is int for r in ids):
        order = np.asarray(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        req = rank[req]
        ids = [ids[i] for i in order]

    # Token positions: given, or the record's rank among its request's records of that layer.
    has_token = {h for h in rec.has_token if h is not None}
    if len(has_token) > 1:
        lacking = rec.files[rec.has_token.index(False)]
        raise TraceError(f"{lacking}: has no token field, but another file of this import has one")
    restarts = options.on_restart != "error"
    if True in has_token:
        pos = _ints(rec.token, at, "token position")
        if pos.min() < 0:
            i = int(np.flatnonzero(pos < 0)[0])
            raise TraceError(f"{at(i)}: token position {pos[i]} is negative")
        segment = _restart_segments(file, req, layer, pos, num_layers) if restarts else np.zeros(n, np.int64)
    else:
        if restarts:
            raise TraceError(
                f"{names}: on_restart={options.on_restart!r} needs a token field (a token index "
                "that restarts); this log has none"
            )
        order = np.lexsort((np.arange(n), layer, req))
        group = req[order] * num_layers + layer[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        pos = np.empty(n, dtype=np.int64)
        pos[order] = rank
        segment = np.zeros(n, dtype=np.int64)

    # Sequences: one per request, or per (request, restart segment).
    key = req * (int(segment.max()) + 1) + segment
    keys, seq = np.unique(key, return_inverse=True)
    seq = seq.reshape(-1)
    num_seqs = keys.size
    seq_request = keys // (int(segment.max()) + 1)
    first = np.full(num_seqs, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(num_seqs, -1, dtype=np.int64)
    np.minimum.at(first, seq, pos)
    np.maximum.at(last, seq, pos)
    lengths = last - first + 1
    total = int(lengths.sum())
    if total > max(_MAX_ROWS_PER_RECORD * n, _MIN_ROW_ALLOWANCE):
        r = int(np.argmax(lengths))
        raise TraceError(
            f"{names}: {_request_label(ids[seq_request[r]])} spans token positions "
            f"{first[r]}..{last[r]}, far more rows than the {n} records fill; check the token field"
        )
    offsets = np.zeros(num_seqs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    row = offsets[seq] + pos - first[seq]

    # A (sequence, token, layer) given twice is a contradiction: name both lines.
    cell = row * num_layers + layer
    order = np.argsort(cell, kind="stable")
    dup = np.flatnonzero(cell[order][1:] == cell[order][:-1])
    if dup.size:
        later = order[dup + 1]
        j = int(np.argmin(later))
        a, b = int(order[dup[j]]), int(later[j])
        earlier = f"line {rec.lines[a]}" if file[a] == file[b] else at(a)
        hint = ""
        if options.on_restart == "error" and True in has_token:
            hint = (
                " (if the log's token index restarts for the same request, as per forward pass, "
                "import with on-restart new-sequence or new-step)"
            )
        raise TraceError(
            f"{at(b)}: layer {logged[b]} of token {pos[b]} of "
            f"{_request_label(ids[seq_request[seq[b]]])} was already given on {earlier}{hint}"
        )

    num_experts = dims.num_experts if dims.num_experts is not None else max(int(rows.max()) + 1, 1)
    experts = np.full((total, num_layers, top_k), -1, dtype=expert_dtype(num_experts))
    experts[row, layer] = rows
    trace_scores = None
    if scores is not None:
        trace_scores = np.full((total, num_layers, top_k), np.nan, dtype=np.float32)
        trace_scores[row, layer] = scores

    prompts = None
    if rec.any_phase:
        is_prefill = _token_phase(rec, at, n, row, total, offsets, lengths)
        prompts, bad = prompts_from_phase(is_prefill, lengths)
        if bad >= 0:
            i = int(np.flatnonzero(row == bad)[0])
            s = int(np.searchsorted(offsets, bad, side="right") - 1)
            raise TraceError(
                f"{at(i)}: a prefill token after a decode token of "
                f"{_request_label(ids[seq_request[s]])}; expected each sequence's prefill tokens "
                "first"
            )

    meta = _metadata(rec, options, [ids[r] for r in seq_request], first)
    source = _source(rec, options)
    try:
        return Trace.from_arrays(
            experts, num_experts=num_experts, sequence_lengths=lengths, scores=trace_scores,
            model=dims.model, source=source, metadata=meta, prompt_tokens=prompts,
        )
    except TraceError as exc:
        raise TraceError(f"{names}: {exc}") from None


def _metadata(rec: Records, options: ImportOptions, seq_ids: list, first: np.ndarray) -> dict[str, str]:
    dims = options.dims
    bases = [os.path.basename(f) for f in rec.files]
    meta: dict[str, str] = {}
    for key, value in rec.header.items():
        clash = key in RESERVED_METADATA_KEYS or key in _IMPORT_KEYS or key.startswith(("ARROW:", "pandas"))
        meta[f"log.{key}" if clash else key] = value
    meta["import_format"] = rec.formats[0] if len(set(rec.formats)) == 1 else json.dumps(rec.formats)
    if len(bases) == 1:
        meta["import_file"] = bases[0]
    else:
        meta["import_files"] = json.dumps(bases)
    meta["request_ids"] = json.dumps(seq_ids, default=str)
    if first.any():
        meta["first_positions"] = json.dumps(first.tolist())
    if rec.skipped:
        meta["skipped_records"] = json.dumps(dict(sorted(rec.skipped.items())))
    if options.on_restart == "new-step":
        meta["batching"] = "recorded"
    if dims.layers is not None:
        meta["model_layers"] = ",".join(map(str, dims.layers))
    if dims.model_top_k is not None:
        meta["model_top_k"] = str(dims.model_top_k)
    return meta


def _source(rec: Records, options: ImportOptions) -> str:
    fmt = rec.formats[0] if len(set(rec.formats)) == 1 else "+".join(rec.formats)
    text = f"import {fmt} " + " ".join(os.path.basename(f) for f in rec.files)
    extras = []
    if options.layout == "long":
        extras.append("layout=long")
    if options.on_restart != "error":
        extras.append(f"on-restart={options.on_restart}")
    if options.dims.layers is not None:
        extras.append("layers=" + ",".join(map(str, options.dims.layers)))
    if options.dims.model_top_k is not None:
        extras.append(f"top-k={options.dims.top_k} (model top-{options.dims.model_top_k})")
    if extras:
        text += " " + " ".join(extras)
    skipped = rec.skipped_text()
    return f"{text}; {skipped}" if skipped else text
