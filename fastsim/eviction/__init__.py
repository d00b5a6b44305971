"""Eviction policies: a name -> definition registry (SPEC section 6, ``docs/model.md``).

A policy is a :class:`~fastsim.eviction.base.Hooks` of ``@numba.njit`` functions plus its
parameters; the timeline core inlines the hooks. Built-ins, one module each: ``lru``, ``belady``,
``fifo``, ``lfu``, ``lfru``, ``activation-aware``, ``score-aware``. Users add their own with
:func:`register_eviction` (``docs/eviction.md`` has a complete example).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from ..plugin_references import add_eviction_reference
from ..strategies import Param
from .base import Hooks

__all__ = ["EvictionDef", "Hooks", "get_eviction", "list_evictions", "register_eviction", "BUILTIN_MODULES"]

#: Built-in policy modules under ``fastsim.eviction`` (the name with '_' for '-').
BUILTIN_MODULES = ("lru", "belady", "fifo", "lfu", "lfru", "activation_aware", "score_aware")

_PARAMS = {
    "activation_aware": (
        Param("smoothing", 1.0, "float", low=0.0, low_open=True,
              doc="added to every activation count, so keys no request used still rank by layer"),
    ),
    "score_aware": (
        Param("alpha", 0.5, "float", low=0.0, high=1.0, low_open=True,
              doc="weight of the newest router score (HybriMoE uses 0.5)"),
    ),
}
_DESCRIPTIONS = {
    "lru": "least recently used (SPEC section 3)",
    "belady": "farthest next use (SPEC section 3; optimal only for one expert size)",
    "fifo": "earliest loaded",
    "lfu": "fewest demand accesses since load, ties least recent",
    "lfru": "smallest frequency over age (llama.cpp PR 21609's author's LFRU)",
    "activation_aware": "MoE-Infinity: layer position x the batch's request activation counts",
    "score_aware": "HybriMoE: decayed router score",
}


@dataclass(frozen=True)
class EvictionDef:
    """Everything the timeline needs of one policy.

    ``needs_next_use``: reads the schedule's next uses (Belady); ``needs_scores``: reads the
    trace's router scores; ``needs_requests``: reads which requests finish at each step.
    """

    name: str
    hooks: Hooks
    params: tuple[Param, ...] = ()
    needs_next_use: bool = False
    needs_scores: bool = False
    needs_requests: bool = False
    builtin: bool = False
    description: str = ""
    reference: Callable | None = field(default=None, compare=False)
    #: a user policy whose entry points join the on-disk compilation cache (``register_eviction``)
    cache: bool = False

    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def resolve(self, given: dict[str, Any] | None = None) -> np.ndarray:
        """Validated parameters as the float64 array the hooks receive."""
        given = dict(given or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ConfigError(f"eviction {self.name!r} has no parameter {unknown[0]!r} (it takes: {names})")
        values = [p.check(given.get(p.name, p.default), self.name, kind="eviction") for p in self.params]
        return np.asarray(values if values else [0.0], dtype=np.float64)


_REGISTRY: dict[str, EvictionDef] = {}


def _builtin(module: str) -> EvictionDef:
    mod = importlib.import_module(f"{__name__}.{module}")
    return EvictionDef(
        name=module.replace("_", "-"), hooks=mod.HOOKS, params=_PARAMS.get(module, ()),
        needs_next_use=getattr(mod, "NEEDS_NEXT_USE", False), needs_scores=getattr(mod, "NEEDS_SCORES", False),
        needs_requests=getattr(mod, "NEEDS_REQUESTS", False), builtin=True, description=_DESCRIPTIONS[module],
    )


def get_eviction(name) -> EvictionDef:
    if isinstance(name, str) and name not in _REGISTRY and name.replace("-", "_") in BUILTIN_MODULES:
        _REGISTRY[name] = _builtin(name.replace("-", "_"))
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown eviction {name!r}: expected one of {', '.join(list_evictions())}") from None


def list_evictions() -> list[str]:
    """The built-in policies in :data:`BUILTIN_MODULES` order, then the users', as registered."""
    builtins = [module.replace("_", "-") for module in BUILTIN_MODULES]
    for name in builtins:
        get_eviction(name)
    return builtins + [name for name in _REGISTRY if name not in builtins]


def register_eviction(
    name: str,
    hooks: Hooks,
    params=(),
    reference: Callable | None = None,
    needs_next_use: bool = False,
    needs_scores: bool = False,
    description: str = "",
    replace: bool = False,
    cache: bool = False,
) -> EvictionDef:
    """Register a user policy (a :class:`Hooks` of ``@numba.njit`` functions) under ``name``.

    It then runs in :func:`fastsim.replay` and sweeps like a built-in one, with every strategy.
    Its entry points compile once per process on first use, or with ``cache=True`` once per
    machine, as :func:`fastsim.strategies.register_strategy` says. ``reference`` is an optional
    pure-Python class for :func:`fastsim.reference.replay_reference` (``docs/eviction.md``).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("an eviction policy needs a non-empty name")
    if name.replace("-", "_") in BUILTIN_MODULES or (name in _REGISTRY and not replace):
        raise ConfigError(f"eviction {name!r} is already registered (pass replace=True to override)")
    if not isinstance(hooks, Hooks):
        raise ConfigError(f"eviction {name!r}: hooks must be a fastsim.eviction.Hooks")
    for what, fn in zip(Hooks._fields, hooks):
        if not hasattr(fn, "py_func"):
            raise ConfigError(f"eviction {name!r}: hook {what} must be a numba.njit function")
    defn = EvictionDef(name, hooks, tuple(params), needs_next_use, needs_scores, False, False, description, reference,
                       cache=bool(cache))
    _REGISTRY[name] = defn
    add_eviction_reference(name, reference)
    return defn
