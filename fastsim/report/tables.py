"""Reading a sweep's results table and aggregating its runs per configuration.

A results table (``docs/sweeps.md``) has one row per configuration and run. A report works on
:class:`Summary` objects, one per configuration (``config_id``): the runs' total latency (mean,
sample standard deviation, 95th and 99th percentile), hit rate, peak cache memory and speedup.
Everything here is pyarrow and NumPy; no data-frame library is needed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import FastsimError

__all__ = [
    "ReportError", "REQUIRED_COLUMNS", "STRATEGY_ORDER", "Summary", "read_results", "table_meta", "check_table",
    "summarise", "setting_key", "sort_key", "percentile", "sample_std", "partition_text", "pins_text",
    "request_bytes", "varying_identity", "EXECUTION_OPTIONS", "execution_text",
]

#: Columns a report needs; a table without one of them is rejected.
REQUIRED_COLUMNS = (
    "config_id", "run", "trace", "strategy", "model", "hardware", "batch_size", "cache_request",
    "eviction", "total_time_s", "hit_rate", "peak_cache_bytes", "speedup", "error",
)
#: Optional columns read when present.
_OPTIONAL = (
    "cache_slots", "max_prefetch_loads", "misses", "prefetch_loads", "prefetch_useful", "stall_s",
    "accesses", "tokens", "steps", "model_num_layers", "model_num_experts", "model_top_k",
    "model_expert_bytes", "trace_source", "seed", "hw_h2d_bytes_per_s", "hw_transfer_latency_s",
    "cache_partition", "pin_request", "eviction_params", "tokens_per_s",
)
#: The execution option columns (SPEC section 7) and their defaults: a row at every default ran
#: SPEC section 3's timeline.
EXECUTION_OPTIONS = {
    "timeline": "simple", "link": "fifo", "max_inflight_prefetches": None, "miss_execution": "load",
    "max_uploads_per_layer": None, "overflow": "error", "prefill": False,
}
#: The execution metrics a report reads when the table has them (null in rows of SPEC section 3's
#: timeline).
_EXECUTION_READ = ("ttft_s", "ttft_p99_s", "tpot_s", "tpot_p99_s", "decode_hit_rate", "cpu_executions",
                   "zero_copy_executions")
_OPTIONAL += tuple(EXECUTION_OPTIONS) + ("reserve_bytes", "context_tokens") + _EXECUTION_READ
#: The seed's strategies first, in its order; others follow alphabetically.
STRATEGY_ORDER = ("on-demand", "oracle", "multi-look", "top-k", "intelligent")


class ReportError(FastsimError):
    """A results table cannot be reported on (not Parquet, or columns missing)."""


@dataclass
class Summary:
    """One configuration aggregated over its runs.

    Latencies are milliseconds (``total_time_s * 1000``), memory megabytes (``1e6`` bytes).
    ``latency_ms`` holds the successful runs' latencies, ``float64 (runs,)``, in run order.
    """

    config_id: int
    trace: str
    model: str
    hardware: str
    strategy: str
    params: dict
    cache_request: str
    eviction: str
    max_prefetch_loads: int | None
    batch_size: int
    cache_slots: int | None
    shape: tuple | None  # (num_layers, num_experts, top_k) of the model profile
    expert_bytes: int | None
    runs: int
    failed: int
    latency_ms: np.ndarray
    hit_rate: float
    hit_rate_std: float
    memory_mb: float
    speedup: float
    misses: float = math.nan
    prefetch_loads: float = math.nan
    prefetch_useful: float = math.nan
    stall_ms: float = math.nan
    accesses: float = math.nan
    tokens: float = math.nan
    load_ms: float = math.nan  # one expert's load time from the profiles
    errors: list = field(default_factory=list)
    label_params: dict = field(default_factory=dict)  # the parameters that vary for this strategy
    # cache organisation (SPEC section 6); None where the table has no such column
    cache_partition: str | None = None  # "global", "per-layer" or a JSON list of sizes
    pin_request: str | None = None  # "none", "top N over F of the trace", "keys [..]"
    eviction_params: dict = field(default_factory=dict)
    tokens_per_s: float = math.nan
    show_eviction_params: bool = False  # set when the table holds more than one eviction_params value
    # execution (SPEC section 7): the options that differ from their defaults, and the metrics
    # (NaN where the table has no such column or the runs ran SPEC section 3's timeline)
    execution: dict = field(default_factory=dict)
    ttft_ms: float = math.nan
    ttft_p99_ms: float = math.nan
    tpot_ms: float = math.nan
    tpot_p99_ms: float = math.nan
    decode_hit_rate: float = math.nan
    cpu_executions: float = math.nan
    zero_copy_executions: float = math.nan

    @property
    def execution_label(self) -> str:
        """The execution options that differ from the defaults (``default`` for none)."""
        return execution_text(self.execution)

    @property
    def eviction_label(self) -> str:
        """The eviction policy, with its parameters when the table's configurations differ in them."""
        if not self.show_eviction_params or not self.eviction_params:
            return self.eviction
        inner = ", ".join(f"{k}={_fmt_param(v)}" for k, v in self.eviction_params.items())
        return f"{self.eviction} ({inner})"

    @property
    def partition_label(self) -> str:
        return partition_text(self.cache_partition)

    @property
    def pins_label(self) -> str:
        return pins_text(self.pin_request)

    @property
    def latency_mean(self) -> float:
        return float(self.latency_ms.mean()) if self.latency_ms.size else math.nan

    @property
    def latency_std(self) -> float:
        return sample_std(self.latency_ms)

    @property
    def latency_p95(self) -> float:
        return percentile(self.latency_ms, 95)

    @property
    def latency_p99(self) -> float:
        return percentile(self.latency_ms, 99)

    @property
    def setting(self) -> tuple:
        return setting_key(self)

    @property
    def label(self) -> str:
        """The strategy with the parameters that set it apart from its other configurations."""
        if not self.label_params:
            return self.strategy
        inner = ", ".join(f"{k}={_fmt_param(v)}" for k, v in self.label_params.items())
        return f"{self.strategy} ({inner})"


def execution_text(changes: dict) -> str:
    """Execution options as a cell: ``default``, or ``timeline=layered, prefill, ...``."""
    if not changes:
        return "default"
    return ", ".join(k if v is True else f"{k}={v}" for k, v in changes.items())


def partition_text(partition: str | None) -> str:
    """``global``, ``per-layer``, or a list of per-layer sizes (long lists shortened, with a hash
    of the whole list so that two lists never read the same)."""
    if partition is None:
        return "global"
    try:
        sizes = json.loads(partition)
    except (json.JSONDecodeError, TypeError):
        return str(partition)
    if not isinstance(sizes, list):
        return str(partition)
    text = "[" + ", ".join(str(v) for v in sizes) + "]"
    if len(text) <= 40:
        return text
    import hashlib

    digest = hashlib.sha1(partition.encode()).hexdigest()[:6]
    return "[" + ", ".join(str(v) for v in sizes[:4]) + f", … {len(sizes)} layers, sum {sum(sizes):,}] #{digest}"


def pins_text(pin_request: str | None) -> str:
    """The pin request as a table cell: ``none``, ``top N over F of the trace``, or the keys
    (long lists shortened, with a hash)."""
    if pin_request is None:
        return "none"
    if len(pin_request) <= 48:
        return pin_request
    import hashlib

    digest = hashlib.sha1(pin_request.encode()).hexdigest()[:6]
    return pin_request[:40] + f"… #{digest}"


def request_bytes(cache_request: str) -> int | None:
    """The byte count of a cache request ``"N bytes"``, else None."""
    if cache_request.endswith(" bytes"):
        try:
            return int(cache_request[: -len(" bytes")])
        except ValueError:
            return None
    return None


def _fmt_param(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def percentile(values: np.ndarray, q: float) -> float:
    """The ``q``-th percentile with linear interpolation (NaN for no values)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.percentile(values, q, method="linear")) if values.size else math.nan


def sample_std(values: np.ndarray) -> float:
    """Sample standard deviation (``ddof=1``); 0 for one value, NaN for none."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan
    if values.size == 1:
        return 0.0
    return float(values.std(ddof=1))


def setting_key(s: Summary) -> tuple:
    """What a report section holds: one trace replayed on one model and one GPU."""
    return (s.trace, s.model, s.hardware)


def sort_key(s: Summary) -> tuple:
    """Strategy (seed order first), parameters, cache, eviction, prefetch cap, batch size."""
    rank = STRATEGY_ORDER.index(s.strategy) if s.strategy in STRATEGY_ORDER else len(STRATEGY_ORDER)
    params = tuple((k, _orderable(v)) for k, v in sorted(s.label_params.items()))
    cache = (0, 0) if s.cache_request == "working-set" else (1, s.cache_slots or 0)
    cap = -1 if s.max_prefetch_loads is None else s.max_prefetch_loads
    part = s.cache_partition or "global"
    part_rank = (0 if part == "global" else 1 if part == "per-layer" else 2, part)
    ev_params = tuple((k, _orderable(v)) for k, v in sorted(s.eviction_params.items()))
    pins = (0, "") if s.pin_request in (None, "none") else (1, s.pin_request)
    execution = (0, "") if not s.execution else (1, s.execution_label)
    return (rank, s.strategy, params, cache, s.cache_request, s.eviction, ev_params, part_rank, pins, execution, cap,
            s.batch_size)


def _orderable(v):
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def read_results(path) -> tuple[pa.Table, dict]:
    """Read a results table and its sweep metadata.

    Returns
    -------
    table : pyarrow.Table
    meta : dict
        ``spec`` (the sweep spec as a dict, or ``{}``), ``spec_hash`` and ``version`` when the
        table carries them.

    Raises
    ------
    ReportError
        The file is missing, not Parquet, or lacks a column a report needs.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such results table")
    if path.is_dir():
        raise ReportError(f"{path}: is a folder; give its results.parquet")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReportError(f"{path}: not a Parquet results table ({_first_line(exc)})") from None
    check_table(table, str(path))
    return table, table_meta(table)


def table_meta(table: pa.Table) -> dict:
    """The sweep metadata a results table carries: ``spec`` (the spec as a dict, or ``{}``),
    ``spec_hash``, ``version`` and ``reproduces`` (the published experiment the spec declares it
    reproduces), each when present."""
    raw = table.schema.metadata or {}
    meta: dict = {}
    spec_text = raw.get(b"fastsim.spec")
    if spec_text:
        try:
            meta["spec"] = json.loads(spec_text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta["spec"] = {}
    for key in ("spec_hash", "version", "reproduces"):
        value = raw.get(f"fastsim.{key}".encode())
        if value:
            meta[key] = value.decode("utf-8", "replace")
    if "reproduces" not in meta and isinstance((meta.get("spec") or {}).get("reproduces"), str):
        meta["reproduces"] = meta["spec"]["reproduces"]
    return meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_table(table: pa.Table, origin: str = "results table") -> None:
    """Raise :class:`ReportError` naming the first missing column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ReportError(
            f"{origin}: not a fastsim results table: column {missing[0]!r} is missing "
            f"(a report needs {', '.join(REQUIRED_COLUMNS)})"
        )
    if table.num_rows == 0:
        raise ReportError(f"{origin}: the results table has no rows")


def summarise(table: pa.Table) -> list[Summary]:
    """One :class:`Summary` per configuration, sorted by setting then :func:`sort_key`.

    Runs whose ``error`` is set are left out of the statistics and counted in ``failed``.
    Parameter columns (``param_*``) that are null for a strategy do not belong to it.
    """
    check_table(table)
    cols = {c: table.column(c).to_pylist() for c in REQUIRED_COLUMNS + _OPTIONAL if c in table.column_names}
    pcols = [c for c in table.column_names if c.startswith("param_")]
    pvals = {c: table.column(c).to_pylist() for c in pcols}
    n = table.num_rows
    ids = cols["config_id"]
    order: dict[int, list[int]] = {}
    for i in range(n):
        if ids[i] is None:
            raise ReportError(f"results table row {i}: config_id is null")
        order.setdefault(int(ids[i]), []).append(i)

    def get(name, i):
        col = cols.get(name)
        return None if col is None else col[i]

    out: list[Summary] = []
    for cid, idx in order.items():
        idx.sort(key=lambda i: (cols["run"][i] if cols["run"][i] is not None else -1))
        first = idx[0]
        ok = [i for i in idx if not cols["error"][i] and cols["total_time_s"][i] is not None]
        errors = [cols["error"][i] for i in idx if cols["error"][i]]
        params = {c[len("param_"):]: pvals[c][first] for c in pcols if pvals[c][first] is not None}
        shape = None
        if all(get(f, first) is not None for f in ("model_num_layers", "model_num_experts", "model_top_k")):
            shape = (int(get("model_num_layers", first)), int(get("model_num_experts", first)), int(get("model_top_k", first)))

        def mean(name, scale=1.0):
            vals = [get(name, i) for i in ok]
            vals = [v for v in vals if v is not None]
            return float(np.mean(vals)) * scale if vals else math.nan

        hit = np.array([cols["hit_rate"][i] for i in ok if cols["hit_rate"][i] is not None], dtype=np.float64)
        load_ms = math.nan
        h2d, fixed = get("hw_h2d_bytes_per_s", first), get("hw_transfer_latency_s", first)
        if h2d and fixed is not None and get("model_expert_bytes", first) is not None:
            load_ms = 1000.0 * (fixed + get("model_expert_bytes", first) / h2d)
        slots = [get("cache_slots", i) for i in ok]
        slots = [s for s in slots if s is not None]
        if not slots and not ok:  # every run failed: resolve a byte request as the sweep would have
            nbytes, eb = request_bytes(str(cols["cache_request"][first])), get("model_expert_bytes", first)
            if nbytes is not None and eb:
                slots = [nbytes // int(eb)]
        ev_params = get("eviction_params", first)
        try:
            ev_params = json.loads(ev_params) if ev_params else {}
        except (json.JSONDecodeError, TypeError):
            ev_params = {"params": ev_params}
        execution = {}
        for name, default in EXECUTION_OPTIONS.items():
            value = get(name, first)
            if value is not None and value != default:
                execution[name] = value
        tps = mean("tokens_per_s")
        if math.isnan(tps) and "tokens" in cols:
            vals = [cols["tokens"][i] / cols["total_time_s"][i] for i in ok
                    if cols["tokens"][i] is not None and cols["total_time_s"][i]]
            tps = float(np.mean(vals)) if vals else math.nan
        out.append(
            Summary(
                config_id=cid,
                trace=str(cols["trace"][first]),
                model=str(cols["model"][first]),
                hardware=str(cols["hardware"][first]),
                strategy=str(cols["strategy"][first]),
                params=params,
                cache_request=str(cols["cache_request"][first]),
                eviction=str(cols["eviction"][first]),
                max_prefetch_loads=get("max_prefetch_loads", first),
                batch_size=int(cols["batch_size"][first]),
                cache_slots=int(max(slots)) if slots else None,
                shape=shape,
                expert_bytes=get("model_expert_bytes", first),
                runs=len(ok),
                failed=len(idx) - len(ok),
                latency_ms=np.array([cols["total_time_s"][i] * 1000.0 for i in ok], dtype=np.float64),
                hit_rate=float(hit.mean()) if hit.size else math.nan,
                hit_rate_std=sample_std(hit),
                memory_mb=mean("peak_cache_bytes", 1e-6),
                speedup=mean("speedup"),
                misses=mean("misses"),
                prefetch_loads=mean("prefetch_loads"),
                prefetch_useful=mean("prefetch_useful"),
                stall_ms=mean("stall_s", 1000.0),
                accesses=mean("accesses"),
                tokens=mean("tokens"),
                load_ms=load_ms,
                errors=errors,
                cache_partition=get("cache_partition", first),
                pin_request=get("pin_request", first),
                eviction_params=ev_params if isinstance(ev_params, dict) else {"params": ev_params},
                tokens_per_s=tps,
                execution=execution,
                ttft_ms=mean("ttft_s", 1000.0),
                ttft_p99_ms=mean("ttft_p99_s", 1000.0),
                tpot_ms=mean("tpot_s", 1000.0),
                tpot_p99_ms=mean("tpot_p99_s", 1000.0),
                decode_hit_rate=mean("decode_hit_rate"),
                cpu_executions=mean("cpu_executions"),
                zero_copy_executions=mean("zero_copy_executions"),
            )
        )
    _label_params(out)
    if len({json.dumps(s.eviction_params, sort_keys=True) for s in out}) > 1:
        for s in out:
            s.show_eviction_params = True
    settings = list(dict.fromkeys(s.setting for s in out))
    return sorted(out, key=lambda s: (settings.index(s.setting), sort_key(s)))


def _label_params(summaries: list[Summary]) -> None:
    """Give each summary the parameters whose value differs among its strategy's configurations."""
    by_strategy: dict[str, list[Summary]] = {}
    for s in summaries:
        by_strategy.setdefault(s.strategy, []).append(s)
    for group in by_strategy.values():
        names = list(dict.fromkeys(k for s in group for k in s.params))
        varying = [k for k in names if len({repr(s.params.get(k)) for s in group}) > 1]
        for s in group:
            s.label_params = {k: s.params.get(k) for k in varying}


def varying_identity(summaries: list[Summary]) -> dict:
    """Which parts of a configuration's cache organisation vary among ``summaries``: ``eviction``
    (the policy or its parameters), ``partition``, ``pins`` and ``execution`` (SPEC section 7's
    options), each True or False."""
    return {
        "eviction": len({s.eviction_label for s in summaries}) > 1,
        "partition": len({s.partition_label for s in summaries}) > 1,
        "pins": len({s.pins_label for s in summaries}) > 1,
        "execution": len({s.execution_label for s in summaries}) > 1,
    }
