"""Running sweep tasks on a ``dask.distributed`` cluster (the optional ``fastsim[dask]`` extra).

Each schedule is scattered to the cluster once and handed to every task that replays it, so
workers need no shared file system. Workers on other machines compile the kernels once each
unless they share fastsim's numba cache (``NUMBA_CACHE_DIR`` on a shared disk); each task reports
what its worker compiled.
"""
from __future__ import annotations

from ..errors import ConfigError
from .schedules import load_phases, load_schedule
from .worker import TaskSpec, run_task

__all__ = ["run_tasks", "local_client"]


class SchedulePayload:
    """Wraps a schedule so dask ships it as one object (it would split a tuple into items)."""

    def __init__(self, schedule):
        self.schedule = schedule


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "the dask backend needs dask.distributed: pip install 'fastsim[dask]' (dask and distributed)"
        ) from None
    return distributed


def local_client(n_workers: int):
    """A client of a new local cluster on 127.0.0.1 (``n_workers`` processes, one thread each)."""
    distributed = _import_distributed()
    cluster = distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    return distributed.Client(cluster), cluster


def run_tasks(tasks: list[TaskSpec], scheduler=None, n_workers: int = 1):
    """Yield each task's result as it finishes.

    ``scheduler`` is a scheduler address, a ``distributed.Client``, or ``None`` for a local
    cluster that lives as long as this generator.
    """
    distributed = _import_distributed()
    cluster = None
    own = False
    if isinstance(scheduler, distributed.Client):
        client = scheduler
    elif scheduler is None:
        client, cluster = local_client(n_workers)
        own = True
    elif isinstance(scheduler, str):
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"cannot reach the dask scheduler at {scheduler!r}: {exc}") from None
        own = True
    else:
        raise ConfigError(f"scheduler must be an address or a distributed.Client, got {type(scheduler).__name__}")
    futures = []
    try:
        scattered = {}
        for task in tasks:
            path = task.sched_path
            if path not in scattered:
                scattered[path] = client.scatter(SchedulePayload(load_schedule(path)), hash=False)
        for task in tasks:
            phases = load_phases(task.sched_path) if task.prefill else None  # small: travels with the task
            remote = TaskSpec(**{**task.__dict__, "sched_path": None, "phases": phases})
            futures.append(client.submit(run_task, remote, scattered[task.sched_path], pure=False))
        for future in distributed.as_completed(futures):
            yield future.result()
    finally:
        for f in futures:
            f.cancel()
        if own:
            client.close()
        if cluster is not None:
            cluster.close()
