"""Sweep scaling: a top-k grid run by the sweep engine with one worker and with two."""
from __future__ import annotations

import os

import numpy as np

from .registry import register_case
from .timing import median, timed

__all__ = ["sweep_spec", "sweep_scaling", "GRID_SIDE", "JOBS"]

MODEL = "switch-base-128"
HARDWARE = "rtx3090"
SLOTS = 512
#: The grid is GRID_SIDE values of ``k`` by GRID_SIDE values of ``decay_factor``.
GRID_SIDE = 16
#: The sweep's trace has ``tokens // TRACE_DIVISOR`` tokens (100k at the default 1M).
TRACE_DIVISOR = 10
JOBS = 2


def grid_values(side: int) -> tuple[list[int], list[float]]:
    """``side`` values of ``k`` (2, 4, ..., ``2 * side``: at side 16, 12 layers x 32 wanted experts
    fit in 512 slots) and of ``decay_factor`` (``1 - 10**-x``, x evenly spaced from 1 to 4)."""
    ks = [2 * (i + 1) for i in range(side)]
    decays = [round(1.0 - 10.0 ** -x, 6) for x in np.linspace(1.0, 4.0, side)]
    return ks, list(dict.fromkeys(decays))


def sweep_spec(tokens: int, side: int = GRID_SIDE) -> dict:
    """The sweep spec of the case: one generated trace, a ``side`` x ``side`` top-k grid, no baseline."""
    from .context import SEED, SEQUENCE_TOKENS

    ks, decays = grid_values(side)
    return {
        "name": "bench-top-k-grid",
        "seed": SEED,
        "traces": [{
            "name": f"{MODEL}-{tokens}", "model": MODEL, "tokens": int(tokens),
            "sequences": max(1, -(-int(tokens) // SEQUENCE_TOKENS)),
        }],
        "hardware": HARDWARE,
        "batch_sizes": 1,
        "caches": SLOTS,
        "evictions": "lru",
        "strategies": {"top-k": {"k": ks, "decay_factor": decays}},
        "baseline": False,
    }


def sweep_scaling(ctx, side: int | None = None, jobs: int = JOBS) -> dict:
    """Time the grid with one job and with ``jobs``, ``ctx.repeat`` times each, alternating.

    ``side`` defaults to :data:`GRID_SIDE` (read at call time, so a smaller grid can be set).

    Every run writes to a fresh folder, so nothing resumes; each run's tasks report their
    worker's pid and the numba dispatcher's compilations and on-disk cache loads during the task.
    """
    from ..sweep import run_sweep

    side = GRID_SIDE if side is None else int(side)
    tokens = max(1, ctx.tokens // TRACE_DIVISOR)
    spec = sweep_spec(tokens, side)
    size = len(spec["strategies"]["top-k"]["k"]) * len(spec["strategies"]["top-k"]["decay_factor"])
    times: dict[int, list[float]] = {1: [], jobs: []}
    compiled: dict[int, int] = {1: 0, jobs: 0}
    cache_loads: dict[int, int] = {1: 0, jobs: 0}
    pids: dict[int, set] = {1: set(), jobs: set()}
    task_s: dict[int, list[float]] = {1: [], jobs: []}
    rows = failures = tasks = None
    first = None
    for i in range(ctx.repeat):
        for n in (1, jobs):
            ctx.log(f"sweep: {size} configurations, {n} job(s), run {i + 1} of {ctx.repeat}")
            out = ctx.workdir / f"sweep-{n}-jobs-{i}"
            seconds, run = timed(lambda: run_sweep(spec, n_jobs=n, out=out, progress=False))
            times[n].append(seconds)
            compiled[n] += sum(t.compiled for t in run.tasks)
            cache_loads[n] += sum(t.cache_loads for t in run.tasks)
            pids[n].update(t.pid for t in run.tasks)
            task_s[n].append(sum(t.wall_s for t in run.tasks))
            rows, failures, tasks = run.table.num_rows, len(run.failures), len(run.tasks)
            # every run must give the same table, wall times aside
            table = run.table.drop_columns([c for c in run.table.column_names if c == "wall_s"]).replace_schema_metadata(None)
            if first is None:
                first = table
            elif not table.equals(first):
                raise RuntimeError("sweep bench: runs with different job counts gave different tables")
    one, many = median(times[1]), median(times[jobs])
    parent_pid = os.getpid()
    return {
        "fastsim_per_s": rows / many,
        "baseline": "the same sweep, 1 job",
        "baseline_per_s": rows / one,
        "ratio": one / many,
        "unit": "replays/s",
        "one_job_s": one,
        "many_jobs_s": many,
        "no_worker_compilation": compiled[jobs] == 0 and compiled[1] == 0,
        "configurations": rows,
        "jobs": jobs,
        "failures": failures,
        "tasks_per_run": tasks,
        "tokens": tokens,
        "cache_slots": SLOTS,
        "one_job_task_s": median(task_s[1]),
        "many_jobs_task_s": median(task_s[jobs]),
        "worker_pids": len(pids[jobs] - {parent_pid}),
        "worker_compilations": compiled[jobs],
        "worker_cache_loads": cache_loads[jobs],
        "in_process_compilations": compiled[1],
    }


@register_case(
    "sweep",
    "fastsim.sweep of a 16 x 16 top-k grid (k x decay_factor; 512 slots, LRU, batch 1) over a generated "
    "switch-base-128 trace of a tenth the tokens: 2 jobs vs 1 job, whole sweep timed",
    target="ratio >= 1.5; no compilation in any worker",
)
def sweep_case(ctx) -> dict:
    return sweep_scaling(ctx)
