"""The benchmark cases: a name -> case registry, filled by the modules in :data:`CASE_MODULES`.

A case is a function ``case(ctx) -> dict`` taking a :class:`~fastsim.bench.context.BenchContext`.
It returns at least ``fastsim_per_s``, ``baseline`` (what fastsim is compared with, or ``None``),
``baseline_per_s``, ``ratio`` (``fastsim_per_s / baseline_per_s``) and ``unit``; any other fields
(medians in seconds, sizes, checks) travel along into ``--json``. A new case is a new module under
``fastsim.bench`` that calls :func:`register_case` and is named in :data:`CASE_MODULES`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError

__all__ = ["BenchCase", "CASE_MODULES", "register_case", "get_cases", "resolve_names"]

#: Modules under ``fastsim.bench`` that register cases, in the order the table lists them.
CASE_MODULES = (
    "replay_cases", "parquet_case", "memory", "compile_case", "strategy_cases", "sweep_case", "eviction_cases",
    "curve_case", "execution_cases", "bound_case",
)


@dataclass(frozen=True)
class BenchCase:
    """One benchmark case: what it measures and the figure it aims for (reported, not enforced)."""

    name: str
    func: Callable
    description: str
    target: str = ""


_CASES: dict[str, BenchCase] = {}


def register_case(name: str, description: str, target: str = "") -> Callable:
    """Decorator registering ``func(ctx) -> dict`` as the case ``name``."""

    def wrap(func):
        _CASES[name] = BenchCase(name, func, description, target)
        return func

    return wrap


def get_cases() -> dict[str, BenchCase]:
    """Every registered case, in :data:`CASE_MODULES` order whatever order the modules were
    imported in (then other modules' cases, as registered)."""
    for mod in CASE_MODULES:
        importlib.import_module(f"{__package__}.{mod}")
    rank = {f"{__package__}.{mod}": i for i, mod in enumerate(CASE_MODULES)}
    order = sorted(enumerate(_CASES.values()), key=lambda ic: (rank.get(ic[1].func.__module__, len(rank)), ic[0]))
    return {case.name: case for _, case in order}


def resolve_names(names) -> list[str]:
    """Validate requested case names (``None`` = all, in registry order)."""
    cases = get_cases()
    if names is None:
        return list(cases)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ConfigError(f"--cases names no case: expected some of {', '.join(cases)}")
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise ConfigError(f"unknown benchmark case {unknown[0]!r}: expected one of {', '.join(cases)}")
    return list(dict.fromkeys(names))
