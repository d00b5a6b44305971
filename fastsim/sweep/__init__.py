"""Parameter sweeps: TOML specs expanded into replay grids, run in parallel, saved as Parquet.

``fastsim.sweep(spec, n_jobs=...)`` runs a spec and returns its results table;
``fastsim.replay_many(trace, configs)`` replays one trace under many configurations with the same
machinery. :func:`run_grid` and :func:`run_sweep` also return per-task statistics (which process
ran each task, and whether it had to compile anything). See ``docs/sweeps.md``.

Importing this package binds ``fastsim.sweep`` to it rather than to the function, so the package
itself is callable: ``fastsim.sweep(spec)`` runs :func:`sweep` either way.
"""
import sys
import types

from .driver import GridRun, replay_many, run_grid, run_sweep, sweep
from .spec import Spec, load_spec

__all__ = ["sweep", "replay_many", "run_grid", "run_sweep", "GridRun", "load_spec", "Spec"]


class _CallablePackage(types.ModuleType):
    def __call__(self, spec, n_jobs: int = 1, **kwargs):
        return sweep(spec, n_jobs, **kwargs)

    __call__.__doc__ = sweep.__doc__


sys.modules[__name__].__class__ = _CallablePackage
