"""Lower bounds on a replay's total time (SPEC section 8, ``docs/bounds.md``).

``fastsim.bound(trace, model, hardware, cache_slots, batch_size)`` bounds ``total_time_s`` from
below for every strategy and every eviction policy at that cache, link and compute;
:func:`exact_optimum` solves tiny traces exactly (an integer program; needs SciPy).
"""
import sys
import types

from .api import DEFAULT_HORIZON, BoundResult, bound, bound_inputs

__all__ = ["bound", "BoundResult", "bound_inputs", "exact_optimum", "DEFAULT_HORIZON"]


def exact_optimum(trace, model=None, hardware="rtx3090", cache_slots=None, batch_size=1, *, cache_bytes=None,
                  cache_partition="global", pinned=None, pin_profile: float = 1.0, time_limit_s: float = 60.0) -> float:
    """The least ``total_time_s`` any strategy and eviction could reach on a tiny trace (seconds)."""
    from .exact import exact_optimum_ns

    inputs = bound_inputs(trace, model, hardware, cache_slots, batch_size, cache_bytes=cache_bytes,
                          cache_partition=cache_partition, pinned=pinned, pin_profile=pin_profile)
    return exact_optimum_ns(inputs, time_limit_s) / 1e9


class _CallablePackage(types.ModuleType):
    """``fastsim.bound(...)`` calls :func:`bound` although ``fastsim.bound`` is this package."""

    def __call__(self, *args, **kwargs):
        return bound(*args, **kwargs)

    __call__.__doc__ = bound.__doc__


sys.modules[__name__].__class__ = _CallablePackage
