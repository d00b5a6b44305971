"""The bound's sweep columns (``bound = true`` in a spec): ``bound_total_time_s`` per row and
each row's share of the headroom, ``(on-demand - strategy) / (on-demand - bound)``.

The bound depends on the trace, the profiles, the cache (slots, partition, pins), the batch
size and the batching (continuous or the recorded passes), not on the strategy or the eviction
policy, so it is computed once per such group and shared by the group's rows. Rows it does not
cover (SPEC section 7's execution options, byte budgets over several expert sizes) get nulls.
"""
from __future__ import annotations

import pyarrow as pa

from ..errors import FastsimError
from .api import DEFAULT_HORIZON, bound

__all__ = ["row_bounds", "with_bound_columns", "BOUND_COLUMNS"]

BOUND_COLUMNS = ("bound_total_time_s", "headroom_share")


def _bound_kwargs(cfg, pins):
    """The :func:`~fastsim.bound.bound` arguments of a sweep configuration, or None when the
    bound does not cover it."""
    execution = getattr(cfg, "execution", None)
    if execution is not None and not execution.is_default:
        return None
    kwargs = cfg.replay_kwargs(pins)
    out = {
        "model": kwargs["model"], "hardware": kwargs["hardware"], "batch_size": kwargs["batch_size"],
        "cache_slots": kwargs.get("cache_slots"), "cache_bytes": kwargs.get("cache_bytes"),
        "cache_partition": kwargs.get("cache_partition", "global"), "pinned": kwargs.get("pinned"),
        "pin_profile": kwargs.get("pin_profile", 1.0), "batching": kwargs.get("batching"),
    }
    if isinstance(out["cache_bytes"], str):  # a budget derived from GPU memory
        return None
    return out


def row_bounds(trace, rows, pins: dict) -> dict:
    """``{row hash: bound_total_time_s or None}`` for sweep rows of one trace and run."""
    memo: dict = {}
    out: dict = {}
    for row in rows:
        c = row.config
        key = (c.model, c.hardware, c.batch_size, c.batching, c.cache, c.cache_partition, c.pinned, c.pin_profile,
               getattr(c, "execution", None))
        if key not in memo:
            kwargs = _bound_kwargs(c, pins)
            value = None
            if kwargs is not None:
                try:
                    value = bound(trace, horizon=DEFAULT_HORIZON, **kwargs).total_time_s
                except FastsimError:
                    value = None  # e.g. a byte budget over several expert sizes: not bounded
            memo[key] = value
        out[row.hash] = memo[key]
    return out


def _group(cols, i, with_eviction: bool):
    names = ["trace", "run", "model", "hardware", "batch_size", "batching", "cache_slots", "cache_partition", "pin_request"]
    if with_eviction:
        names += ["eviction", "eviction_params"]
    return tuple(cols[n][i] if n in cols else None for n in names)


def with_bound_columns(table: pa.Table, bounds: dict) -> pa.Table:
    """``table`` with ``bound_total_time_s`` and ``headroom_share`` appended.

    The on-demand time of a row is that of the on-demand row with the same trace, run, profiles,
    batch size, batching, cache, partition and pins, and the same eviction policy if there is one, else
    LRU; failing both, the row's baseline when that is on-demand. The share is null where the
    on-demand time does not exceed the bound (no headroom) or a figure is missing.
    """
    want = ["config_hash", "strategy", "total_time_s", "error", "trace", "run", "model", "hardware", "batch_size",
            "batching", "cache_slots", "cache_partition", "pin_request", "eviction", "eviction_params", "baseline_hash"]
    cols = {n: table.column(n).to_pylist() for n in want if n in table.column_names}
    n = table.num_rows
    ok = [cols["error"][i] is None and cols["total_time_s"][i] is not None for i in range(n)]
    same_policy: dict = {}
    lru: dict = {}
    by_hash: dict = {}
    for i in range(n):
        if not ok[i] or cols["strategy"][i] != "on-demand":
            continue
        t = cols["total_time_s"][i]
        same_policy.setdefault(_group(cols, i, True), t)
        if cols["eviction"][i] == "lru":
            lru.setdefault(_group(cols, i, False), t)
        by_hash.setdefault(cols["config_hash"][i], t)
    bound_col, share_col = [], []
    for i in range(n):
        b = bounds.get(cols["config_hash"][i])
        bound_col.append(b)
        share = None
        if b is not None and ok[i]:
            od = same_policy.get(_group(cols, i, True))
            if od is None:
                od = lru.get(_group(cols, i, False))
            if od is None:
                od = by_hash.get(cols.get("baseline_hash", [None] * n)[i])
            if od is not None and od > b:
                share = (od - cols["total_time_s"][i]) / (od - b)
        share_col.append(share)
    for name in BOUND_COLUMNS:
        if name in table.column_names:
            table = table.drop_columns([name])
    table = table.append_column("bound_total_time_s", pa.array(bound_col, pa.float64()))
    return table.append_column("headroom_share", pa.array(share_col, pa.float64()))
