"""``fastsim.replay``: one replay of a trace under one strategy, cache, eviction, model and GPU."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._version import __version__
from .errors import ConfigError, ProfileError
from .profiles import hardware_profile, model_profile
from .eviction import EvictionDef, get_eviction
from .strategies import StrategyDef, get_strategy
from .timeline import core
from .timeline.durations import cost_tables, layer_cost_tables
from .timeline.entries import cacheable, entry_for
from .timeline.layout import GLOBAL, CacheLayout, resolve_layout
from .timeline.options import ExecutionOptions, execution_options
from .timeline.recorded import CONTINUOUS, RECORDED, resolve_batching
from .timeline.schedule import Schedule, build_schedule, with_next_use, with_requests, with_scores

__all__ = [
    "replay", "ReplayConfig", "ReplayResult", "resolve_config", "schedule_for", "schedule_key", "kernel_inputs",
    "table_tokens", "run_config", "METRICS",
]

#: Every metric of SPEC section 3, in the order result tables list them.
METRICS = (
    "accesses", "hits", "late", "misses", "hit_rate", "demand_loads", "prefetch_loads",
    "prefetch_useful", "prefetch_wasted", "h2d_bytes", "stall_s", "total_time_s", "tokens",
    "steps", "tokens_per_s", "mean_resident", "peak_resident", "peak_cache_bytes",
)

WORKING_SET = "working-set"


@dataclass(frozen=True)
class ReplayConfig:
    """A validated replay configuration (everything but the trace)."""

    strategy: StrategyDef
    params: np.ndarray
    model: Any
    hardware: Any
    eviction: str
    batch_size: int
    cache_slots: int
    cache_request: str
    max_prefetch_loads: int
    policy: EvictionDef | None = None
    eviction_params: np.ndarray | None = None
    layout: CacheLayout | None = None
    pin_request: str = "none"
    execution: ExecutionOptions = ExecutionOptions()
    cache_auto: bool = False
    batching: str = CONTINUOUS
    #: file parameters' paths by name (the kernel's ``params`` hold their contents)
    param_files: tuple = ()

    @property
    def uses_execution(self) -> bool:
        """SPEC section 7's timeline: an execution option is set, the cache is sized "auto" or
        the GPU has a host tier."""
        return not self.execution.is_default or self.cache_auto or self.hardware.host_bytes is not None

    def param_dict(self) -> dict[str, float | str | None]:
        files = dict(self.param_files)
        return {p.name: files.get(p.name) if p.kind == "file" else float(v) for p, v in zip(self.strategy.params, self.params)}

    def eviction_param_dict(self) -> dict[str, float]:
        if self.policy is None:
            return {}
        return {p.name: float(v) for p, v in zip(self.policy.params, self.eviction_params)}

    def describe(self) -> dict[str, Any]:
        d = {
            "strategy": self.strategy.name,
            "params": self.param_dict(),
            "model": self.model.name,
            "hardware": self.hardware.name,
            "eviction": self.eviction,
            "batch_size": self.batch_size,
            "batching": self.batching,
            "cache_slots": self.cache_slots,
            "cache_request": self.cache_request,
            "max_prefetch_loads": self.max_prefetch_loads,
        }
        if self.layout is not None and not _is_default(self):
            d["eviction_params"] = self.eviction_param_dict()
            d["cache_partition"] = self.layout.partition
            d["partition_sizes"] = list(self.layout.budgets)
            d["cache_unit"] = "bytes" if self.layout.unit_is_bytes else "slots"
            d["pinned"] = list(self.layout.pinned)
            d["pin_request"] = self.pin_request
        if self.uses_execution:
            d.update(self.execution.describe())
        return d


def _is_default(cfg: "ReplayConfig") -> bool:
    """SPEC section 3's organisation: its rows describe themselves as they always have."""
    return cfg.layout.simple and not cfg.eviction_param_dict() and cfg.eviction in ("lru", "belady")


@dataclass
class ReplayResult:
    """What one replay measured.

    Attributes
    ----------
    metrics : dict
        Every metric of SPEC section 3 (:data:`METRICS`).
    config : dict
        What produced it: strategy and parameters, profiles, cache, eviction, batch size, trace
        fingerprint and fastsim version.
    step_time_s, step_stall_s : ndarray (steps,), float64, or None
        Per-step wall time and stall, with ``per_step=True``.
    outcomes : ndarray (accesses,), int8, or None
        ``0`` hit, ``1`` late, ``2`` miss for each demand access in schedule order, with
        ``record=True``.
    wanted : list of ndarray, or None
        Each ``(step, layer)``'s wanted keys as the strategy returned them, with ``record=True``.
    """

    metrics: dict[str, float]
    config: dict[str, Any]
    step_time_s: np.ndarray | None = None
    step_stall_s: np.ndarray | None = None
    outcomes: np.ndarray | None = None
    wanted: list | None = field(default=None, repr=False)


def _int_arg(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and (not math.isfinite(value) or value != int(value)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def schedule_key(batch_size: int, next_use: bool, prefill: bool, batching: str = CONTINUOUS) -> tuple:
    """The key of a schedule in a trace's ``_schedules`` memo (continuous batching keeps the
    key it always had, so a memo filled by a sweep worker is found as before)."""
    if batching == CONTINUOUS:
        return (batch_size, next_use, prefill)
    return (batch_size, next_use, prefill, batching)


def schedule_for(trace, batch_size: int, next_use: bool, scores: bool = False, requests: bool = False,
                 prefill: bool = False, batching: str = CONTINUOUS) -> Schedule:
    """The trace's schedule at ``batch_size`` (with prefill steps when ``prefill``; one step per
    recorded pass with ``batching="recorded"``), built once and kept on the trace, with the
    extra arrays the eviction policy reads (next uses, router scores, request releases)."""
    memo = trace.__dict__.setdefault("_schedules", {})
    sched = memo.get(schedule_key(batch_size, True, prefill, batching))
    if sched is None:
        sched = memo.get(schedule_key(batch_size, False, prefill, batching))
    if sched is None:
        sched = build_schedule(trace, batch_size, next_use=next_use, prefill=prefill, batching=batching)
    if next_use:
        sched = with_next_use(sched)
    if scores and sched.r_scores.shape[0] != sched.r_experts.shape[0]:
        if getattr(trace, "scores", None) is None:
            raise ConfigError("the score-aware eviction reads router scores, and this trace has none "
                              "(record them at capture or import, or choose another eviction)")
        sched = with_scores(sched, trace, batch_size, prefill, batching)
    if requests:
        sched = with_requests(sched, trace, batch_size, prefill, batching)
    memo[schedule_key(batch_size, sched.has_next_use, prefill, batching)] = sched
    return sched


def _check_recorded(batching: str, batch_size, cache_bytes) -> None:
    """What recorded batching rules out: the engine's passes fix the batch, so there are no
    slots to choose, and no count of sequences for an automatic KV-cache budget."""
    if batching != RECORDED:
        return
    if batch_size != 1:
        raise ConfigError(
            f"batch_size = {batch_size!r} sets continuous-batching slots, and batching='recorded' replays "
            "the trace's recorded passes as the engine batched them: leave batch_size at 1 or give "
            "batching='continuous'"
        )
    if isinstance(cache_bytes, str):
        raise ConfigError(
            "cache_bytes='auto' sizes the KV cache for batch_size slots, and batching='recorded' has no "
            "slots (the recorded passes do not say how many sequences hold KV cache): give cache_bytes "
            "or cache_slots"
        )


def _cache_total(cache_slots, cache_bytes, defn, mprof, working_set):
    """``(total units, unit_is_bytes, request, working-set asked)`` of the cache request."""
    if (cache_slots is None) == (cache_bytes is None):
        if cache_slots is None and defn.name == "on-demand":
            cache_slots = WORKING_SET
        else:
            raise ConfigError("give exactly one of cache_slots (a number or 'working-set') and cache_bytes")
    if cache_slots is not None:
        if isinstance(cache_slots, str):
            if cache_slots != WORKING_SET:
                raise ConfigError(f"cache_slots must be a number or {WORKING_SET!r}, got {cache_slots!r}")
            return working_set, False, WORKING_SET, True
        slots = _int_arg(cache_slots, "cache_slots", 0)
        return slots, False, f"{slots} slots", False
    nbytes = _int_arg(cache_bytes, "cache_bytes", 0)
    if mprof.uniform_sizes:
        return nbytes // mprof.expert_bytes, False, f"{nbytes} bytes", False
    return nbytes, True, f"{nbytes} bytes", False


def resolve_config(
    trace,
    strategy: str = "on-demand",
    model=None,
    hardware="rtx3090",
    cache_slots=None,
    cache_bytes=None,
    eviction: str = "lru",
    batch_size: int = 1,
    max_prefetch_loads=None,
    params: dict | None = None,
    *,
    eviction_params: dict | None = None,
    cache_partition="global",
    pinned=None,
    pin_profile: float = 1.0,
    execution: ExecutionOptions | dict | None = None,
    reserve_bytes=None,
    context_tokens=None,
    batching=None,
) -> tuple[ReplayConfig, Schedule]:
    """Validate a configuration against the trace; returns it with the schedule it replays.

    ``execution``: the SPEC section 7 options (an :class:`ExecutionOptions` or a dict of them);
    ``reserve_bytes`` and ``context_tokens`` size ``cache_bytes="auto"``; ``batching``:
    ``"continuous"``, ``"recorded"`` or ``None`` for the trace's default.
    """
    if execution is None:
        execution = ExecutionOptions()
    elif not isinstance(execution, ExecutionOptions):
        execution = execution_options(**execution)
    defn = get_strategy(strategy)
    values = defn.resolve(params, shape=(trace.num_layers, trace.num_experts))
    checked = defn.checked(params)
    param_files = tuple((p.name, checked[p.name]) for p in defn.params if p.kind == "file")
    if model is None:
        model = trace.model
        if model is None:
            raise ConfigError("the trace names no model profile: pass model=NAME (or --model)")
    mprof = model_profile(model)
    hprof = hardware_profile(hardware)
    for field_name, have in (("num_layers", trace.num_layers), ("num_experts", trace.num_experts), ("top_k", trace.top_k)):
        want = getattr(mprof, field_name)
        if want != have:
            raise ProfileError(
                f"model profile {mprof.name!r} has {field_name} = {want} but the trace has {have}"
            )
    policy = get_eviction(eviction)
    ev_values = policy.resolve(eviction_params)
    batch = _int_arg(batch_size, "batch_size", 1)
    batching = resolve_batching(batching, trace)
    _check_recorded(batching, batch, cache_bytes)
    cap_loads = -1 if max_prefetch_loads is None else _int_arg(max_prefetch_loads, "max_prefetch_loads", 0)
    if execution.prefill and getattr(trace, "prompt_tokens", None) is None:
        raise ConfigError(
            "prefill=True replays each prompt as one step, and this trace has no prompt marks "
            "(give prompt_tokens to Trace.from_arrays, capture with --include-prompt, or import a phase field)"
        )
    _check_execution_profiles(execution, hprof)
    _check_host_tier(hprof, mprof)
    sched = schedule_for(trace, batch, next_use=policy.needs_next_use, scores=policy.needs_scores or (defn.needs_scores and getattr(trace, "scores", None) is not None),
                         requests=policy.needs_requests or defn.needs_requests, prefill=execution.prefill,
                         batching=batching)
    working_set = sched.max_working_set
    exceed = execution.overflow == "exceed"

    cache_auto = isinstance(cache_bytes, str)
    if cache_auto:
        cache_bytes = _auto_cache_bytes(cache_bytes, trace, mprof, hprof, batch, reserve_bytes, context_tokens)
    elif reserve_bytes is not None or context_tokens is not None:
        raise ConfigError("reserve_bytes and context_tokens size cache_bytes='auto'; give cache_bytes='auto' or leave them out")
    total, unit_is_bytes, request, asked_ws = _cache_total(cache_slots, cache_bytes, defn, mprof, working_set)
    if not unit_is_bytes and cache_partition == GLOBAL and total < working_set and not exceed:
        positions = np.diff(sched.r_ptr)
        p = int(np.argmax(positions))
        step, layer = divmod(p, trace.num_layers)
        batched = f"batch size {batch}" if batching == CONTINUOUS else "the recorded batching"
        raise ConfigError(
            f"a cache of {total} experts ({request}) is smaller than the working set: step {step}, "
            f"layer {layer} needs {working_set} experts at once at {batched}"
        )
    layout = resolve_layout(trace, sched, mprof, total, unit_is_bytes, request, cache_partition, pinned, pin_profile,
                            working_set_request=asked_ws, check_working_set=not exceed)
    slots = sum(layout.budgets)
    cache_bytes_needed = total if unit_is_bytes else total * max(mprof.layer_bytes())
    if cache_bytes_needed > hprof.memory_bytes:
        what = f"{total} experts x {mprof.expert_bytes} bytes" if mprof.uniform_sizes and not unit_is_bytes else f"{cache_bytes_needed} bytes"
        raise ConfigError(
            f"a cache of {what} does not fit in the {hprof.memory_bytes} bytes of GPU memory of {hprof.name!r}"
        )
    pin_request = "none" if pinned is None else (
        f"top {int(pinned)} over {pin_profile:g} of the trace" if isinstance(pinned, (int, np.integer)) else "list")
    cfg = ReplayConfig(
        strategy=defn,
        params=values,
        param_files=param_files,
        model=mprof,
        hardware=hprof,
        eviction=policy.name,
        batch_size=batch,
        cache_slots=min(slots, trace.num_layers * trace.num_experts) if not unit_is_bytes else slots,
        cache_request=request,
        max_prefetch_loads=cap_loads,
        policy=policy,
        eviction_params=ev_values,
        layout=layout,
        pin_request=pin_request,
        execution=execution,
        cache_auto=cache_auto,
        batching=batching,
    )
    return cfg, sched


def _check_execution_profiles(execution: ExecutionOptions, hprof) -> None:
    """The hardware figures the options read must be there (SPEC section 7)."""
    if execution.miss_execution == "cpu":
        for name in ("cpu_flops_per_s", "cpu_mem_bytes_per_s", "cpu_overhead_s"):
            if getattr(hprof, name) is None:
                raise ConfigError(
                    f"miss_execution='cpu' runs misses on the host CPU, and hardware profile {hprof.name!r} "
                    f"has no {name!r}: add it to the profile (docs/profiles.md)"
                )
    if hprof.host_bytes is not None and hprof.nvme_bytes_per_s is None:
        raise ConfigError(
            f"hardware profile {hprof.name!r} gives host_bytes but no nvme_bytes_per_s: experts beyond "
            "host memory are read from NVMe at that rate"
        )


def _check_host_tier(hprof, mprof) -> None:
    if hprof.host_bytes is not None and hprof.host_bytes < max(mprof.layer_bytes()):
        raise ConfigError(
            f"hardware profile {hprof.name!r} gives host_bytes = {hprof.host_bytes}, less than one expert of "
            f"{mprof.name!r} ({max(mprof.layer_bytes())} bytes): host memory must hold at least the largest expert"
        )


def _auto_cache_bytes(value, trace, mprof, hprof, batch, reserve_bytes, context_tokens) -> int:
    """``cache_bytes="auto"`` (SPEC section 7, docs/model.md "Cache budget")."""
    if value != "auto":
        raise ConfigError(f"cache_bytes must be a number of bytes or 'auto', got {value!r}")
    from .timeline.budget import auto_cache_bytes

    if context_tokens is None:
        context_tokens = int(trace.sequence_lengths.max()) if trace.sequence_lengths.shape[0] else 0
    return auto_cache_bytes(mprof, hprof, batch, _int_arg(context_tokens, "context_tokens", 0),
                            None if reserve_bytes is None else _int_arg(reserve_bytes, "reserve_bytes", 0))


def config_array(cfg: ReplayConfig, top_k: int, per_step: bool, record: bool, sched: Schedule | None = None) -> np.ndarray:
    """The int64 ``config`` array of the kernel entry points (``fastsim.timeline.core.CFG_*``).

    With ``sched``, marks schedules whose every ``R`` holds at most one expert, which lets
    demand-only strategies take their single-key path.
    """
    arr = np.zeros(core.CFG_SIZE, np.int64)
    arr[core.CFG_CAPACITY] = cfg.cache_slots
    arr[core.CFG_EVICTION] = DEMAND_ONLY_EVICTIONS.get(cfg.eviction, -1)
    arr[core.CFG_MAX_LOADS] = cfg.max_prefetch_loads
    arr[core.CFG_TOP_K] = top_k
    arr[core.CFG_PER_STEP] = int(per_step)
    arr[core.CFG_RECORD] = int(record)
    arr[core.CFG_SINGLE] = int(sched is not None and sched.max_working_set <= 1)
    return arr


#: Policies the demand-only timelines implement (their ``CFG_EVICTION`` codes).
DEMAND_ONLY_EVICTIONS = {"lru": 0, "belady": 1, "fifo": 2}


def uses_demand_path(cfg: ReplayConfig) -> bool:
    """On-demand with SPEC section 3's cache runs the specialised demand-only timelines."""
    return (
        cfg.strategy.replay is not None and cfg.eviction in DEMAND_ONLY_EVICTIONS and cfg.policy.builtin
        and cfg.layout.simple and cfg.model.uniform_sizes
    )


def table_tokens(cfg: ReplayConfig, sched: Schedule) -> int:
    """The largest active-token count the cost tables must cover: the batch size, or a step's
    tokens where a step holds more (a prompt, a recorded pass)."""
    return max(cfg.batch_size, int(sched.active.max()) if sched.num_steps else 1)


def kernel_inputs(cfg: ReplayConfig, sched: Schedule, top_k: int, per_step: bool = False, record: bool = False):
    """``(entry, args)``: the jitted entry point of the configuration and its arguments."""
    config = config_array(cfg, top_k, per_step, record, sched)
    tokens = table_tokens(cfg, sched)
    if uses_demand_path(cfg):
        return cfg.strategy.replay, (sched, cost_tables(cfg.model, cfg.hardware, tokens), config, cfg.params)
    entry = entry_for(cfg.strategy, cfg.policy, cached=cacheable(cfg.strategy, cfg.policy))
    cost = layer_cost_tables(cfg.model, cfg.hardware, tokens)
    return entry, (sched, cost, config, cfg.params, cfg.layout.arrays(), cfg.eviction_params)


def metrics_from_counters(counters, sched: Schedule, tokens: int, expert_bytes, sizes_counted: bool = True) -> dict[str, float]:
    """The SPEC metrics from the core's integer counters.

    ``sizes_counted``: the counters hold loaded and peak resident bytes (the general core);
    otherwise (the demand-only path, one size) they follow from the counts and ``expert_bytes``.
    """
    c = [int(x) for x in counters]
    accesses = c[core.N_HITS] + c[core.N_LATE] + c[core.N_MISSES]
    total_s = c[core.N_TOTAL_NS] / 1e9
    samples = c[core.N_SAMPLES]
    if sizes_counted:
        h2d, peak_bytes = c[core.N_H2D_BYTES], c[core.N_PEAK_BYTES]
    else:
        h2d = (c[core.N_MISSES] + c[core.N_PREFETCH_LOADS]) * expert_bytes
        peak_bytes = c[core.N_PEAK_RESIDENT] * expert_bytes
    return {
        "accesses": accesses,
        "hits": c[core.N_HITS],
        "late": c[core.N_LATE],
        "misses": c[core.N_MISSES],
        "hit_rate": c[core.N_HITS] / accesses if accesses else 0.0,
        "demand_loads": c[core.N_MISSES],
        "prefetch_loads": c[core.N_PREFETCH_LOADS],
        "prefetch_useful": c[core.N_PREFETCH_USEFUL],
        "prefetch_wasted": c[core.N_PREFETCH_WASTED],
        "h2d_bytes": h2d,
        "stall_s": c[core.N_STALL_NS] / 1e9,
        "total_time_s": total_s,
        "tokens": tokens,
        "steps": sched.num_steps,
        "tokens_per_s": tokens / total_s if total_s > 0 else 0.0,
        "mean_resident": c[core.N_RESIDENT_SUM] / samples if samples else 0.0,
        "peak_resident": c[core.N_PEAK_RESIDENT],
        "peak_cache_bytes": peak_bytes,
    }


def run_config(trace, cfg: ReplayConfig, sched: Schedule, per_step: bool = False, record: bool = False) -> ReplayResult:
    """Run a resolved configuration through its jitted entry point."""
    if cfg.uses_execution:
        from .replay_execution import run_execution_config

        return run_execution_config(trace, cfg, sched, per_step=per_step, record=record)
    entry, args = kernel_inputs(cfg, sched, trace.top_k, per_step, record)
    counters, step_time, step_stall, outcome, wptr, wkeys = entry(*args)
    result = ReplayResult(
        metrics=metrics_from_counters(
            counters, sched, trace.num_tokens, cfg.model.expert_bytes, sizes_counted=not uses_demand_path(cfg)
        ),
        config={**cfg.describe(), "trace": trace.fingerprint(), "fastsim_version": __version__},
    )
    if per_step:
        result.step_time_s = step_time / 1e9
        result.step_stall_s = step_stall / 1e9
    if record:
        result.outcomes = outcome
        result.wanted = [wkeys[wptr[i] : wptr[i + 1]] for i in range(wptr.shape[0] - 1)]
    return result


def replay(
    trace,
    strategy: str = "on-demand",
    model=None,
    hardware="rtx3090",
    cache_slots=None,
    cache_bytes=None,
    eviction: str = "lru",
    batch_size: int = 1,
    *,
    max_prefetch_loads=None,
    eviction_params: dict | None = None,
    cache_partition="global",
    pinned=None,
    pin_profile: float = 1.0,
    timeline: str = "simple",
    link: str = "fifo",
    max_inflight_prefetches=None,
    miss_execution: str = "load",
    max_uploads_per_layer=None,
    overflow: str = "error",
    prefill: bool = False,
    reserve_bytes=None,
    context_tokens=None,
    batching=None,
    per_step: bool = False,
    record: bool = False,
    **params,
) -> ReplayResult:
    """Replay ``trace`` (SPEC sections 3 and 6) and return its metrics.

    Parameters
    ----------
    trace : Trace
    strategy : str
        A registered strategy name (``fastsim.strategies.list_strategies()``).
    model, hardware : str, path or mapping
        Profiles (SPEC section 2); ``model`` defaults to the trace's own.
    cache_slots : int or ``"working-set"``; cache_bytes : int
        Exactly one; on-demand defaults to the working set (the seed's minimal cache).
    eviction : str
        A registered policy (``fastsim.eviction.list_evictions()``): ``lru``, ``belady``,
        ``fifo``, ``lfu``, ``lfru``, ``activation-aware``, ``score-aware`` or your own.
    batch_size : int
        Continuous-batching slots (left at 1 with recorded batching).
    max_prefetch_loads : int, optional
        Cap on prefetch loads per ``(step, layer)``.
    eviction_params : dict, optional
        The eviction policy's parameters.
    cache_partition : ``"global"``, ``"per-layer"`` or a list of ``L`` sizes
        How the cache is split between layers (in the cache's unit).
    pinned : int or list of int, optional
        Keys held resident from time 0 and never evicted: a list of keys, or a count of the
        trace's most demanded keys over its first ``pin_profile`` fraction of tokens.
    timeline, link, max_inflight_prefetches, miss_execution, max_uploads_per_layer, overflow, prefill
        The execution options of SPEC section 7 (``docs/model.md``, "Execution"): layer
        anatomy ``"simple"`` or ``"layered"``; link ``"fifo"`` or ``"demand-first"``; a cap on
        pending prefetch transfers; misses ``"load"``ed, run on the ``"cpu"`` or by
        ``"zero-copy"``; a cap on uploads per layer with the last two; overflow ``"error"`` or
        ``"exceed"``; prompts run as prefill steps (the trace needs prompt marks). Any of them
        (or a GPU profile with ``host_bytes``) adds the execution metrics.
    reserve_bytes, context_tokens
        With ``cache_bytes="auto"``: the workspace left free (default 2 GiB) and the KV cache's
        context per slot (default the trace's longest sequence).
    batching : ``"continuous"``, ``"recorded"`` or None
        SPEC section 3's continuous batching over ``batch_size`` slots, or one step per
        sequence, every token active at once (a trace of recorded forward passes,
        ``docs/model.md`` "Recorded batching"); None (the default) is ``"recorded"`` when the
        trace's metadata says ``batching = "recorded"``, else ``"continuous"``.
    per_step, record : bool
        Also return per-step time and stall arrays; every access outcome and wanted list.
    **params
        The strategy's parameters.
    """
    execution = execution_options(
        timeline=timeline, link=link, max_inflight_prefetches=max_inflight_prefetches,
        miss_execution=miss_execution, max_uploads_per_layer=max_uploads_per_layer, overflow=overflow,
        prefill=prefill,
    )
    cfg, sched = resolve_config(
        trace, strategy, model, hardware, cache_slots, cache_bytes, eviction, batch_size, max_prefetch_loads, params,
        eviction_params=eviction_params, cache_partition=cache_partition, pinned=pinned, pin_profile=pin_profile,
        execution=execution, reserve_bytes=reserve_bytes, context_tokens=context_tokens, batching=batching,
    )
    return run_config(trace, cfg, sched, per_step=per_step, record=record)
