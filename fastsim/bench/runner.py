"""Run benchmark cases and collect one result object (what ``fastsim bench --json`` prints)."""
from __future__ import annotations

import os
import platform
import sys

from .._version import __version__
from ..errors import ConfigError
from .context import DEFAULT_REPEAT, DEFAULT_TOKENS, BenchContext
from .registry import get_cases, resolve_names

__all__ = ["run_bench", "machine_info", "COMMON_FIELDS"]

#: Fields every case row carries (``None`` where a case has no baseline).
COMMON_FIELDS = ("case", "fastsim_per_s", "baseline", "baseline_per_s", "ratio", "unit", "target")


def machine_info() -> dict:
    """What the figures were measured on."""
    import numba
    import numpy

    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": numpy.__version__,
    }
    try:
        import libcachesim

        info["libcachesim"] = getattr(libcachesim, "__version__", "unknown")
    except ImportError:
        info["libcachesim"] = None
    try:
        import pyarrow

        info["pyarrow"] = pyarrow.__version__
    except ImportError:  # pragma: no cover - a core dependency
        info["pyarrow"] = None
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    return info


def run_bench(cases=None, tokens: int = DEFAULT_TOKENS, repeat: int = DEFAULT_REPEAT, log=None) -> dict:
    """Run the named cases (all by default) and return the result object.

    Parameters
    ----------
    cases : list of str, optional
        Case names, in the order to run them.
    tokens : int
        Tokens of the large generated traces (default one million).
    repeat : int
        Timed runs per measurement; rows report medians.
    log : callable, optional
        Receives progress lines.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ConfigError(f"--tokens must be a positive integer, got {tokens!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"--repeat must be a positive integer, got {repeat!r}")
    names = resolve_names(cases)
    registry = get_cases()
    rows = []
    with BenchContext(tokens, repeat, log) as ctx:
        for name in names:
            case = registry[name]
            ctx.log(f"case {name}")
            row = {"case": name, **case.func(ctx)}
            row.setdefault("target", case.target)
            for field in COMMON_FIELDS:
                row.setdefault(field, None)
            rows.append(row)
    return {
        "fastsim_version": __version__,
        "machine": machine_info(),
        "tokens": tokens,
        "repeat": repeat,
        "cases": rows,
    }
