"""Prefetching strategies: a name -> definition registry.

A strategy is a pair of jitted functions plus its parameters (see ``docs/strategies.md``)::

    init(num_layers, num_experts, top_k, params) -> state        # a tuple of NumPy arrays
    observe(state, params, sched, s, l, experts, counts, out) -> int

``observe`` is called once per ``(step, layer)`` after that layer's demand (SPEC section 3, item
3) with ``experts``/``counts`` the ascending ``R`` and its token counts (int32 views) and ``sched``
the replay's :class:`~fastsim.timeline.schedule.Schedule`. It writes the keys it wants
(``layer * E + expert``), most wanted first, into ``out`` (int64, length ``L * E``) and returns how
many it wrote. ``params`` is a float64 array in the order of the strategy's :class:`Param` list.

A strategy may also ask for feedback (registered with ``feedback=``)::

    feedback(state, params, sched, s, l, experts, outcomes) -> None

called right after each ``(step, layer)``'s demand and before ``observe``, with ``outcomes``
(int8, one per entry of ``experts``) ``HIT = 0``, ``LATE = 1`` or ``MISS = 2``. Such a strategy's
wanted lists depend on the cache, so they cannot be computed once and shared across caches.

Each built-in strategy module defines ``STRATEGY`` (a :class:`StrategyDef`) with a module-level
cached entry point ``replay(sched, cost, config, params)`` that calls the shared timeline core with
its own hooks, so numba specialises and inlines them and the compiled code survives new processes.
"""
from __future__ import annotations

import hashlib
import importlib
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from ..plugin_references import add_reference

__all__ = ["Param", "StrategyDef", "get_strategy", "list_strategies", "register_strategy", "file_digest", "BUILTIN_MODULES"]

#: Built-in strategy modules under ``fastsim.strategies``, in the seed's order A-E.
BUILTIN_MODULES = ("on_demand", "oracle", "multi_look", "top_k", "intelligent")
#: The seed's variants that need a name of their own (docs/strategies/): adaptive K reads feedback.
BUILTIN_MODULES += ("adaptive_top_k",)
#: Today's prefetchers (docs/strategies/), after the seed's five.
BUILTIN_MODULES += ("noisy_oracle", "pre_gated", "cross_layer", "moe_infinity", "fine_moe", "hybrimoe")


@dataclass(frozen=True)
class Param:
    """One strategy parameter.

    ``kind`` is ``"int"``, ``"float"`` or ``"bool"``: a number, bounds inclusive unless
    ``low_open`` / ``high_open``, ``None`` unbounded. Or ``"file"``: a path (default ``None``, no
    file) whose content ``load(path, num_layers, num_experts, values)`` (``values``: every
    parameter's checked value) turns into a float64 array; the
    kernel's ``params`` then hold its length in this parameter's place and its values after all
    the parameters, in the order of the file parameters. Rows record the path, and their hashes
    the file's content digest (:func:`file_digest`).
    """

    name: str
    default: float | None
    kind: str = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    doc: str = ""
    #: A parameter added after results were committed leaves configuration hashes alone at its
    #: default (``False``), so those results still resume; it enters the hash once changed.
    hashed_at_default: bool = True
    #: kind ``"file"``: ``load(path, num_layers, num_experts, values) -> np.ndarray`` (ConfigError naming the file)
    load: Callable | None = None

    def describe_range(self) -> str:
        lo = "-inf" if self.low is None else repr(self.low)
        hi = "inf" if self.high is None else repr(self.high)
        return f"{'(' if self.low_open or self.low is None else '['}{lo}, {hi}{')' if self.high_open or self.high is None else ']'}"

    def check(self, value: Any, strategy: str, kind: str = "strategy") -> float | str | None:
        where = f"{kind} {strategy!r} parameter {self.name!r}"
        if self.kind == "file":
            if value is None:
                return None
            if isinstance(value, (str, os.PathLike)) and os.fspath(value):
                return os.fspath(value)
            raise ConfigError(f"{where} must be a file path, got {value!r}")
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)) or value in (0, 1):
                return float(bool(value))
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        if self.kind == "int" and v != int(v):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        bad = (
            (self.low is not None and (v < self.low or (self.low_open and v == self.low)))
            or (self.high is not None and (v > self.high or (self.high_open and v == self.high)))
        )
        if bad:
            raise ConfigError(f"{where} must lie in {self.describe_range()}, got {value!r}")
        return v


@dataclass(frozen=True)
class StrategyDef:
    """Everything fastsim needs to run one strategy.

    ``replay``, where set, is a specialised entry point for the cases it covers (on-demand's
    demand-only timelines); every (strategy, eviction) pair also runs through the general core
    (:func:`fastsim.timeline.entries.entry_for`). ``reference``, for a
    user strategy, builds its pure-Python reference: ``reference(num_layers, num_experts, top_k,
    schedule, **params)`` returns an object whose ``observe(s, l, R, n)`` returns the wanted keys,
    most wanted first. (The built-ins' references live in ``fastsim.reference``, which the kernel
    side never imports.)
    """

    name: str
    init: Callable
    observe: Callable
    params: tuple[Param, ...] = ()
    replay: Callable | None = None
    reference: Callable | None = None
    description: str = ""
    builtin: bool = False
    #: ``feedback(state, params, sched, s, l, experts, outcomes)``, or None: see the module notes
    feedback: Callable | None = None
    #: reads the schedule's router scores (``sched.r_scores``) when the trace has them
    needs_scores: bool = False
    #: reads the schedule's per-step request releases (``sched.rel_ptr``, ``rel_keys``, ``rel_counts``)
    needs_requests: bool = False
    #: a user strategy whose entry points join the on-disk compilation cache (``register_strategy``)
    cache: bool = False

    def __post_init__(self):
        if self.feedback is not None:
            _FEEDBACK_OBSERVES.append(self.observe)

    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    def checked(self, given: dict[str, Any] | None = None) -> dict[str, float | str | None]:
        """Every parameter's validated value, defaults filled in: numbers as floats, file
        parameters as their paths (``None`` for none)."""
        given = dict(given or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ConfigError(f"strategy {self.name!r} has no parameter {unknown[0]!r} (it takes: {names})")
        return {p.name: p.check(given.get(p.name, p.default), self.name) for p in self.params}

    def resolve(self, given: dict[str, Any] | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Validated parameters as the float64 array ``observe`` receives.

        ``shape`` is the trace's ``(num_layers, num_experts)``: file parameters are loaded for it
        (their lengths in their places, their values appended); without it they are only checked
        and count as empty (validation before a trace is read).
        """
        checked = self.checked(given)
        values, payloads = [], []
        for p, v in zip(self.params, checked.values()):
            if p.kind != "file":
                values.append(v)
                continue
            data = np.zeros(0)
            if v is not None and shape is not None:
                data = np.ascontiguousarray(p.load(v, *shape, checked), dtype=np.float64).ravel()
            values.append(float(data.size))
            payloads.append(data)
        return np.concatenate([np.asarray(values if values else [0.0], dtype=np.float64), *payloads])


def file_digest(path) -> str:
    """The content digest of a file parameter's file, which joins configuration hashes (so an
    edited file is a new configuration); ConfigError naming the file when it cannot be read."""
    digest = hashlib.blake2b(digest_size=12)
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return digest.hexdigest()


_REGISTRY: dict[str, StrategyDef] = {}
_LOADED = False
#: ``observe`` hooks of every strategy defined with feedback (built-in or user, registered or not)
_FEEDBACK_OBSERVES: list = []


def takes_feedback(observe) -> str | None:
    """The name of a strategy with feedback whose ``observe`` hook this is, else None."""
    for fn in _FEEDBACK_OBSERVES:
        if fn is observe:
            for defn in list(_REGISTRY.values()):
                if defn.observe is observe and defn.feedback is not None:
                    return defn.name
            return getattr(observe, "__name__", "a strategy")
    return None


def _load_builtins() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in BUILTIN_MODULES:
        defn = importlib.import_module(f"{__name__}.{mod}").STRATEGY
        _REGISTRY.setdefault(defn.name, defn)


def register_strategy(
    name: str,
    init: Callable,
    observe: Callable,
    params: list[Param] | tuple[Param, ...] = (),
    reference: Callable | None = None,
    description: str = "",
    replace: bool = False,
    feedback: Callable | None = None,
    needs_scores: bool = False,
    needs_requests: bool = False,
    cache: bool = False,
) -> StrategyDef:
    """Register a user strategy (a pair of ``@numba.njit`` functions) under ``name``.

    It then runs in :func:`fastsim.replay` and sweeps like a built-in one. Its entry points are
    compiled once per process on first use; with ``cache=True`` they are kept on disk like the
    built-ins', under a name that carries a digest of the source files of its hooks (and of a
    user policy's), so an edit to those files compiles afresh. As with numba's own
    ``cache=True``, an edit to a helper in *another* file is not seen: leave ``cache`` off while
    such helpers change.
    ``feedback``, an optional third ``@numba.njit`` function, sees each ``(step, layer)``'s demand
    outcomes before ``observe`` (module notes); its reference then needs ``feedback(s, l, R, outcomes)``.
    ``needs_scores``: ``observe`` reads ``sched.r_scores`` (filled when the trace has router scores,
    else empty); ``needs_requests``: it reads the per-step request releases ``sched.rel_*``.
    """
    _load_builtins()
    if not isinstance(name, str) or not name:
        raise ConfigError("a strategy needs a non-empty name")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"strategy {name!r} is already registered (pass replace=True to override)")
    hooks = ((init, "init"), (observe, "observe")) + (() if feedback is None else ((feedback, "feedback"),))
    for fn, what in hooks:
        if not hasattr(fn, "py_func"):
            raise ConfigError(f"strategy {name!r}: {what} must be a numba.njit function")
    defn = StrategyDef(name, init, observe, tuple(params), None, reference, description, feedback=feedback,
                       needs_scores=bool(needs_scores), needs_requests=bool(needs_requests), cache=bool(cache))
    _REGISTRY[name] = defn
    add_reference(name, reference)
    return defn


def get_strategy(name: str) -> StrategyDef:
    if isinstance(name, str) and name not in _REGISTRY and name.replace("-", "_") in BUILTIN_MODULES:
        # a built-in loads on first use: its module is the name with '_' for '-'
        defn = importlib.import_module(f"{__name__}.{name.replace('-', '_')}").STRATEGY
        _REGISTRY.setdefault(defn.name, defn)
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        _load_builtins()
        raise ConfigError(f"unknown strategy {name!r}: expected one of {', '.join(sorted(_REGISTRY))}") from None


def list_strategies() -> list[str]:
    _load_builtins()
    return list(_REGISTRY)
