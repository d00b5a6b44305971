"""Running a configuration through the execution timeline (SPEC section 7) and deriving its
metrics: SPEC section 3's, the execution counts, the phase split, and TTFT / TPOT."""
from __future__ import annotations

import numpy as np

from ._version import __version__
from .timeline import core
from .timeline import execution as ex
from .timeline.durations import layer_cost_tables
from .timeline.entries import cacheable, execution_entry_for
from .timeline.exec_durations import execution_cost_tables
from .timeline.prefill import Phases, access_phases, prefill_steps
from .timeline.recorded import CONTINUOUS, recorded_prefill_steps
from .timeline.schedule import prompt_lengths

__all__ = ["EXECUTION_METRICS", "run_execution_config", "phases_for", "latency_metrics"]

#: Metrics the execution timeline adds to SPEC section 3's (``docs/model.md``, "Execution").
EXECUTION_METRICS = (
    "cpu_executions", "zero_copy_executions", "host_hits", "nvme_loads", "peak_overflow",
    "prefill_accesses", "prefill_hits", "prefill_late", "prefill_misses", "prefill_hit_rate",
    "decode_accesses", "decode_hits", "decode_late", "decode_misses", "decode_hit_rate",
    "ttft_s", "ttft_p50_s", "ttft_p99_s", "tpot_s", "tpot_p50_s", "tpot_p99_s",
)

_MISS_CODES = {"load": ex.MISS_LOAD, "cpu": ex.MISS_CPU, "zero-copy": ex.MISS_ZERO_COPY}


def phases_for(trace, sched, batch_size: int, prefill: bool, batching: str = CONTINUOUS) -> Phases:
    """The phase of each access and the steps TTFT and TPOT read (kept on the trace; continuous
    batching under the key it always had, which a sweep worker's memo fills)."""
    memo = trace.__dict__.setdefault("_phases", {})
    key = (batch_size, prefill) if batching == CONTINUOUS else (batch_size, prefill, batching)
    if key not in memo:
        if prefill:
            step_ptr, step_tokens, prefill_step, decode_tokens, row_prompt = _prefill_layout(
                trace, batch_size, batching)
            r_prefill = access_phases(trace.experts, step_ptr, step_tokens, row_prompt, sched.r_ptr,
                                      sched.r_experts, trace.num_experts)
        else:
            prefill_step = np.full(trace.sequence_lengths.shape[0], -1, np.int64)
            decode_tokens = sched.active.astype(np.int64)
            r_prefill = np.zeros(0, np.uint8)
        memo[key] = Phases(r_prefill, prefill_step, decode_tokens)
    return memo[key]


def _prefill_layout(trace, batch_size: int, batching: str):
    """The steps with their prefill bookkeeping: continuous batching's slot loop, or one step
    per recorded pass (whose marked tokens are its prompt)."""
    if batching == CONTINUOUS:
        return prefill_steps(trace.sequence_lengths, prompt_lengths(trace), int(batch_size))
    return recorded_prefill_steps(trace.sequence_lengths, prompt_lengths(trace))


def xconfig_array(cfg) -> np.ndarray:
    opts = cfg.execution
    x = np.zeros(ex.X_SIZE, np.int64)
    x[ex.X_LAYERED] = int(opts.timeline == "layered")
    x[ex.X_DEMAND_FIRST] = int(opts.link == "demand-first")
    x[ex.X_MAX_INFLIGHT] = -1 if opts.max_inflight_prefetches is None else opts.max_inflight_prefetches
    x[ex.X_MISS] = _MISS_CODES[opts.miss_execution]
    x[ex.X_MAX_UPLOADS] = -1 if opts.max_uploads_per_layer is None else opts.max_uploads_per_layer
    x[ex.X_EXCEED] = int(opts.overflow == "exceed")
    x[ex.X_HOST_BYTES] = -1 if cfg.hardware.host_bytes is None else cfg.hardware.host_bytes
    return x


def execution_inputs(cfg, sched, trace, per_step: bool, record: bool):
    """``(entry, args, phases)`` of the execution timeline for a resolved configuration."""
    from .replay import config_array

    phases = phases_for(trace, sched, cfg.batch_size, cfg.execution.prefill, cfg.batching)
    max_tokens = max(cfg.batch_size, int(sched.active.max()) if sched.num_steps else 1)
    cost = layer_cost_tables(cfg.model, cfg.hardware, max_tokens)
    xcost = execution_cost_tables(
        cfg.model, cfg.hardware, max_tokens, need_cpu=cfg.execution.miss_execution == "cpu",
        need_nvme=cfg.hardware.host_bytes is not None,
    )
    config = config_array(cfg, trace.top_k, per_step, record)
    entry = execution_entry_for(cfg.strategy, cfg.policy, cached=cacheable(cfg.strategy, cfg.policy))
    args = (sched, cost, xcost, config, xconfig_array(cfg), cfg.params, cfg.layout.arrays(), cfg.eviction_params,
            phases.r_prefill)
    return entry, args, phases


def _summary(prefix: str, values_ns: np.ndarray) -> dict[str, float]:
    """Mean, p50 and p99 of integer nanoseconds in seconds: the mean of the integers, quantiles
    linear between closest ranks (numpy's default), 0 over no values."""
    if values_ns.shape[0] == 0:
        return {f"{prefix}_s": 0.0, f"{prefix}_p50_s": 0.0, f"{prefix}_p99_s": 0.0}
    as_float = values_ns.astype(np.float64)
    return {
        f"{prefix}_s": int(values_ns.sum()) / values_ns.shape[0] / 1e9,
        f"{prefix}_p50_s": float(np.quantile(as_float, 0.5)) / 1e9,
        f"{prefix}_p99_s": float(np.quantile(as_float, 0.99)) / 1e9,
    }


def latency_metrics(step_time_ns: np.ndarray, phases: Phases) -> dict[str, float]:
    """TTFT over sequences with a prompt, TPOT over decode tokens (``docs/model.md``, "Prefill")."""
    steps = phases.prefill_step[phases.prefill_step >= 0]
    return {**_summary("ttft", step_time_ns[steps]), **_summary("tpot", np.repeat(step_time_ns, phases.decode_tokens))}


def run_execution_config(trace, cfg, sched, per_step: bool = False, record: bool = False):
    """Run a resolved configuration through the execution timeline."""
    from .replay import ReplayResult, metrics_from_counters

    entry, args, phases = execution_inputs(cfg, sched, trace, per_step, record)
    counters, step_time, step_stall, outcome, wptr, wkeys = entry(*args)
    metrics = metrics_from_counters(counters[: core.N_SIZE], sched, trace.num_tokens, cfg.model.expert_bytes)
    c = [int(x) for x in counters]
    metrics["demand_loads"] = c[ex.N_DEMAND_LOADS]
    pre = (c[ex.N_PREFILL_HITS], c[ex.N_PREFILL_LATE], c[ex.N_PREFILL_MISSES])
    dec = (metrics["hits"] - pre[0], metrics["late"] - pre[1], metrics["misses"] - pre[2])
    metrics.update({
        "cpu_executions": c[ex.N_CPU],
        "zero_copy_executions": c[ex.N_ZERO_COPY],
        "host_hits": c[ex.N_HOST_HITS],
        "nvme_loads": c[ex.N_NVME_LOADS],
        "peak_overflow": c[ex.N_PEAK_OVERFLOW],
    })
    for name, (h, lt, m) in (("prefill", pre), ("decode", dec)):
        n = h + lt + m
        metrics.update({
            f"{name}_accesses": n, f"{name}_hits": h, f"{name}_late": lt, f"{name}_misses": m,
            f"{name}_hit_rate": h / n if n else 0.0,
        })
    metrics.update(latency_metrics(step_time, phases))
    result = ReplayResult(
        metrics=metrics,
        config={**cfg.describe(), "trace": trace.fingerprint(), "fastsim_version": __version__},
    )
    if per_step:
        result.step_time_s = step_time / 1e9
        result.step_stall_s = step_stall / 1e9
    if record:
        result.outcomes = outcome
        result.wanted = [wkeys[wptr[i] : wptr[i + 1]] for i in range(wptr.shape[0] - 1)]
    return result
