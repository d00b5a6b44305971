"""The sweep driver: traces and schedules in the parent, tasks fanned out, shards, the merged table.

Flow of :func:`run_sweep`:

1. validate the spec (:mod:`fastsim.sweep.spec`) and expand it (:mod:`fastsim.sweep.grid`);
2. per trace and run: generate or read the trace, resolve each row's batching (a recorded trace's
   default), hash every row, and for the rows not done yet build each ``(trace, batch size,
   batching)`` schedule once and save it for workers to map read-only;
3. warm the entry point of every (strategy, eviction) pair the tasks run, for read-only
   schedules, in the parent, so no worker compiles;
4. run tasks (many configurations each) in-process, on loky workers or on a dask cluster; write
   each finished task's rows as a shard;
5. rebuild the whole table from the expansion and the shards and write ``results.parquet``.

Results depend only on the spec: tasks hold no random state (generated traces take their seed from
the spec and the run index), so the table is the same, wall times aside, for any number of jobs,
any backend, and after any number of resumed interruptions.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from .._version import __version__
from ..errors import ConfigError, FastsimError, SpecError
from ..eviction import get_eviction
from ..strategies import get_strategy
from ..profiles import model_profile
from ..timeline.layout import pinned_by_count
from ..timeline.recorded import CONTINUOUS, resolve_batching
from ..timeline.schedule import build_schedule, with_requests, with_scores
from .axes import GLOBAL
from .configs import config_from_mapping
from .grid import Config, baseline_config, expand, row_hash
from .results import build_table, read_shards, write_shard, write_table
from .schedules import is_saved, save_schedule, schedule_dir_name
from .spec import Baseline, Spec, generate_with, load_spec
from .worker import RowResult, TaskResult, TaskSpec, TraceMeta, run_task, warm

__all__ = ["Row", "GridRun", "run_sweep", "sweep", "run_grid", "replay_many", "BACKENDS"]

BACKENDS = ("loky", "dask")
_MAX_CHUNK = 64


@dataclass
class Row:
    """One row of the results table: a configuration at one run of its trace."""

    config_id: int
    run: int
    seed: int | None
    config: Config
    meta: TraceMeta
    hash: str
    baseline_hash: str | None = None
    pinned: int = 0  # keys its pin request pins on this run's trace


@dataclass
class GridRun:
    """What a sweep or grid run produced.

    Attributes
    ----------
    table : pyarrow.Table
        One row per configuration and run (see ``docs/sweeps.md`` for the columns).
    tasks : list of TaskResult
        The tasks run now (resumed rows excluded), each with its worker's pid and how many entry
        points the worker compiled (``compiled``) or loaded from the cache (``cache_loads``).
    failures : list of (Row, str)
        Rows whose configuration raised, with the message.
    out_dir : Path or None
    """

    table: pa.Table
    tasks: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    out_dir: Path | None = None
    skipped: int = 0

    @property
    def worker_compilations(self) -> int:
        """Entry points compiled inside workers (0 when the parent's warm-up covered them)."""
        return sum(t.compiled for t in self.tasks)


def _jobs(n_jobs) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ConfigError(f"n_jobs must be a non-zero integer, got {n_jobs!r}")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


def _meta(trace, name: str, run: int, seed) -> TraceMeta:
    lengths = trace.sequence_lengths
    return TraceMeta(
        name=name, fingerprint=trace.fingerprint(), num_tokens=trace.num_tokens, num_layers=trace.num_layers,
        num_experts=trace.num_experts, top_k=trace.top_k, model=trace.model, run=run, seed=seed,
        source=trace.source, num_sequences=int(lengths.shape[0]),
        longest_sequence=int(lengths.max()) if lengths.shape[0] else 0,
        has_prompts=getattr(trace, "prompt_tokens", None) is not None,
    )


@dataclass
class _Group:
    """Pending rows sharing one saved schedule."""

    meta: TraceMeta
    batch_size: int
    next_use: bool
    sched_path: str
    rows: list
    pins: dict = field(default_factory=dict)
    prefill: bool = False
    batching: str = CONTINUOUS


def _resolved(cfg: Config, trace) -> Config:
    """``cfg`` with its batching resolved on ``trace`` (None: the trace's default), so the row's
    hash, schedule and ``batching`` column name the batching that runs."""
    batching = resolve_batching(cfg.batching, trace)
    return cfg if cfg.batching == batching else replace(cfg, batching=batching)


def _pins_for(trace, configs) -> dict:
    """``{(count, pin_profile): keys}`` for every pin count among ``configs``, chosen on ``trace``
    (workers see no routing; they get the keys)."""
    wanted = {(c.pinned, c.pin_profile) for c in configs if isinstance(c.pinned, int)}
    return {w: pinned_by_count(trace, w[0], w[1]) for w in sorted(wanted)}


def _pinned_count(cfg: Config, pins: dict) -> int:
    if cfg.pinned is None:
        return 0
    if isinstance(cfg.pinned, int):
        return len(pins[(cfg.pinned, cfg.pin_profile)])
    return len(cfg.pinned)


def _scores_digest(trace) -> str | None:
    """A digest of the trace's router scores (``Trace.fingerprint`` covers the routing only)."""
    scores = getattr(trace, "scores", None)
    if scores is None:
        return None
    return hashlib.blake2b(scores.tobytes(), digest_size=8).hexdigest()


def _check_scores(trace, configs, fail) -> None:
    """A policy that reads router scores needs a trace that has them: ``fail(message)`` raises."""
    if getattr(trace, "scores", None) is not None:
        return
    for c in configs:
        if get_eviction(c.eviction).needs_scores:
            raise fail(
                f"eviction {c.eviction!r} reads router scores, and this trace has none (record them at "
                "capture or import, or choose another eviction)"
            )


def _check_prompts(trace, configs, fail) -> None:
    """A prefill replay needs a trace that marks its prompts: ``fail(message)`` raises."""
    if getattr(trace, "prompt_tokens", None) is not None:
        return
    if any(c.execution.prefill for c in configs):
        raise fail(
            "prefill = true replays each prompt as one step, and this trace has no prompt marks (capture with "
            "--include-prompt, import a phase field, or give this trace prefill = false)"
        )


def _schedule_groups(trace, meta: TraceMeta, pending: list[Row], sched_root: Path, pins: dict) -> list[_Group]:
    """Build and save each (batch size, prefill, batching) schedule once, with the arrays its
    rows' policies read (and the prefill bookkeeping); group the pending rows by it. A row's
    batching is resolved on the trace here too, for callers that pass configurations as given."""
    by_batch: dict[tuple, list[Row]] = {}
    for row in pending:
        c = row.config
        by_batch.setdefault((c.batch_size, c.execution.prefill, resolve_batching(c.batching, trace)), []).append(row)
    groups = []
    for (batch, prefill, batching), rows in by_batch.items():
        policies = [get_eviction(r.config.eviction) for r in rows]
        # strategies read scores and request releases too (hybrimoe, fine-moe, moe-infinity)
        readers = policies + [get_strategy(name) for name in {r.config.strategy for r in rows}]
        next_use = any(p.needs_next_use for p in policies)
        scores = any(p.needs_scores for p in readers) and getattr(trace, "scores", None) is not None
        requests = any(p.needs_requests for p in readers)
        folder = sched_root / schedule_dir_name(
            meta.fingerprint, batch, next_use, _scores_digest(trace)[:12] if scores else False, requests, prefill,
            batching,
        )
        if not is_saved(folder, prefill):
            sched = build_schedule(trace, batch, next_use=next_use, prefill=prefill, batching=batching)
            if scores:
                sched = with_scores(sched, trace, batch, prefill, batching)
            if requests:
                sched = with_requests(sched, trace, batch, prefill, batching)
            phases = None
            if prefill:
                from ..replay_execution import phases_for

                phases = phases_for(trace, sched, batch, True, batching)
            save_schedule(sched, folder, phases)
        mine = {k: v for k, v in pins.items() if any(r.config.pinned == k[0] and r.config.pin_profile == k[1] for r in rows)}
        groups.append(_Group(meta, batch, next_use, str(folder), rows, mine, prefill, batching))
    return groups


def _warm_keys(rows) -> list[tuple]:
    """``(strategy, eviction, simple, execution)`` of every row: ``simple`` when its cache is
    SPEC section 3's (one global partition of slots, nothing pinned), which on-demand replays on
    its own path; ``execution`` when it runs SPEC section 7's timeline (an option set, an auto
    cache, or a GPU with a host-memory tier), whose entry point serves every cache alike."""
    keys = {}
    for r in rows:
        c = r.config
        execution = not c.execution.is_default or c.cache.kind == "auto" or c.hardware.host_bytes is not None
        slot_cache = c.model.uniform_sizes or c.cache.kind in ("slots", "working-set")
        simple = c.cache_partition == GLOBAL and r.pinned == 0 and slot_cache and not execution
        keys[(c.strategy, c.eviction, simple, execution)] = None
    return list(keys)


def _tasks(groups: list[_Group], workers: int, chunk_size: int | None, imports: tuple) -> list[TaskSpec]:
    total = sum(len(g.rows) for g in groups)
    if chunk_size is None:
        chunk_size = max(1, min(_MAX_CHUNK, math.ceil(total / (4 * workers)))) if total else 1
    tasks = []
    for g in groups:
        for lo in range(0, len(g.rows), chunk_size):
            part = g.rows[lo : lo + chunk_size]
            key = hashlib.blake2b("".join(r.hash for r in part).encode(), digest_size=10).hexdigest()
            used = {(r.config.pinned, r.config.pin_profile) for r in part}
            tasks.append(
                TaskSpec(
                    key=key, meta=g.meta, batch_size=g.batch_size, next_use=g.next_use,
                    items=[(r.hash, r.config) for r in part], imports=imports, sched_path=g.sched_path,
                    pins={k: v for k, v in g.pins.items() if k in used}, prefill=g.prefill, batching=g.batching,
                )
            )
    return tasks


def _execute(tasks: list[TaskSpec], n_jobs: int, backend: str, scheduler):
    """Yield each task's :class:`TaskResult` as it finishes (in any order)."""
    if backend == "dask":
        from .dask_backend import run_tasks

        yield from run_tasks(tasks, scheduler=scheduler, n_workers=n_jobs)
        return
    if n_jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            yield run_task(task)
        return
    from joblib import Parallel, delayed

    # Payloads are small (configurations and a folder name): no automatic memmapping needed.
    parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered", max_nbytes=None, batch_size=1)
    yield from parallel(delayed(run_task)(task) for task in tasks)


def _row_dict(r: RowResult) -> dict:
    from .results import ALL_METRICS

    out = {"cache_slots": r.cache_slots, "error": r.error, "wall_s": r.wall_s}
    for m in ALL_METRICS:
        out[m] = None if r.metrics is None else r.metrics.get(m)
    return out


def _run_tasks(tasks, n_jobs, backend, scheduler, progress, shard_dir, results: dict) -> list[TaskResult]:
    """Run ``tasks``, writing a shard per finished task and filling ``results`` by row hash."""
    from tqdm import tqdm

    total = sum(len(t.items) for t in tasks)
    if progress is None:
        progress = sys.stderr.isatty()
    done_tasks = []
    with tqdm(total=total, unit="replay", disable=not progress, file=sys.stderr, dynamic_ncols=True, leave=False) as bar:
        for res in _execute(tasks, n_jobs, backend, scheduler):
            if shard_dir is not None:
                write_shard(shard_dir, res.key, [(r.row, r) for r in res.rows])
            for r in res.rows:
                results[r.row] = _row_dict(r)
            bar.update(len(res.rows))
            res.rows = [r.row for r in res.rows]  # keep stats light
            done_tasks.append(res)
    return done_tasks


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------------------------
# spec sweeps


def _load_file_trace(spec: Spec, t):
    from ..trace import read_trace

    try:
        return read_trace(t.file)
    except FileNotFoundError:
        raise spec.error(t.path + ("file",), f"no such trace file {str(t.file)!r}") from None
    except FastsimError as exc:
        raise spec.error(t.path + ("file",), str(exc)) from None


def _models_for(spec: Spec, t, trace) -> tuple:
    """The model profiles a trace runs with, checked against its shape."""
    if spec.profiles is not None:
        models = tuple(dict.fromkeys(m for m, _ in spec.profiles))
        first = {}
        for i, (m, _) in enumerate(spec.profiles):
            first.setdefault(m, ("profiles", i, 0))
        paths = [first[m] for m in models]
    elif spec.models is not None:
        models = spec.models
        paths = [("models", i) for i in range(len(models))]
    elif t.model is not None and not isinstance(t.model, tuple):
        try:
            models = (model_profile(t.model),)
        except FastsimError as exc:
            raise spec.error(t.path + ("model",), str(exc)) from None
        paths = [t.path + ("model",)]
    elif trace is not None and trace.model is not None:
        try:
            models = (model_profile(trace.model),)
        except FastsimError as exc:
            raise spec.error(t.path + ("file",), f"the trace's model: {exc}") from None
        paths = [t.path + ("file",)]
    else:
        raise spec.error(t.path, "the trace names no model profile: add model = NAME to it, or a top-level models list")
    if trace is not None:
        for m, path in zip(models, paths):
            shape = (m.num_layers, m.num_experts, m.top_k)
            have = (trace.num_layers, trace.num_experts, trace.top_k)
            if shape != have:
                raise spec.error(
                    path, f"model {m.name!r} has (num_layers, num_experts, top_k) = {shape} but trace {t.name!r} has {have}"
                )
    return models


def _generate(t, seed: int):
    return generate_with(t.model, t.tokens, t.sequences, seed, t.params)


def run_sweep(
    spec,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler=None,
    out=None,
    resume: bool = False,
    progress: bool | None = None,
    chunk_size: int | None = None,
) -> GridRun:
    """Run a sweep spec; see :func:`sweep`. Returns the table with task statistics and failures."""
    _check_backend(backend)
    jobs = _jobs(n_jobs)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    out_dir = Path(out) if out is not None else (spec.out or Path("results") / spec.name)
    shard_dir = out_dir / "shards"
    sched_root = out_dir / ".schedules"
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {str(out_dir)!r} is a file")
    if not resume and shard_dir.is_dir():
        for old in shard_dir.glob("shard-*.parquet"):
            old.unlink()
    done = read_shards(shard_dir) if resume else {}

    # models need the file traces' metadata; read each file once and keep it for its runs
    files = {t.name: _load_file_trace(spec, t) for t in spec.traces if not t.generated}
    models_for = {t.name: _models_for(spec, t, files.get(t.name)) for t in spec.traces}
    for t in spec.traces:
        for m in models_for[t.name]:
            spec.check_shape(m.num_layers, m.num_experts, f"model {m.name!r} of trace {t.name!r}")
    configs, baseline_of = expand(spec, models_for)
    by_trace: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        by_trace.setdefault(cfg.trace, []).append(i)

    rows: list[Row] = []
    groups: list[_Group] = []
    bounds: dict = {}  # row hash -> bound_total_time_s, with ``bound = true`` (docs/bounds.md)
    for t in spec.traces:
        for run in range(spec.runs):
            seed = t.run_seed(spec.seed, run)
            trace = files[t.name] if not t.generated else None
            if trace is None:
                try:
                    trace = _generate(t, seed)
                except FastsimError as exc:
                    raise spec.error(t.path, str(exc)) from None
            meta = _meta(trace, t.name, run, seed)
            ids = by_trace.get(t.name, [])
            _check_scores(trace, [configs[i] for i in ids], lambda message: spec.error(t.path, message))
            _check_prompts(trace, [configs[i] for i in ids], lambda message: spec.error(t.path, message))
            pins = _pins_for(trace, [configs[i] for i in ids])
            digest = _scores_digest(trace)
            resolved = {i: _resolved(configs[i], trace) for i in ids}
            hashes = {i: row_hash(resolved[i], meta.fingerprint, run, seed, digest) for i in ids}
            mine = [
                Row(i, run, seed, resolved[i], meta, hashes[i], hashes.get(baseline_of[i]) if baseline_of[i] is not None else None,
                    _pinned_count(resolved[i], pins))
                for i in ids
            ]
            rows.extend(mine)
            if spec.bound:
                from ..bound.sweep_columns import row_bounds

                bounds.update(row_bounds(trace, mine, pins))
            pending = [r for r in mine if r.hash not in done]
            if pending:
                groups.extend(_schedule_groups(trace, meta, pending, sched_root, pins))
            del trace
        files.pop(t.name, None)

    tasks = _tasks(groups, jobs, chunk_size, spec.imports)
    task_results: list[TaskResult] = []
    results = dict(done)
    if tasks:
        warm(_warm_keys(r for g in groups for r in g.rows))
        task_results = _run_tasks(tasks, jobs, backend, scheduler, progress, shard_dir, results)
    rows.sort(key=lambda r: (r.config_id, r.run))
    table = build_table(rows, results, spec.spec_hash)
    if spec.bound:
        from ..bound.sweep_columns import with_bound_columns

        table = with_bound_columns(table, bounds)
    write_table(
        table, out_dir / "results.parquet",
        {"fastsim.spec_hash": spec.spec_hash, "fastsim.version": __version__, "fastsim.spec": json.dumps(spec.raw, default=str),
         **({"fastsim.reproduces": spec.reproduces} if spec.reproduces else {})},
    )
    _write_text(out_dir / "spec.json", json.dumps(spec.raw, indent=2, sort_keys=True, default=str) + "\n")
    failures = [(r, results[r.hash]["error"]) for r in rows if results.get(r.hash, {}).get("error")]
    return GridRun(table, task_results, failures, out_dir, skipped=len(done))


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def sweep(spec, n_jobs: int = 1, *, backend: str = "loky", scheduler=None, out=None, resume: bool = False,
          progress: bool | None = False, chunk_size: int | None = None) -> pa.Table:
    """Run a sweep spec and return its results table (also written to ``OUT/results.parquet``).

    Parameters
    ----------
    spec : str, os.PathLike or Mapping
        A TOML spec file (``docs/sweeps.md``) or the same document as a dict.
    n_jobs : int
        Worker processes (``-1``: one per CPU). The table does not depend on it.
    backend : {"loky", "dask"}
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: a scheduler address (``tcp://host:8786``) or a client; a local
        cluster on 127.0.0.1 with ``n_jobs`` workers when omitted.
    out : path, optional
        Output folder; default the spec's ``out``, else ``results/<spec name>``.
    resume : bool
        Keep the shards of an interrupted run and run only the missing configurations.
    progress : bool or None
        Progress bar on stderr (``None``: when stderr is a terminal).
    chunk_size : int, optional
        Configurations per task (default: about four tasks per worker, at most 64 each).

    Returns
    -------
    pyarrow.Table
        One row per configuration and run. Rows whose configuration raised carry its message in
        ``error`` (check ``table["error"]``); the command line exits 1 for them.
    """
    return run_sweep(spec, n_jobs, backend, scheduler, out, resume, progress, chunk_size).table


# ---------------------------------------------------------------------------------------------
# grids from Python (configurations read by fastsim.sweep.configs)

def run_grid(
    trace,
    configs,
    n_jobs: int = 1,
    *,
    backend: str = "loky",
    scheduler=None,
    baseline: bool = False,
    progress: bool | None = False,
    chunk_size: int | None = None,
    trace_name: str = "trace",
) -> GridRun:
    """Replay one trace under many configurations with the sweep machinery.

    Parameters
    ----------
    trace : Trace or path
    configs : sequence of mappings
        Keyword arguments of :func:`fastsim.replay` each (``strategy``, ``model``, ``hardware``,
        ``cache_slots`` or ``cache_bytes``, ``eviction``, ``eviction_params``, ``cache_partition``,
        ``pinned``, ``pin_profile``, ``batch_size``, ``max_prefetch_loads``, ``batching`` (None:
        the trace's default), and the strategy's parameters, flat or under ``params``).
    n_jobs, backend, scheduler, progress, chunk_size
        As for :func:`sweep`.
    baseline : bool
        Add the default baseline (on-demand, working-set cache, LRU) for a ``speedup`` column;
        baseline rows missing from ``configs`` are appended after them.

    Returns
    -------
    GridRun
        ``table`` has one row per entry of ``configs`` in order (then added baselines);
        ``tasks`` tells per task which process ran it and whether it compiled anything.
    """
    from ..trace import Trace, read_trace

    _check_backend(backend)
    jobs = _jobs(n_jobs)
    if not isinstance(trace, Trace):
        trace = read_trace(trace)
    cfgs = [_resolved(config_from_mapping(trace, i, c, trace_name), trace) for i, c in enumerate(configs)]
    for i, c in enumerate(cfgs):
        _check_scores(trace, [c], lambda message: ConfigError(f"configs[{i}]: {message}"))
        _check_prompts(trace, [c], lambda message: ConfigError(f"configs[{i}]: {message.replace('prefill = true', 'prefill=True')}"))
    base_cfgs: list[Config | None] = [None] * len(cfgs)
    if baseline:
        known = {c: i for i, c in enumerate(cfgs)}
        for i, c in enumerate(list(cfgs)):
            b = baseline_config(c, Baseline())
            if b not in known:
                known[b] = len(cfgs)
                cfgs.append(b)
                base_cfgs.append(None)
            base_cfgs[i] = b
        for i in range(len(base_cfgs)):
            if base_cfgs[i] is None:
                base_cfgs[i] = baseline_config(cfgs[i], Baseline())
    meta = _meta(trace, trace_name, 0, None)
    pins = _pins_for(trace, cfgs)
    digest = _scores_digest(trace)
    rows = []
    for i, c in enumerate(cfgs):
        h = row_hash(c, meta.fingerprint, 0, None, digest)
        bh = row_hash(base_cfgs[i], meta.fingerprint, 0, None, digest) if base_cfgs[i] is not None else None
        rows.append(Row(i, 0, None, c, meta, h, bh, _pinned_count(c, pins)))
    unique = list({r.hash: r for r in rows}.values())
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="fastsim-grid-") as tmp:
        groups = _schedule_groups(trace, meta, unique, Path(tmp), pins)
        tasks = _tasks(groups, jobs, chunk_size, ())
        warm(_warm_keys(unique))
        task_results = _run_tasks(tasks, jobs, backend, scheduler, progress, None, results)
    table = build_table(rows, results, None)
    failures = [(r, results[r.hash]["error"]) for r in rows if results[r.hash]["error"]]
    return GridRun(table, task_results, failures, None)


def replay_many(trace, configs, n_jobs: int = 1, *, backend: str = "loky", scheduler=None,
                baseline: bool = False, progress: bool | None = False) -> pa.Table:
    """Replay ``trace`` under every configuration of ``configs``; one table row per configuration.

    The notebook face of :func:`run_grid` (same arguments); a configuration that raises gives a
    row with its message in ``error``.

    Examples
    --------
    >>> table = fastsim.replay_many(trace, [{"strategy": "top-k", "k": k, "cache_slots": 256}
    ...                                     for k in (8, 16, 32)])
    """
    return run_grid(trace, configs, n_jobs, backend=backend, scheduler=scheduler, baseline=baseline, progress=progress).table
