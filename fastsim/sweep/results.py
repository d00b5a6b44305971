"""Result tables: the column layout, shards written as tasks finish, and the merged table.

A shard holds the measured part of finished rows (keyed by configuration hash); the full table is
rebuilt from the spec's expansion and the shards, so a resumed sweep gives the same table as an
uninterrupted one. Every file is written to a temporary name in its folder and renamed into place.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .._version import __version__
from ..errors import ConfigError
from ..replay import METRICS
from ..replay_execution import EXECUTION_METRICS
from ..strategies import BUILTIN_MODULES, get_strategy
from ..timeline.recorded import CONTINUOUS
from .axes import eviction_params_label, partition_label

__all__ = ["METRIC_TYPES", "ALL_METRICS", "EXECUTION_COLUMNS", "SHARD_SCHEMA", "write_shard", "read_shards", "build_table", "param_columns", "write_table"]

_FLOAT_METRICS = {"hit_rate", "stall_s", "total_time_s", "tokens_per_s", "mean_resident"}
#: Arrow type of every metric column: SPEC section 3's, then the execution timeline's (SPEC
#: section 7), which are null in rows that ran section 3's timeline (nothing measured them).
METRIC_TYPES = {m: pa.float64() if m in _FLOAT_METRICS else pa.int64() for m in METRICS}
METRIC_TYPES.update({m: pa.float64() if m.endswith(("_rate", "_s")) else pa.int64() for m in EXECUTION_METRICS})
#: Every metric a row may carry, in column order.
ALL_METRICS = tuple(METRIC_TYPES)

_MODEL_FIELDS = (
    "num_layers", "num_experts", "top_k", "expert_bytes", "dense_bytes_per_layer",
    "expert_flops_per_token", "dense_flops_per_token",
)
_HW_FIELDS = ("h2d_bytes_per_s", "transfer_latency_s", "mem_bytes_per_s", "flops_per_s", "memory_bytes", "launch_s")
_INT_PROFILE = {"num_layers", "num_experts", "top_k", "expert_bytes", "dense_bytes_per_layer", "memory_bytes",
                "dense_bytes_total", "kv_bytes_per_token", "host_bytes"}
#: The optional profile figures SPEC section 7 reads (null where the profile leaves them out).
_MODEL_X_FIELDS = ("dense_bytes_total", "kv_bytes_per_token")
_HW_X_FIELDS = ("cpu_flops_per_s", "cpu_mem_bytes_per_s", "cpu_overhead_s", "host_bytes", "nvme_bytes_per_s")
#: The execution option columns (SPEC section 7), every row recording its value, defaults included.
EXECUTION_COLUMNS = (
    ("timeline", pa.string()), ("link", pa.string()), ("max_inflight_prefetches", pa.int64()),
    ("miss_execution", pa.string()), ("max_uploads_per_layer", pa.int64()), ("overflow", pa.string()),
    ("prefill", pa.bool_()), ("reserve_bytes", pa.int64()), ("context_tokens", pa.int64()),
)

SHARD_SCHEMA = pa.schema(
    [("config_hash", pa.string()), ("cache_slots", pa.int64()), ("error", pa.string()), ("wall_s", pa.float64())]
    + [(m, t) for m, t in METRIC_TYPES.items()]
)


def _atomic_parquet(table: pa.Table, path: Path, metadata: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_table(table: pa.Table, path, metadata: dict | None = None) -> None:
    """Write ``table`` as Parquet atomically (temporary file in the same folder, then rename)."""
    _atomic_parquet(table, Path(path), metadata)


def write_shard(folder, key: str, results: list) -> Path:
    """Write finished rows: ``results`` is a list of ``(config_hash, RowResult)``."""
    cols: dict[str, list] = {name: [] for name in SHARD_SCHEMA.names}
    for h, r in results:
        cols["config_hash"].append(h)
        cols["cache_slots"].append(r.cache_slots)
        cols["error"].append(r.error)
        cols["wall_s"].append(r.wall_s)
        for m in ALL_METRICS:
            cols[m].append(None if r.metrics is None else r.metrics.get(m))
    path = Path(folder) / f"shard-{key}.parquet"
    _atomic_parquet(pa.table(cols, schema=SHARD_SCHEMA), path)
    return path


def read_shards(folder) -> dict[str, dict]:
    """``{config_hash: row}`` of every complete shard in ``folder`` (temporary files ignored).

    A shard written before a metric column existed reads with that column null."""
    folder = Path(folder)
    done: dict[str, dict] = {}
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("shard-*.parquet")):
        try:
            table = pq.read_table(path, schema=SHARD_SCHEMA)
        except (OSError, pa.ArrowInvalid):
            continue  # an unreadable shard is re-run
        for row in table.to_pylist():
            done.setdefault(row["config_hash"], row)
    return done


def param_columns(strategies) -> list[tuple[str, pa.DataType]]:
    """``(column, type)`` for every parameter of the built-in strategies and ``strategies``.

    A column is ``param_<name>``; its type follows the parameter's kind (int64, float64, bool,
    string for a file's path), float64 where numeric strategies sharing a name disagree.
    """
    kinds: dict[str, str] = {}
    names = [get_strategy(m.replace("_", "-")).name for m in BUILTIN_MODULES] + list(strategies)
    for s in dict.fromkeys(names):
        for p in get_strategy(s).params:
            if kinds.setdefault(p.name, p.kind) != p.kind:
                if "file" in (p.kind, kinds[p.name]):
                    raise ConfigError(f"strategy {s!r} parameter {p.name!r} is a {p.kind} where another strategy's is a "
                                      f"{kinds[p.name]}: a results column holds one kind")
                kinds[p.name] = "float"
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "file": pa.string()}
    return [(f"param_{n}", types[k]) for n, k in kinds.items()]


def _param_value(value, dtype: pa.DataType):
    if pa.types.is_string(dtype):
        return str(value)
    if pa.types.is_integer(dtype):
        return int(value)
    if pa.types.is_boolean(dtype):
        return bool(value)
    return float(value)


def table_schema(strategies) -> pa.Schema:
    fields = [
        ("config_id", pa.int64()), ("run", pa.int64()), ("seed", pa.int64()),
        ("trace", pa.string()), ("trace_fingerprint", pa.string()), ("trace_source", pa.string()),
        ("strategy", pa.string()), ("model", pa.string()), ("hardware", pa.string()),
        ("batch_size", pa.int64()), ("batching", pa.string()), ("eviction", pa.string()), ("cache_request", pa.string()),
        ("cache_slots", pa.int64()), ("max_prefetch_loads", pa.int64()),
        ("eviction_params", pa.string()), ("cache_partition", pa.string()), ("pinned", pa.int64()),
        ("pin_request", pa.string()), ("pin_profile", pa.float64()),
    ]
    fields += list(EXECUTION_COLUMNS)
    fields += param_columns(strategies)
    fields += [(f"model_{f}", pa.int64() if f in _INT_PROFILE else pa.float64()) for f in _MODEL_FIELDS]
    fields += [("model_layer_bytes", pa.string())]
    fields += [(f"hw_{f}", pa.int64() if f in _INT_PROFILE else pa.float64()) for f in _HW_FIELDS]
    fields += [(f"model_{f}", pa.int64()) for f in _MODEL_X_FIELDS]
    fields += [(f"hw_{f}", pa.int64() if f in _INT_PROFILE else pa.float64()) for f in _HW_X_FIELDS]
    fields += list(METRIC_TYPES.items())
    fields += [
        ("speedup", pa.float64()), ("is_baseline", pa.bool_()), ("baseline_hash", pa.string()),
        ("error", pa.string()), ("config_hash", pa.string()), ("spec_hash", pa.string()),
        ("fastsim_version", pa.string()), ("wall_s", pa.float64()),
    ]
    return pa.schema(fields)


def execution_cells(cfg, meta) -> dict:
    """The execution option columns of a row: each option as the replay ran it (caps null for
    none), and an auto cache's reserve and context (the trace's longest sequence when the
    configuration leaves it to the trace; both null for other caches)."""
    opts = cfg.execution
    context = cfg.context_tokens
    if cfg.cache.kind == "auto" and context is None:
        context = getattr(meta, "longest_sequence", None)
    return {
        "timeline": opts.timeline, "link": opts.link, "max_inflight_prefetches": opts.max_inflight_prefetches,
        "miss_execution": opts.miss_execution, "max_uploads_per_layer": opts.max_uploads_per_layer,
        "overflow": opts.overflow, "prefill": opts.prefill, "reserve_bytes": cfg.reserve_bytes,
        "context_tokens": context,
    }


def build_table(rows: list, results: dict[str, dict], spec_hash: str | None) -> pa.Table:
    """The results table, one row per entry of ``rows`` in that order.

    ``rows`` holds objects with ``config_id, run, seed, config, meta, hash, baseline_hash``;
    ``results`` maps configuration hashes to shard rows. Speedup is the baseline row's
    ``total_time_s`` over this row's (null when either is missing, failed or zero).
    """
    schema = table_schema([r.config.strategy for r in rows])
    cols: dict[str, list] = {name: [] for name in schema.names}
    used_as_baseline = {r.baseline_hash for r in rows if r.baseline_hash is not None}
    pcols = {f.name: f.type for f in schema if f.name.startswith("param_")}
    for r in rows:
        cfg = r.config
        res = results.get(r.hash) or {}
        cols["config_id"].append(r.config_id)
        cols["run"].append(r.run)
        cols["seed"].append(r.seed)
        cols["trace"].append(cfg.trace)
        cols["trace_fingerprint"].append(r.meta.fingerprint)
        cols["trace_source"].append(r.meta.source)
        cols["strategy"].append(cfg.strategy)
        cols["model"].append(cfg.model.name)
        cols["hardware"].append(cfg.hardware.name)
        cols["batch_size"].append(cfg.batch_size)
        cols["batching"].append(cfg.batching or CONTINUOUS)  # resolved by the driver before hashing
        cols["eviction"].append(cfg.eviction)
        cols["cache_request"].append(cfg.cache.label)
        cols["cache_slots"].append(res.get("cache_slots"))
        cols["max_prefetch_loads"].append(cfg.max_prefetch_loads)
        cols["eviction_params"].append(eviction_params_label(cfg.eviction_params))
        cols["cache_partition"].append(partition_label(cfg.cache_partition))
        cols["pinned"].append(getattr(r, "pinned", 0))
        cols["pin_request"].append(cfg.pin_request)
        cols["pin_profile"].append(cfg.pin_profile)
        for name, value in execution_cells(cfg, r.meta).items():
            cols[name].append(value)
        params = cfg.param_dict()
        for name, dtype in pcols.items():
            v = params.get(name[len("param_"):])
            cols[name].append(None if v is None else _param_value(v, dtype))
        uniform = cfg.model.uniform_sizes
        for f in _MODEL_FIELDS:
            cols[f"model_{f}"].append(getattr(cfg.model, f) if f != "expert_bytes" or uniform else None)
        cols["model_layer_bytes"].append(None if uniform else json.dumps(list(cfg.model.layer_bytes())))
        for f in _HW_FIELDS:
            cols[f"hw_{f}"].append(getattr(cfg.hardware, f))
        for f in _MODEL_X_FIELDS:
            cols[f"model_{f}"].append(getattr(cfg.model, f, None))
        for f in _HW_X_FIELDS:
            cols[f"hw_{f}"].append(getattr(cfg.hardware, f, None))
        for m in ALL_METRICS:
            cols[m].append(res.get(m))
        speedup = None
        base = results.get(r.baseline_hash) if r.baseline_hash is not None else None
        if base and not base.get("error") and not res.get("error"):
            mine, theirs = res.get("total_time_s"), base.get("total_time_s")
            if mine and theirs is not None:
                speedup = theirs / mine
        cols["speedup"].append(speedup)
        cols["is_baseline"].append(r.hash in used_as_baseline)
        cols["baseline_hash"].append(r.baseline_hash)
        cols["error"].append(res.get("error") if res else "not run")
        cols["config_hash"].append(r.hash)
        cols["spec_hash"].append(spec_hash)
        cols["fastsim_version"].append(__version__)
        cols["wall_s"].append(res.get("wall_s"))
    return pa.table(cols, schema=schema)
