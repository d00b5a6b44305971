"""What runs in a worker: one task = many configurations over one ``(trace, batch size, batching)`` schedule.

A task never sees the trace's routing array, only its schedule (mapped read-only from disk, or
handed over once per worker by dask) and the few trace figures a replay reports. Any exception of
one configuration becomes that row's error message; the task goes on with the next one.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import FastsimError
from ..replay import kernel_inputs, resolve_config, run_config, schedule_key
from ..timeline.layout import GLOBAL, PER_LAYER
from ..timeline.options import ExecutionOptions
from ..timeline.prefill import Phases
from ..timeline.recorded import CONTINUOUS
from ..timeline.schedule import Schedule
from .schedules import load_phases, load_schedule, readonly, readonly_array

__all__ = ["TraceMeta", "TaskSpec", "RowResult", "TaskResult", "run_task", "warm", "dispatcher_counts"]


@dataclass(frozen=True)
class TraceMeta:
    """The figures of one trace (at one run) that replays need, without its routing."""

    name: str
    fingerprint: str
    num_tokens: int
    num_layers: int
    num_experts: int
    top_k: int
    model: str | None
    run: int = 0
    seed: int | None = None
    source: str = ""
    num_sequences: int = 0
    longest_sequence: int = 0  # what an auto cache's KV budget reads when no context_tokens is given
    has_prompts: bool = False  # the trace marks its prompts (prefill replays need it)


@dataclass
class TaskSpec:
    """One task: configurations sharing a schedule.

    ``items`` holds ``(row, config)`` pairs, ``row`` being the caller's row index.
    ``sched_path`` is the folder of the saved schedule, or ``None`` when the schedule is passed
    to :func:`run_task` directly. ``pins`` maps each pin count of the items, as
    ``(count, pin_profile)``, to the keys the parent chose with it on the trace. ``prefill``:
    the schedule has prefill steps, and its prefill bookkeeping lies in ``sched_path`` (or in
    ``phases``, when the schedule is passed directly). ``batching``: the items' resolved batching,
    ``"continuous"`` or ``"recorded"`` (one step per recorded pass), which the schedule was built with.
    """

    key: str
    meta: TraceMeta
    batch_size: int
    next_use: bool
    items: list
    imports: tuple = ()
    sched_path: str | None = None
    pins: dict = field(default_factory=dict)
    prefill: bool = False
    phases: Phases | None = None
    batching: str = CONTINUOUS


@dataclass
class RowResult:
    row: int
    metrics: dict | None
    cache_slots: int | None
    error: str | None
    wall_s: float


@dataclass
class TaskResult:
    """A task's rows and what its worker compiled.

    ``compiled`` counts entry-point compilations in the worker during the task (numba dispatcher
    cache misses), ``cache_loads`` the compiled entry points it loaded from the on-disk cache.
    """

    key: str
    rows: list = field(default_factory=list)
    pid: int = 0
    compiled: int = 0
    cache_loads: int = 0
    wall_s: float = 0.0


class _TraceView:
    """Stands in for a :class:`~fastsim.trace.Trace` in ``resolve_config``/``run_config``.

    It holds no routing: the saved schedule carries every array the rows' policies read (next
    uses, router scores, request releases), pin counts arrive as the keys they chose, and a
    schedule with prefill steps comes with its prefill bookkeeping.
    """

    def __init__(self, meta: TraceMeta, sched: Schedule, batch_size: int, next_use: bool, prefill: bool = False,
                 phases: Phases | None = None, batching: str = CONTINUOUS):
        self.num_tokens = meta.num_tokens
        self.num_layers = meta.num_layers
        self.num_experts = meta.num_experts
        self.top_k = meta.top_k
        self.model = meta.model
        self._fp = meta.fingerprint
        # resolve_config asks only whether the trace marks prompts; what they mean is in ``phases``
        self.prompt_tokens = np.zeros(0, np.int64) if meta.has_prompts else None
        # the memos fastsim.replay.schedule_for and fastsim.replay_execution.phases_for consult
        # before building from the routing, under the keys they look up for this batching
        self._schedules = {schedule_key(batch_size, sched.has_next_use, prefill, batching): sched}
        if phases is None:  # decode only: every token a decode token (as phases_for builds it)
            phases = Phases(np.zeros(0, np.uint8), np.full(meta.num_sequences, -1, np.int64),
                            sched.active.astype(np.int64))
        # read-only like the schedule, so the execution timeline runs with the type warm() compiled
        self._phases = {_phases_key(batch_size, prefill, batching): Phases(*(readonly_array(a) for a in phases))}

    def fingerprint(self) -> str:
        return self._fp


def _phases_key(batch_size: int, prefill: bool, batching: str) -> tuple:
    """The key :func:`fastsim.replay_execution.phases_for` looks its memo up by."""
    return (batch_size, prefill) if batching == CONTINUOUS else (batch_size, prefill, batching)


def dispatcher_counts(entries) -> tuple[int, int]:
    """``(cache misses, cache hits)`` summed over numba dispatchers (0 when JIT is off)."""
    misses = hits = 0
    for entry in entries:
        stats = getattr(entry, "stats", None)
        if stats is not None:
            misses += sum(stats.cache_misses.values())
            hits += sum(stats.cache_hits.values())
    return misses, hits


def _message(exc: BaseException) -> str:
    if isinstance(exc, FastsimError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_task(task: TaskSpec, sched=None) -> TaskResult:
    """Run every configuration of ``task`` and return one :class:`RowResult` per item."""
    start = time.perf_counter()
    for module in task.imports:
        importlib.import_module(module)
    if sched is None:
        sched = load_schedule(task.sched_path)
    elif not isinstance(sched, Schedule):
        sched = sched.schedule  # a dask payload wrapper
    sched = readonly(sched)
    phases = None
    if task.prefill:
        phases = task.phases if task.phases is not None else load_phases(task.sched_path)
    view = _TraceView(task.meta, sched, task.batch_size, task.next_use, task.prefill, phases, task.batching)
    used: dict[int, tuple] = {}  # id(entry) -> (entry, its dispatcher counts before this task used it)
    out = TaskResult(task.key, pid=os.getpid())
    for row, cfg in task.items:
        t0 = time.perf_counter()
        try:
            kwargs = cfg.replay_kwargs(task.pins)
            kwargs["batching"] = task.batching  # the view has no metadata to take a default from
            if kwargs.get("cache_bytes") == "auto" and kwargs.get("context_tokens") is None:
                kwargs["context_tokens"] = task.meta.longest_sequence  # fastsim.replay's default
            rcfg, rsched = resolve_config(view, **kwargs)
            entry = entry_of(rcfg, rsched, view.top_k)
            if id(entry) not in used:
                used[id(entry)] = (entry, dispatcher_counts([entry]))
            result = run_config(view, rcfg, rsched)
            out.rows.append(RowResult(row, result.metrics, rcfg.cache_slots, None, time.perf_counter() - t0))
        except Exception as exc:  # one failing configuration must not stop the sweep
            out.rows.append(RowResult(row, None, None, _message(exc), time.perf_counter() - t0))
    for entry, (misses, hits) in used.values():
        after = dispatcher_counts([entry])
        out.compiled += after[0] - misses
        out.cache_loads += after[1] - hits
    out.wall_s = time.perf_counter() - start
    return out


def entry_of(rcfg, rsched, top_k: int):
    """The jitted entry point a resolved configuration runs through."""
    if rcfg.uses_execution:
        from ..timeline.entries import cacheable, execution_entry_for

        return execution_entry_for(rcfg.strategy, rcfg.policy, cached=cacheable(rcfg.strategy, rcfg.policy))
    return kernel_inputs(rcfg, rsched, top_k)[0]


#: The model of the tiny trace :func:`warm` compiles with (the entry points' types do not
#: depend on the model's figures or shape).
_WARM_MODEL = {
    "name": "fastsim-warm", "num_layers": 2, "num_experts": 4, "top_k": 2, "expert_bytes": 1000,
    "dense_bytes_per_layer": 1000, "expert_flops_per_token": 1.0, "dense_flops_per_token": 1.0,
}


def _warm_trace():
    from ..trace import Trace

    experts = np.array([[[0, 1], [1, 2]], [[1, 3], [0, 2]], [[2, 3], [3, 1]]], dtype=np.int16)
    scores = np.full(experts.shape, 0.5, dtype=np.float32)
    return Trace.from_arrays(experts, num_experts=4, sequence_lengths=[2, 1], scores=scores, source="fastsim-warm")


def warm(pairs) -> None:
    """Compile (or load from the on-disk cache) the entry point of each pair, for read-only schedules.

    ``pairs`` holds ``(strategy, eviction, simple)`` or ``(strategy, eviction, simple,
    execution)``: ``simple`` for SPEC section 3's cache (one global partition of slots, nothing
    pinned), which on-demand with ``lru`` or ``belady`` replays on its demand-only path; otherwise
    the pair's general entry point (every other organisation shares its types); ``execution``
    for the pair's execution-timeline entry point (SPEC section 7: every option and organisation
    shares its types). A bare strategy name means ``(name, "lru", True)``. Run in
    the parent before fanning out, so every worker finds exactly the types it will use in the
    cache instead of compiling them. A pair that cannot be resolved is left to the workers,
    which report the error on its rows.
    """
    trace = None
    for item in dict.fromkeys((p, "lru", True) if isinstance(p, str) else tuple(p) for p in pairs):
        strategy, eviction, simple, execution = (item + (False,))[:4]
        trace = trace if trace is not None else _warm_trace()
        try:
            cfg, sched = resolve_config(
                trace, strategy, _WARM_MODEL, "rtx3090", cache_slots=4, eviction=eviction, batch_size=1,
                cache_partition=GLOBAL if simple else PER_LAYER,
                execution=ExecutionOptions(timeline="layered") if execution else None,
            )
            if execution:
                from ..replay_execution import execution_inputs

                entry, args, _ = execution_inputs(cfg, sched, trace, False, False)
                args = (readonly(sched),) + tuple(args[1:-1]) + (readonly_array(args[-1]),)
            else:
                entry, args = kernel_inputs(cfg, readonly(sched), trace.top_k)
        except FastsimError:
            continue
        entry(*args)
