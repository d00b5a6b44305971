"""``fastsim.bound``: a lower bound on ``total_time_s`` that holds for every strategy and every
eviction policy at one cache, link and compute (SPEC section 8, proven in ``docs/bounds.md``)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..replay import resolve_config, table_tokens
from ..timeline.durations import layer_cost_tables
from .kernels import chain_bound, demand_without_pins, position_compute

__all__ = ["bound", "BoundResult", "BoundInputs", "bound_inputs", "DEFAULT_HORIZON"]

#: Positions each window of the chain looks ahead (``docs/bounds.md``, "Cost"): enough for the
#: reuse distances that decide most loads; ``None`` looks to the end of the trace.
DEFAULT_HORIZON = 64


@dataclass(frozen=True)
class BoundInputs:
    """A configuration reduced to what the bound reads: per-position compute, the demand sets
    without pinned keys, each key's partition, each partition's free slots and shortest load."""

    compute_ns: np.ndarray  # (positions,) int64
    ptr: np.ndarray  # (positions + 1,) int64: CSR offsets into keys
    keys: np.ndarray  # demanded keys, pinned ones dropped
    nxt: np.ndarray  # each entry's next demand position
    part_of_key: np.ndarray  # (L * E,) int64
    cap: np.ndarray  # (partitions,) free slots: slots minus pinned keys
    part_load_ns: np.ndarray  # (partitions,) the shortest load of the partition's layers
    load_ns: np.ndarray  # (L,) each layer's load
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BoundResult:
    """A lower bound on ``total_time_s``; ``float(result)`` is that bound in seconds.

    Attributes
    ----------
    total_time_s : float
        The bound (``total_ns / 1e9``).
    total_ns : int
    compute_s : float
        The sum of every position's compute time (the trivial bound).
    load_floor_s : float
        Link time of the fewest loads any policy makes from the empty cache (Belady's count on
        the demand sets, times the load time).
    horizon : int or None
        Positions each window of the chain looked ahead.
    config : dict
        Model, hardware, cache, partition, pins and batch size the bound is for.
    exact_s : float or None
        The exact optimum (``fastsim.bound.exact_optimum``), when asked for.
    """

    total_time_s: float
    total_ns: int
    compute_s: float
    load_floor_s: float
    horizon: int | None
    config: dict[str, Any]
    exact_s: float | None = None

    def __float__(self) -> float:
        return self.total_time_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "bound_total_time_s": self.total_time_s, "compute_s": self.compute_s,
            "load_floor_s": self.load_floor_s, "horizon": self.horizon, "exact_total_time_s": self.exact_s,
        }


def _horizon(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)) or (
        isinstance(value, float) and (not math.isfinite(value) or value != int(value))
    ):
        raise ConfigError(f"horizon must be a whole number of positions >= 0 or None, got {value!r}")
    if int(value) < 0:
        raise ConfigError(f"horizon must be a whole number of positions >= 0 or None, got {value!r}")
    return int(value)


def bound_inputs(trace, model=None, hardware="rtx3090", cache_slots=None, batch_size=1, *, cache_bytes=None,
                 cache_partition="global", pinned=None, pin_profile: float = 1.0, batching=None) -> BoundInputs:
    """Validate a configuration as :func:`fastsim.replay` does and reduce it for the bound."""
    if cache_slots is None and cache_bytes is None:
        raise ConfigError("the bound is for one cache: give cache_slots (a number or 'working-set') or cache_bytes")
    cfg, sched = resolve_config(
        trace, "on-demand", model, hardware, cache_slots, cache_bytes, "lru", batch_size, None, None,
        cache_partition=cache_partition, pinned=pinned, pin_profile=pin_profile, batching=batching,
    )
    layout = cfg.layout
    if layout.unit_is_bytes:
        raise ConfigError(
            "the bound counts cache slots: give cache_slots, or cache_bytes with a model whose experts "
            "all have one size (a byte budget over several sizes is not bounded)"
        )
    L, E = trace.num_layers, trace.num_experts
    part_of_layer, _, budget, _, _, pinned_a = layout.arrays()
    load_ns, expert_ns, dense_ns = layer_cost_tables(cfg.model, cfg.hardware, table_tokens(cfg, sched))
    compute = position_compute(sched.r_ptr, sched.r_counts, sched.active, L, expert_ns, dense_ns)
    ptr, keys, nxt = demand_without_pins(sched.r_ptr, sched.r_experts, L, E, pinned_a)
    part_of_key = np.repeat(part_of_layer, E).astype(np.int64)
    cap = budget.astype(np.int64).copy()
    for k in layout.pinned:
        cap[part_of_key[k]] -= 1
    part_load = np.zeros(cap.shape[0], np.int64)
    for q in range(cap.shape[0]):
        layers = np.flatnonzero(part_of_layer == q)
        part_load[q] = load_ns[layers].min() if layers.size else 0
    config = {
        "model": cfg.model.name, "hardware": cfg.hardware.name, "batch_size": cfg.batch_size, "batching": cfg.batching,
        "cache_slots": cfg.cache_slots, "cache_request": cfg.cache_request,
        "cache_partition": layout.partition, "partition_sizes": list(layout.budgets),
        "pinned": list(layout.pinned), "trace": trace.fingerprint(),
    }
    return BoundInputs(compute, ptr, keys, nxt, part_of_key, cap, part_load, load_ns, config)


def bound(trace, model=None, hardware="rtx3090", cache_slots=None, batch_size=1, *, cache_bytes=None,
          cache_partition="global", pinned=None, pin_profile: float = 1.0, batching=None, horizon=DEFAULT_HORIZON,
          exact: bool = False, time_limit_s: float = 60.0) -> BoundResult:
    """A lower bound on ``total_time_s`` of every strategy and eviction policy (SPEC section 8).

    It holds for any prefetching (strategies that see the future included) and any choice of
    eligible victims, at this cache (slots, partition, pins), link and compute, on SPEC section
    3's timeline; ``docs/bounds.md`` proves it and says where it is loose.

    Parameters
    ----------
    trace : Trace
    model, hardware : str, path or mapping
        Profiles (SPEC section 2); ``model`` defaults to the trace's own.
    cache_slots : int or ``"working-set"``; cache_bytes : int
        Exactly one (bytes only with one expert size).
    batch_size : int
    cache_partition, pinned, pin_profile
        As for :func:`fastsim.replay`: the bound then holds for that organisation.
    batching : ``"continuous"``, ``"recorded"`` or None
        As for :func:`fastsim.replay` (None: the trace's default): with ``"recorded"`` each step
        is one recorded forward pass, and the bound holds for the replays of that batching.
    horizon : int or None
        How many positions each window of the chain looks ahead (larger is tighter and slower;
        ``None``: to the end of the trace).
    exact : bool
        Also solve the exact optimum (a small integer program: tiny traces only; needs SciPy).
    time_limit_s : float
        Time the exact solver may take.
    """
    span = _horizon(horizon)
    inputs = bound_inputs(trace, model, hardware, cache_slots, batch_size, cache_bytes=cache_bytes,
                          cache_partition=cache_partition, pinned=pinned, pin_profile=pin_profile,
                          batching=batching)
    positions = inputs.compute_ns.shape[0]
    total, _, prefix = chain_bound(inputs.ptr, inputs.keys, inputs.nxt, inputs.compute_ns, inputs.part_of_key,
                                   inputs.cap, inputs.part_load_ns, positions if span is None else span)
    exact_s = None
    if exact:
        from .exact import exact_optimum_ns

        exact_s = exact_optimum_ns(inputs, time_limit_s) / 1e9
    return BoundResult(
        total_time_s=int(total) / 1e9, total_ns=int(total), compute_s=int(inputs.compute_ns.sum()) / 1e9,
        load_floor_s=(int(prefix[-1]) if positions else 0) / 1e9, horizon=span, config=inputs.config,
        exact_s=exact_s,
    )
