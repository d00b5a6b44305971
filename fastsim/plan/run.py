"""``fastsim.plan``: run the planner's grid and the bound on one trace, model and GPU."""
from __future__ import annotations

import math
import os
import sys

import pyarrow as pa

from ..errors import ConfigError, FastsimError
from ..profiles import hardware_profile, model_profile
from .answer import Plan
from .grid import DEFAULT_SIZES, build_grid

__all__ = ["plan", "DEFAULT_HORIZON", "BOUND"]

#: Positions each window of the bound looks ahead. Shorter than ``fastsim bound``'s 64: the
#: bound stays a bound at any horizon, and on decode traces the link term that decides it is
#: reached within a few positions, at a tenth of the time.
DEFAULT_HORIZON = 8
#: The ``strategy`` of the table's bound rows.
BOUND = "bound"


def _positive(value, name: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _load(trace):
    """``(trace, name)``: a path is read and named as given (so a row's ``trace`` finds it again)."""
    from ..trace import Trace, read_trace

    if isinstance(trace, Trace):
        return trace, "trace"
    if isinstance(trace, (str, os.PathLike)):
        return read_trace(trace), os.fspath(trace)
    raise ConfigError(f"trace must be a fastsim.Trace or a path, got {type(trace).__name__}")


def plan(trace, model=None, hardware="rtx3090", target_tokens_per_s=None, budget_gb=None, *, strategies=None,
         evictions=None, partitions=None, cache_slots=None, cache_gb=None, sizes: int = DEFAULT_SIZES,
         batch_size: int = 1, horizon: int | None = DEFAULT_HORIZON, n_jobs: int = 1, progress: bool | None = False,
         trace_name: str | None = None) -> Plan:
    """Which cache and which strategy for this model, GPU and workload: measured, not guessed.

    Replays ``trace`` under every strategy x eviction x partition x cache size of the grid
    (``fastsim.plan.grid``), bounds every cache size (:func:`fastsim.bound`), and answers.

    Parameters
    ----------
    trace : Trace or path
    model, hardware : str, path or mapping
        Profiles; ``model`` defaults to the trace's own.
    target_tokens_per_s : float, optional
        The throughput to reach: the plan gives each strategy's smallest cache that reaches it.
    budget_gb : float, optional
        GPU memory for the expert cache (1 GB = 1e9 bytes): the plan gives the fastest
        configuration within it (within the largest cache the GPU holds when omitted).
    strategies : list of str, optional
        ``NAME`` or ``NAME:PARAM=VALUE:...`` each; default on-demand, top-k at one and two times
        the routing top-k, cross-layer.
    evictions, partitions : list of str, optional
        Default ``lru, activation-aware`` and ``global, per-layer``.
    cache_slots, cache_gb : list, optional
        Cache sizes (in experts, or GB rounded down to whole experts); default ``sizes`` evenly
        spaced from the working set to the largest cache the GPU holds.
    batch_size : int
    horizon : int or None
        Look-ahead of the bound (``None``: the whole trace; slower, tighter).
    n_jobs, progress
        As for :func:`fastsim.sweep` (``progress=None``: a bar when stderr is a terminal).
    trace_name : str, optional
        The ``trace`` column (default the path given, or ``"trace"``).

    Returns
    -------
    Plan
        ``table`` (pyarrow, one row per replay and per bound), the answers and ``to_markdown()``.
    """
    from ..replay import resolve_config
    from ..sweep.driver import run_grid

    target = _positive(target_tokens_per_s, "target_tokens_per_s")
    budget = _positive(budget_gb, "budget_gb")
    if isinstance(sizes, bool) or not isinstance(sizes, int) or sizes < 1:
        raise ConfigError(f"sizes must be a whole number of cache sizes >= 1, got {sizes!r}")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0):
        raise ConfigError(f"horizon must be a whole number of positions >= 0 or None, got {horizon!r}")
    trace, name = _load(trace)
    name = trace_name or name
    if model is None and trace.model is None:
        raise ConfigError("the trace names no model profile: pass model=NAME (or --model)")
    model = trace.model if model is None else model
    mprof, hprof = model_profile(model), hardware_profile(hardware)
    # checks the profiles against the trace, and builds the schedule the grid's replays share
    _, sched = resolve_config(trace, "on-demand", mprof, hprof, "working-set", None, "lru", batch_size)
    grid = build_grid(trace, sched, mprof, hprof, strategies=strategies, evictions=evictions, partitions=partitions,
                      cache_slots=cache_slots, cache_gb=cache_gb, sizes=sizes, batch_size=batch_size)
    configs = grid.configs(mprof, hprof)
    if not configs:
        raise ConfigError(f"no configuration of the grid fits: every cache size is below the working set "
                          f"({grid.working_set} experts global, {grid.per_layer_min} per-layer)")
    run = run_grid(trace, configs, n_jobs, progress=progress, trace_name=name)
    bounds = _bound_rows(trace, grid, mprof, hprof, horizon, name, progress)
    table = _plan_table(run.table, bounds, grid, configs)
    meta = {
        "trace": name, "trace_fingerprint": trace.fingerprint(), "tokens": trace.num_tokens,
        "sequences": int(trace.sequence_lengths.shape[0]), "layers": trace.num_layers,
        "experts": trace.num_experts, "top_k": trace.top_k, "model": mprof.name, "hardware": hprof.name,
        "expert_bytes": mprof.expert_bytes, "batch_size": grid.batch_size, "horizon": horizon,
    }
    return Plan(table, grid, meta, target, budget)


def _bound_rows(trace, grid, mprof, hprof, horizon, name, progress) -> list[dict]:
    """One row per partition and cache size: the bound on total time, and the tokens/s no
    strategy or eviction exceeds there."""
    from tqdm import tqdm

    from ..bound import bound

    cells = [(p, c) for p in grid.partitions for c in grid.sizes if grid.fits(p, c)]
    if progress is None:
        progress = sys.stderr.isatty()
    rows = []
    fingerprint = trace.fingerprint()
    for part, c in tqdm(cells, unit="bound", disable=not progress, file=sys.stderr, dynamic_ncols=True, leave=False):
        row = {"trace": name, "trace_fingerprint": fingerprint, "trace_source": trace.source, "strategy": BOUND,
               "model": mprof.name, "hardware": hprof.name, "batch_size": grid.batch_size,
               "cache_request": f"{c} slots", "cache_slots": c, "cache_partition": part, "tokens": trace.num_tokens}
        try:
            b = bound(trace, mprof, hprof, cache_slots=c, batch_size=grid.batch_size, cache_partition=part,
                      horizon=horizon)
        except FastsimError as exc:  # a configuration the bound does not cover
            row["error"] = f"{type(exc).__name__}: {exc}"
        else:
            row["total_time_s"] = b.total_time_s
            row["tokens_per_s"] = trace.num_tokens / b.total_time_s if b.total_time_s > 0 else math.inf
        rows.append(row)
    return rows


def _plan_table(replays: pa.Table, bounds: list[dict], grid, configs) -> pa.Table:
    """The replays' sweep table with each row's strategy label and cache in GB, then the bound
    rows (null where a column means nothing for a bound)."""
    labels = {}
    for s in grid.strategies:
        labels.setdefault((s.name, tuple(sorted(s.params))), s.label)
    schema = replays.schema.append(pa.field("strategy_label", pa.string())).append(pa.field("cache_gb", pa.float64()))
    rows = replays.to_pylist()
    for row, cfg in zip(rows, configs):
        row["strategy_label"] = labels[(cfg["strategy"], tuple(sorted(cfg["params"].items())))]
        row["cache_gb"] = grid.gb(cfg["cache_slots"])
    for b in bounds:
        b["strategy_label"] = BOUND
        b["cache_gb"] = grid.gb(b["cache_slots"])
    return pa.Table.from_pylist(rows + bounds, schema=schema)
