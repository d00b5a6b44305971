"""What runs in a worker: one task = many configurations over one ``(trace, batch size)`` schedule.

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
from ..replay import resolve_config, run_config
from ..strategies import get_strategy
from ..timeline import core
from ..timeline.schedule import Schedule, schedule_from_sets
from .schedules import load_schedule, readonly

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


@dataclass
class TaskSpec:
    """One task: configurations sharing a schedule.

    ``items`` holds ``(row, config)`` pairs, ``row`` being the caller's row index.
    ``sched_path`` is the folder of the saved schedule, or ``None`` when the schedule is passed
    to :func:`run_task` directly.
    """

    key: str
    meta: TraceMeta
    batch_size: int
    next_use: bool
    items: list
    imports: tuple = ()
    sched_path: str | None = None


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
    """Stands in for a :class:`~fastsim.trace.Trace` in ``resolve_config``/``run_config``."""

    def __init__(self, meta: TraceMeta, sched: Schedule, batch_size: int, next_use: bool):
        self.num_tokens = meta.num_tokens
        self.num_layers = meta.num_layers
        self.num_experts = meta.num_experts
        self.top_k = meta.top_k
        self.model = meta.model
        self._fp = meta.fingerprint
        # the memo fastsim.replay.schedule_for consults before building a schedule
        self._schedules = {(batch_size, next_use): sched}

    def fingerprint(self) -> str:
        return self._fp


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
    view = _TraceView(task.meta, sched, task.batch_size, task.next_use)
    entries = []
    for name in dict.fromkeys(cfg.strategy for _, cfg in task.items):
        try:
            entries.append(get_strategy(name).entry())
        except Exception:
            pass  # reported on the rows below
    before = dispatcher_counts(entries)
    out = TaskResult(task.key, pid=os.getpid())
    for row, cfg in task.items:
        t0 = time.perf_counter()
        try:
            rcfg, rsched = resolve_config(view, **cfg.replay_kwargs())
            result = run_config(view, rcfg, rsched)
            out.rows.append(RowResult(row, result.metrics, rcfg.cache_slots, None, time.perf_counter() - t0))
        except Exception as exc:  # one failing configuration must not stop the sweep
            out.rows.append(RowResult(row, None, None, _message(exc), time.perf_counter() - t0))
    after = dispatcher_counts(entries)
    out.compiled = after[0] - before[0]
    out.cache_loads = after[1] - before[1]
    out.wall_s = time.perf_counter() - start
    return out


def warm(strategies) -> None:
    """Compile (or load from the on-disk cache) each strategy's entry point for read-only schedules.

    Run in the parent before fanning out, so every worker finds exactly the types it will use
    in the cache instead of compiling them.
    """
    sched = readonly(schedule_from_sets([[[0, 1]], [[1, 2]]], num_experts=4, next_use=True))
    cost = (np.int64(1), np.zeros(3, np.int64), np.zeros(3, np.int64))
    config = np.zeros(core.CFG_SIZE, np.int64)
    config[core.CFG_CAPACITY] = 4
    config[core.CFG_MAX_LOADS] = -1
    config[core.CFG_TOP_K] = 2
    for name in dict.fromkeys(strategies):
        defn = get_strategy(name)
        defn.entry()(sched, cost, config, defn.resolve(None))
