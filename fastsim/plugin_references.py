"""Pure-Python references that users register with their strategies and eviction policies:
name -> factory tables.

``fastsim.strategies.register_strategy(..., reference=...)`` fills it and
``fastsim.reference.replay_reference`` reads it. It lives apart from both so that the kernel side
and the reference side never import each other; it holds no computation.
"""
from __future__ import annotations

from typing import Callable

__all__ = ["add_reference", "find_reference", "add_eviction_reference", "find_eviction_reference"]

_TABLE: dict[str, Callable] = {}


def add_reference(name: str, factory: Callable | None) -> None:
    """Record ``factory`` as the reference of strategy ``name`` (``None`` forgets it)."""
    if factory is None:
        _TABLE.pop(name, None)
    else:
        _TABLE[name] = factory


def find_reference(name: str) -> Callable | None:
    return _TABLE.get(name)


_EVICTIONS: dict[str, Callable] = {}


def add_eviction_reference(name: str, factory: Callable | None) -> None:
    """Record ``factory`` as the reference of eviction policy ``name`` (``None`` forgets it)."""
    if factory is None:
        _EVICTIONS.pop(name, None)
    else:
        _EVICTIONS[name] = factory


def find_eviction_reference(name: str) -> Callable | None:
    return _EVICTIONS.get(name)
