"""The execution options of a replay (SPEC section 7), validated once.

Every option is off by default, and a replay whose options are all at their defaults (and whose
GPU has no memory tier) runs SPEC section 3's timeline unchanged; any other choice runs the
execution timeline (:mod:`fastsim.timeline.execution`).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

from ..errors import ConfigError

__all__ = ["ExecutionOptions", "execution_options", "TIMELINES", "LINKS", "MISS_EXECUTIONS", "OVERFLOWS"]

TIMELINES = ("simple", "layered")
LINKS = ("fifo", "demand-first")
MISS_EXECUTIONS = ("load", "cpu", "zero-copy")
OVERFLOWS = ("error", "exceed")


@dataclass(frozen=True)
class ExecutionOptions:
    """``timeline``, ``link``, ``max_inflight_prefetches``, ``miss_execution``,
    ``max_uploads_per_layer``, ``overflow`` and ``prefill`` as ``docs/model.md`` defines them."""

    timeline: str = "simple"
    link: str = "fifo"
    max_inflight_prefetches: int | None = None
    miss_execution: str = "load"
    max_uploads_per_layer: int | None = None
    overflow: str = "error"
    prefill: bool = False

    @property
    def is_default(self) -> bool:
        return self == ExecutionOptions()

    def describe(self) -> dict:
        """The options as a row records them (``None`` caps as -1, like ``max_prefetch_loads``)."""
        d = asdict(self)
        for name in ("max_inflight_prefetches", "max_uploads_per_layer"):
            if d[name] is None:
                d[name] = -1
        return d


def _choice(value, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _cap(value, name: str, minimum: int):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
        isinstance(value, float) and (not math.isfinite(value) or value != int(value))
    ):
        raise ConfigError(f"{name} must be an integer (or None for no cap), got {value!r}")
    if int(value) < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def execution_options(
    timeline="simple",
    link="fifo",
    max_inflight_prefetches=None,
    miss_execution="load",
    max_uploads_per_layer=None,
    overflow="error",
    prefill=False,
) -> ExecutionOptions:
    """Validate the execution options; one :class:`~fastsim.errors.ConfigError` naming the option
    at fault."""
    miss = _choice(miss_execution, "miss_execution", MISS_EXECUTIONS)
    uploads = _cap(max_uploads_per_layer, "max_uploads_per_layer", 0)
    if uploads is not None and miss == "load":
        raise ConfigError(
            "max_uploads_per_layer caps uploads when the other misses run elsewhere: it needs "
            "miss_execution='cpu' or 'zero-copy'"
        )
    if not isinstance(prefill, (bool, int)) or isinstance(prefill, float) or prefill not in (0, 1):
        raise ConfigError(f"prefill must be true or false, got {prefill!r}")
    return ExecutionOptions(
        timeline=_choice(timeline, "timeline", TIMELINES),
        link=_choice(link, "link", LINKS),
        max_inflight_prefetches=_cap(max_inflight_prefetches, "max_inflight_prefetches", 1),
        miss_execution=miss,
        max_uploads_per_layer=uploads,
        overflow=_choice(overflow, "overflow", OVERFLOWS),
        prefill=bool(prefill),
    )
