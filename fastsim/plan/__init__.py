"""Capacity planning: which cache and which strategy for a model, GPU and workload.

``fastsim.plan(trace, model, hardware, target_tokens_per_s=..., budget_gb=...)`` replays a small
grid (strategies x evictions x partitions x cache sizes, :mod:`fastsim.plan.grid`), bounds each
cache size, and answers from the measurements (:class:`Plan`); ``fastsim plan`` is its command
line. See ``docs/plan.md``.

Importing this package binds ``fastsim.plan`` to it rather than to the function, so the package
itself is callable: ``fastsim.plan(trace, ...)`` runs :func:`plan` either way.
"""
import sys
import types

from .answer import Plan
from .grid import Grid, StrategyChoice
from .run import BOUND, DEFAULT_HORIZON, plan

__all__ = ["plan", "Plan", "Grid", "StrategyChoice", "BOUND", "DEFAULT_HORIZON"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return plan(*args, **kwargs)

    __call__.__doc__ = plan.__doc__


sys.modules[__name__].__class__ = _CallablePackage
