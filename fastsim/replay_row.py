"""``fastsim.replay_row``: run one result row's configuration again and say whether it reproduces.

A row of a results table (a sweep's ``results.parquet`` or a :func:`fastsim.replay_many` table)
records what produced it: the strategy and its parameters, the cache request and organisation,
the execution options, every profile figure, the run, the seed and the trace's fingerprint and
source. :func:`replay_row` rebuilds that configuration, finds the trace, replays it once and
compares the metrics with the row's.

- **The trace.** The ``trace`` argument, where given; else the file the spec kept with the table
  names (the spec in the table's metadata, or ``spec.json`` beside it), looked for relative to
  the table's folder, then the current folder; else, for a trace fastsim generated, the trace
  generated again from the settings its ``trace_source`` records (generator parameters, shape,
  tokens, sequences and seed). Whichever it is, its fingerprint must be the row's.
- **The profiles.** A row records the profiles' names and figures. The candidates are a profile
  the spec defines under the row's name, the name resolved as fastsim resolves names (built-ins,
  ``NAME@w4``, ``NAME[0,8,12]``) and the row's figures themselves; a candidate whose figures
  disagree with the row's is dropped. The configuration whose hash is the row's ``config_hash``
  wins (it is then exactly the one that ran, figures the table leaves out included); without
  one, the first candidates.
- **The batching.** The row's ``batching`` column (a table without it ran continuous batching),
  so a row of a recorded trace replays as the sweep ran it, not as the trace's default.

The module imports nothing heavy until :func:`replay_row` runs, so ``import fastsim`` stays quick.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError, FastsimError, TraceError

__all__ = ["RowReplay", "replay_row", "row_configs", "profile_candidates", "compare_metrics"]

#: Columns every results table has, whatever fastsim version wrote it.
_REQUIRED = ("run", "seed", "trace", "trace_fingerprint", "trace_source", "strategy", "model", "hardware",
             "batch_size", "eviction", "cache_request", "config_hash")
#: Floats compare to this relative tolerance (integers exactly): the metrics are deterministic,
#: the tolerance only absorbs a library's summation order in a percentile.
_REL_TOL = 1e-12


@dataclass
class RowReplay:
    """One result row replayed again.

    Attributes
    ----------
    index : int
        The row's position in the table (from 0).
    row : dict
        The row as the table holds it, column -> value.
    result : ReplayResult
        The new replay.
    reproduces : bool
        Every metric the row holds came out the same (``differences`` is empty).
    differences : dict
        Metric -> ``(row's value, new value)`` for each metric that differs.
    trace_origin : str
        Where the trace came from (regenerated, or the file read).
    config_hash_matches : bool
        The rebuilt configuration hashes as the row's ``config_hash``: it is exactly the one that
        ran. False for a row of another fastsim version, or profile figures the table does not
        record and the spec does not give.
    """

    index: int
    row: dict
    result: Any
    reproduces: bool
    differences: dict = field(default_factory=dict)
    trace_origin: str = ""
    config_hash_matches: bool = False


def replay_row(table, n: int, *, trace=None) -> RowReplay:
    """Replay row ``n`` of a results table and compare the metrics with the row's.

    Parameters
    ----------
    table : str, os.PathLike or pyarrow.Table
        A results table: a sweep's ``results.parquet`` (or its folder), or a table returned by
        :func:`fastsim.sweep` or :func:`fastsim.replay_many`.
    n : int
        The row's position in the table, from 0 (as ``table.slice(n, 1)``).
    trace : str, os.PathLike or Trace, optional
        The trace to replay, instead of the one the row names; its fingerprint must be the row's.

    Returns
    -------
    RowReplay

    Raises
    ------
    ConfigError
        No such table, not a results table, ``n`` out of range, a row that failed when it ran,
        or a configuration that no longer resolves.
    TraceError
        The trace is not found, or its fingerprint is not the row's.
    """
    arrow_table, folder, label = _open_table(table)
    row = _pick_row(arrow_table, n, label)
    spec = _spec_document(arrow_table, folder)
    found, origin = _find_trace(row, n, spec, folder, trace)
    cfg, hash_matches = _choose_config(row, n, found, spec, folder)
    result, cache_slots = _run(found, cfg, n)
    differences = compare_metrics(row, {**result.metrics, "cache_slots": cache_slots})
    return RowReplay(n, row, result, not differences, differences, origin, hash_matches)


# ----------------------------------------------------------------------------- the table


def _open_table(table):
    """``(pyarrow.Table, folder, label)``: the folder relative trace paths start from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(table, pa.Table):
        arrow_table, folder, label = table, Path.cwd(), "the results table"
    else:
        if not isinstance(table, (str, os.PathLike)):
            raise ConfigError(f"expected a results table (a Parquet path or a pyarrow.Table), got {type(table).__name__}")
        path = Path(os.fspath(table))
        if path.is_dir():
            path = path / "results.parquet"
        if not path.is_file():
            raise ConfigError(f"{path}: no such results table")
        try:
            arrow_table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ConfigError(f"{path}: cannot read it as a Parquet table: {exc}") from None
        folder, label = path.parent, str(path)
    missing = [c for c in _REQUIRED if c not in arrow_table.column_names]
    if missing:
        raise ConfigError(f"{label}: not a fastsim results table (it has no {missing[0]!r} column)")
    return arrow_table, folder, label


def _pick_row(table, n, label: str) -> dict:
    rows = table.num_rows
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ConfigError(f"{label}: a row number is an integer, got {n!r}")
    n = int(n)
    if not 0 <= n < rows:
        span = f"0 to {rows - 1}" if rows else "none"
        raise ConfigError(f"{label}: there is no row {n}: the table has {rows} rows ({span})")
    row = table.slice(n, 1).to_pylist()[0]
    if row.get("error"):
        raise ConfigError(f"{label}: row {n} has no metrics to reproduce: it failed with {row['error']!r}")
    return row


def _spec_document(table, folder: Path) -> dict | None:
    """The sweep spec as parsed: the table's metadata, else ``spec.json`` beside it."""
    meta = table.schema.metadata or {}
    text = meta.get(b"fastsim.spec")
    if text is None and (folder / "spec.json").is_file():
        text = (folder / "spec.json").read_bytes()
    if text is None:
        return None
    try:
        spec = json.loads(text)
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


# ----------------------------------------------------------------------------- the trace


def _find_trace(row: dict, n: int, spec, folder: Path, override):
    """``(trace, origin)``: the row's trace, its fingerprint checked."""
    if override is not None:
        trace, origin = _given_trace(override)
    else:
        named, places = _spec_file(row, spec, folder)
        found = next((p for p in places if p.is_file()), None)
        if found is not None:
            trace, origin = _read(found), f"trace file {str(found)!r}"
        else:  # a generated trace, or a file of one that is not where the spec says
            trace, origin = _regenerated(row, n) or _not_found(row, n, named, places)
    want, got = row["trace_fingerprint"], trace.fingerprint()
    if got != want:
        raise TraceError(
            f"{origin} has fingerprint {got}, but row {n} was replayed on a trace with fingerprint {want}"
        )
    return trace, origin


def _given_trace(override):
    from .trace import Trace

    if isinstance(override, Trace):
        return override, "the trace given"
    path = Path(os.fspath(override))
    return _read(path), f"trace file {str(path)!r}"


def _read(path: Path):
    from .trace import read_trace

    try:
        return read_trace(path)
    except (FileNotFoundError, IsADirectoryError):
        raise TraceError(f"{path}: no such trace file") from None


def _regenerated(row: dict, n: int):
    """The generated trace the row's ``trace_source`` describes, or None for another source."""
    from .trace.generate import DEFAULT_PARAMS, GENERATOR_NAME, generate_from_params

    try:
        source = json.loads(row["trace_source"] or "")
    except ValueError:
        return None
    if not isinstance(source, dict) or source.get("generator") != GENERATOR_NAME:
        return None
    params = {k: source[k] for k in DEFAULT_PARAMS if k in source}
    for extra in ("router_scores", "prompt_tokens"):
        if source.get(extra) is not None:
            params[extra] = source[extra]
    try:
        shape = (source["num_layers"], source["num_experts"], source["top_k"])
        trace = generate_from_params(shape, source["tokens"], source["sequences"], source["seed"], params)
    except (KeyError, TypeError, FastsimError) as exc:
        raise TraceError(f"row {n}'s trace_source does not describe a trace fastsim can generate again: {exc}") from None
    return trace, f"trace {row['trace']!r} generated again from the row's trace_source (seed {source['seed']})"


def _spec_file(row: dict, spec, folder: Path):
    """``(file as the spec writes it, places to look)`` of the row's trace; ``(None, [])`` when
    the spec names no file for it. A relative path is looked for beside the table, then in the
    current folder."""
    entries = (spec or {}).get("traces") or []
    entries = [entries] if isinstance(entries, Mapping) else entries
    files = [e["file"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("file"), str)
             and e.get("name", Path(e["file"]).stem) == row["trace"]]
    if not files:
        return None, []
    given = Path(os.path.expanduser(files[0]))
    return files[0], [given] if given.is_absolute() else [folder / given, Path.cwd() / given]


def _not_found(row: dict, n: int, named, places):
    name = row["trace"]
    if named is None:
        raise TraceError(
            f"row {n}'s trace {name!r} was not generated and the table names no file for it: "
            "give the trace with --trace PATH (trace= in Python)"
        )
    raise TraceError(
        f"row {n}'s trace {name!r} is the file {named!r}, found neither beside the table nor in the current "
        f"folder ({', '.join(str(p) for p in places)}): give its path with --trace PATH (trace= in Python)"
    )


# ------------------------------------------------------------------------ the configuration


def _choose_config(row: dict, n: int, trace, spec, folder: Path):
    """``(Config, hash matches)``: the first configuration hashing as the row, else the first."""
    from .sweep.driver import _scores_digest
    from .sweep.grid import row_hash

    configs = row_configs(row, spec, folder, trace)
    if not configs:
        raise ConfigError(f"row {n}: no model and hardware profile can be rebuilt from the row")
    want = row.get("config_hash")
    digest = _scores_digest(trace)
    for cfg in configs:
        if row_hash(cfg, row["trace_fingerprint"], row["run"], row["seed"], digest) == want:
            return cfg, True
    return configs[0], False


def row_configs(row: dict, spec=None, folder=None, trace=None) -> list:
    """Every :class:`~fastsim.sweep.grid.Config` the row may have run, best candidate first.

    One per (model candidate, hardware candidate) and, for an ``"auto"`` cache whose context is
    the trace's longest sequence, with the context given and left to the trace.
    """
    folder = Path.cwd() if folder is None else Path(folder)
    models = profile_candidates("model", row, spec, folder)
    hardware = profile_candidates("hardware", row, spec, folder)
    contexts = [row.get("context_tokens")]
    if row.get("cache_request") == "auto" and trace is not None:
        longest = int(trace.sequence_lengths.max()) if trace.sequence_lengths.shape[0] else 0
        if contexts[0] == longest:
            contexts.append(None)  # the row records the trace's default
    parts = _row_parts(row)
    return [_make(row, parts, m, h, c) for m in models for h in hardware for c in contexts]


def _make(row: dict, parts: dict, model, hardware, context):
    from .sweep.grid import make_config

    try:
        return make_config(row["trace"], model, hardware, row["batch_size"], row["strategy"], parts["params"],
                           parts["cache"], parts["eviction"], row.get("max_prefetch_loads"),
                           cache_partition=parts["partition"], pinned=parts["pinned"],
                           pin_profile=row.get("pin_profile") or 1.0, execution=parts["execution"],
                           reserve_bytes=row.get("reserve_bytes"), context_tokens=context,
                           batching=_batching(row))
    except FastsimError as exc:
        raise ConfigError(f"the row's configuration does not resolve: {exc}") from None


def _batching(row: dict) -> str:
    """The batching the row ran with: its ``batching`` column, or continuous batching for a
    table written before the column existed (sweeps replayed nothing else then)."""
    return row.get("batching") or "continuous"


def _row_parts(row: dict) -> dict:
    """The configuration's pieces as the row's columns record them (older tables lack some:
    their defaults then)."""
    from .strategies import get_strategy
    from .sweep.axes import eviction_choice

    try:
        strategy = get_strategy(row["strategy"])
    except FastsimError as exc:
        raise ConfigError(f"{exc} (a user strategy registers when its module is imported: --import MODULE)") from None
    params = {p.name: row[f"param_{p.name}"] for p in strategy.params if row.get(f"param_{p.name}") is not None}
    try:
        eviction = eviction_choice(row["eviction"], json.loads(row.get("eviction_params") or "{}"))
        parts = {
            "params": params, "cache": _cache_request(row["cache_request"]), "eviction": eviction,
            "partition": _partition(row.get("cache_partition") or "global"),
            "pinned": _pin_request(row.get("pin_request") or "none"), "execution": _execution(row),
        }
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the row's configuration does not resolve: {exc}") from None
    return parts


def _cache_request(label: str):
    """``working-set``, ``auto``, ``N slots`` or ``N bytes`` (``CacheRequest.label``) back as a request."""
    from .sweep.axes import CacheRequest

    if label in ("working-set", "auto"):
        return CacheRequest(label)
    match = re.fullmatch(r"(\d+) (slots|bytes)", label or "")
    if match is None:
        raise ValueError(f"cache_request {label!r} is none of working-set, auto, 'N slots' or 'N bytes'")
    return CacheRequest(match.group(2), int(match.group(1)))


def _partition(label: str):
    from .sweep.axes import partition_value

    return partition_value(label if label in ("global", "per-layer") else json.loads(label))


def _pin_request(label: str):
    """``none``, ``top N over F of the trace`` or ``keys [..]`` (``pin_request_label``) back as pins."""
    from .sweep.axes import pinned_value

    if label == "none":
        return None
    count = re.fullmatch(r"top (\d+) over .* of the trace", label)
    if count is not None:
        return pinned_value(int(count.group(1)))
    if label.startswith("keys "):
        return pinned_value(json.loads(label[len("keys "):]))
    raise ValueError(f"pin_request {label!r} is none of 'none', 'top N over F of the trace' or 'keys [...]'")


def _execution(row: dict):
    from .timeline.options import ExecutionOptions, execution_options

    names = [f.name for f in fields(ExecutionOptions)]
    return execution_options(**{k: row[k] for k in names if row.get(k) is not None})


# ----------------------------------------------------------------------------- the profiles


def profile_candidates(kind: str, row: dict, spec, folder: Path) -> list:
    """The profiles the row's model (``kind="model"``) or GPU may have been, best first:
    those the spec defines under the row's name, the name resolved, the row's own figures.
    A candidate whose figures disagree with the row's is left out."""
    from .profiles import HardwareProfile, ModelProfile, hardware_profile, model_profile

    resolve = model_profile if kind == "model" else hardware_profile
    cls = ModelProfile if kind == "model" else HardwareProfile
    name = row[kind]
    figures = _recorded_figures(row, kind, cls)
    candidates = [p for p in _spec_profiles(kind, spec, folder, resolve) if p.name == name]
    try:
        candidates.append(resolve(name))
    except FastsimError:
        pass
    candidates = [p for p in candidates if _agrees(p, figures)]
    try:
        candidates.append(resolve({"name": name, **{k: v for k, v in figures.items() if v is not None}}))
    except FastsimError:
        pass
    return list(dict.fromkeys(candidates))


def _recorded_figures(row: dict, kind: str, cls) -> dict:
    """Field -> value of every profile figure the row records (``None``: the profile had none)."""
    prefix = "model_" if kind == "model" else "hw_"
    names = {f.name for f in fields(cls)} - {"name", "description"}
    figures = {c[len(prefix):]: v for c, v in row.items() if c.startswith(prefix) and c[len(prefix):] in names}
    if kind == "model" and figures.get("expert_bytes") is None and row.get("model_layer_bytes"):
        figures["expert_bytes"] = json.loads(row["model_layer_bytes"])
    return figures


def _agrees(profile, figures: dict) -> bool:
    for name, value in figures.items():
        have = getattr(profile, name, None)
        if isinstance(have, tuple):
            have = list(have)
        if have != value:
            return False
    return True


def _spec_profiles(kind: str, spec, folder: Path, resolve) -> list:
    """The profiles a spec defines inline or by TOML file (names are resolved by name anyway)."""
    out = []
    for entry in _spec_profile_entries(kind, spec or {}):
        tries = [entry] if isinstance(entry, Mapping) else []
        if isinstance(entry, str) and (entry.lower().endswith(".toml") or "/" in entry):
            given = Path(os.path.expanduser(entry))
            tries = [given] if given.is_absolute() else [folder / given, Path.cwd() / given]
        for value in tries:
            try:
                out.append(resolve(value))
                break
            except FastsimError:
                continue
    return out


def _spec_profile_entries(kind: str, spec: dict) -> list:
    def as_list(value):
        return value if isinstance(value, list) else ([] if value is None else [value])

    pairs = [p for p in as_list(spec.get("profiles")) if isinstance(p, list) and len(p) == 2]
    if kind == "model":
        traces = [t for t in as_list(spec.get("traces")) if isinstance(t, Mapping)]
        return as_list(spec.get("models")) + [p[0] for p in pairs] + [t.get("model") for t in traces]
    return as_list(spec.get("hardware")) + [p[1] for p in pairs]


# ------------------------------------------------------------------------ replay and compare


def _run(trace, cfg, n: int):
    """``(ReplayResult, cache slots)`` of one configuration, replayed as a sweep's worker does."""
    from .replay import resolve_config, run_config

    try:
        rcfg, sched = resolve_config(trace, **cfg.replay_kwargs())
        return run_config(trace, rcfg, sched), rcfg.cache_slots
    except FastsimError as exc:
        raise ConfigError(f"row {n}: its configuration raised when replayed again: {exc}") from None


def compare_metrics(row: dict, metrics: dict) -> dict:
    """Metric -> ``(row's value, new value)`` for every metric column of ``row`` that ``metrics``
    does not repeat (floats to a relative 1e-12, everything else exactly)."""
    from .sweep.results import ALL_METRICS

    differences = {}
    for name in ("cache_slots", *ALL_METRICS):
        if name not in row:
            continue  # a table written before the metric existed
        want, got = row[name], metrics.get(name)
        if not _same(want, got):
            differences[name] = (want, got)
    return differences


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=0.0) or (math.isnan(a) and math.isnan(b))
    return a == b
