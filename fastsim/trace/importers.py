"""Import routing logs written by serving engines as :class:`~fastsim.trace.model.Trace` objects.

One reader per format, each in :mod:`fastsim.trace.readers` behind the small
:class:`~fastsim.trace.readers.base.Reader` interface; ``docs/importing.md`` describes them:

- ``npy``: one NumPy array, ``(tokens, L, K)`` or per layer ``(L, steps, requests, K)``;
- ``npz``: several NumPy arrays (one per request, an ``experts`` array, or one per layer);
- ``jsonl``: JSON Lines, one object per (request, token, layer), per token, or per expert;
- ``csv``: a header row, then rows as for JSON Lines.

Text logs may be gzip or zstd compressed, and several text files (each holding some layers) merge
into one trace by request and token. Gaps are tolerated (missing tokens, layers or experts
become ``-1`` entries); contradictions raise :class:`~fastsim.errors.TraceError` naming the file
and the line or array.
"""
from __future__ import annotations

import os
from typing import Mapping

from ..errors import TraceError
from .model import Trace
from .readers.assemble import assemble
from .readers.base import (
    FIELD_ALIASES, LAYOUTS, ON_RESTART, ImportOptions, Reader, display, parse_field_options,
    resolve_dims,
)
from .readers.csv_log import CsvReader
from .readers.jsonl import JsonlReader
from .readers.npy import NpyReader
from .readers.npz import NpzReader
from .readers.records import Records
from .readers.text import strip_compression_suffix

__all__ = [
    "FORMATS",
    "LAYOUTS",
    "ON_RESTART",
    "FIELD_ALIASES",
    "READERS",
    "import_trace",
    "import_npy",
    "import_npz",
    "import_jsonl",
    "import_csv",
    "parse_field_options",
]

#: The readers by format name.
READERS: dict[str, Reader] = {r.name: r for r in (NpyReader(), NpzReader(), JsonlReader(), CsvReader())}
FORMATS = tuple(READERS)


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
    on_restart: str = "error",
    layers=None,
    record_type: str | None = None,
) -> Trace:
    """Import a routing log (or several text logs, merged) as a :class:`Trace`.

    Parameters
    ----------
    src : str or path, or a list of them
        The log file; several text files merge by ``(request, token)``, each holding some layers.
    format : {"npy", "npz", "jsonl", "csv"}, optional
        Defaults to the file suffix (``.npy``, ``.npz``, ``.jsonl``/``.ndjson``, ``.csv``, each
        optionally followed by ``.gz`` or ``.zst``).
    model : str, path or mapping, optional
        A model profile; gives ``E``, ``L`` and ``K`` and is recorded as the trace's model
        (derived as ``NAME[layers]`` / ``NAME[k=K]`` when ``layers`` / a lower ``top_k`` apply).
    num_experts, num_layers, top_k : int, optional
        Explicit ``E``, the model's ``L``, ``K``. With ``model``, ``E`` and ``L`` must agree with
        the profile and ``top_k`` may be below the profile's (an engine run at fewer experts per
        token). Without either, ``E`` is the largest id seen plus one, ``L`` the largest layer
        plus one (text) or the array's layer axis, and ``K`` the widest row.
    layout : {"tokens-layers-topk", "per-layer", "long"}
        How NumPy arrays are laid out; ``long`` (text formats): one row per routed expert.
    fields : mapping role -> name, optional
        Text field names for the roles of :data:`FIELD_ALIASES`; ``None`` or ``""`` switches an
        optional role off. Unnamed roles try :data:`FIELD_ALIASES` in order.
    sequence_lengths : sequence of int, optional
        Splits a single ``(tokens, L, K)`` array into requests (``npy``, or ``npz`` with an
        ``experts`` array).
    on_restart : {"error", "new-sequence", "new-step"}
        A token index that goes back (or repeats) within one request id: an error naming both
        lines, a new sequence, or a new recorded forward pass (metadata ``batching =
        "recorded"``, one sequence per pass).
    layers : sequence of int, optional
        The model layers the log holds, ascending; the trace holds those layers only.
    record_type : str, optional
        The ``type`` value of routing records (default: the first routing record's).

    Raises
    ------
    TraceError
        Naming the file and the line (text) or array (NumPy) of the first problem.
    """
    paths = list(src) if isinstance(src, (list, tuple)) else [src]
    if not paths:
        raise TraceError("no file to import")
    if on_restart not in ON_RESTART:
        raise TraceError(f"unknown on_restart {on_restart!r}; expected one of {', '.join(ON_RESTART)}")
    if layout not in LAYOUTS:
        raise TraceError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    readers = [_reader_of(p, format) for p in paths]
    dims = resolve_dims(model, num_experts, num_layers, top_k, layers)
    options = ImportOptions(
        dims=dims, layout=layout, fields=dict(fields or {}), sequence_lengths=sequence_lengths,
        on_restart=on_restart, record_type=record_type,
    )
    if not all(r.text for r in readers):
        fmt = next(r.name for r in readers if not r.text)
        if len(paths) > 1:
            raise TraceError(f"several files merge only as text logs (jsonl, csv), not {fmt}")
        if fields:
            raise TraceError(f"field names apply to jsonl and csv imports, not {fmt}")
        if on_restart != "error" or record_type is not None:
            raise TraceError(f"on_restart and record_type apply to jsonl and csv imports, not {fmt}")
        return readers[0].read(paths[0], options)
    if sequence_lengths is not None:
        raise TraceError(f"sequence_lengths applies to npy and npz imports, not {readers[0].name}")
    if layout == "per-layer":
        raise TraceError("the per-layer layout applies to npy and npz imports; text logs take long or the default")
    records = Records()
    for path, reader in zip(paths, readers):
        reader.records(path, options, records, records.add_file(display(path), reader.name))
    return assemble(records, options)


def _reader_of(src, format: str | None) -> Reader:
    if format is not None:
        if format not in READERS:
            raise TraceError(f"unknown import format {format!r}; expected one of {', '.join(FORMATS)}")
        return READERS[format]
    name, _ = strip_compression_suffix(os.fspath(src))
    suffix = os.path.splitext(name)[1].lower()
    for reader in READERS.values():
        if suffix in reader.suffixes:
            return reader
    raise TraceError(
        f"{os.fspath(src)}: cannot tell the format from the suffix {suffix!r}; give one of "
        f"{', '.join(FORMATS)}"
    )


def import_npy(src, **options) -> Trace:
    """Import one ``.npy`` array; see :func:`import_trace` for the keywords."""
    return import_trace(src, "npy", **options)


def import_npz(src, **options) -> Trace:
    """Import an ``.npz`` archive; see :func:`import_trace` for the keywords."""
    return import_trace(src, "npz", **options)


def import_jsonl(src, **options) -> Trace:
    """Import JSON Lines routing logs; see :func:`import_trace` for the keywords."""
    return import_trace(src, "jsonl", **options)


def import_csv(src, **options) -> Trace:
    """Import CSV routing logs; see :func:`import_trace` for the keywords."""
    return import_trace(src, "csv", **options)
