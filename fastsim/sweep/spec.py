"""Sweep specs: a TOML file (or a dict) naming traces, profiles, caches and strategy grids.

:func:`load_spec` validates the whole document before anything runs; every problem raises one
:class:`~fastsim.errors.SpecError` naming the file, the line and the key (``strategies.top-k.k``)
and what was expected. The format is documented in ``docs/sweeps.md``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FastsimError, SpecError
from ..profiles import hardware_profile, list_hardware, list_models, model_profile
from ..strategies import get_strategy
from .axes import (
    BUDGET_AXES, EXECUTION_AXES, EXECUTION_DEFAULTS, GLOBAL, INT64_MAX, WORKING_SET, CacheRequest, EvictionChoice,
    _show, batchings_axis, budget_axis, caches_axis, check_param_number, check_shape, check_uploads, eviction_choice, evictions_axis,
    execution_axes, max_loads_axis, parse_cache, partition_value, partitions_axis, pin_profile_value,
    pin_profiles_axis, pinned_axis, pinned_value,
)
from .locate import KeyLocator, format_path
from .trace_specs import TraceSpec, generate_with, generated_shape, trace_specs

__all__ = [
    "REPRODUCIBLE", "Spec", "TraceSpec", "StrategyGrid", "Baseline", "CacheRequest", "EvictionChoice", "load_spec",
    "parse_cache", "generate_with",
]

_TOP_KEYS = {
    "name", "description", "seed", "runs", "out", "imports", "traces", "models", "hardware",
    "batch_sizes", "batchings", "caches", "evictions", "cache_partitions", "pinned", "pin_profiles", "max_prefetch_loads",
    "strategies", "baseline", "profiles", "reproduces", "bound", *EXECUTION_AXES, *BUDGET_AXES,
}
#: Published experiments a spec may declare it reproduces (``reproduces = NAME``), with the
#: ``(num_layers, num_experts, top_k)`` their models must have.
REPRODUCIBLE = {"seed-switch": (12, 128, 1), "seed-qwen": (28, 64, 8)}
#: Axes a strategy table may set for itself (replacing the top-level lists).
_GRID_AXES = {"caches", "evictions", "cache_partitions", "pinned", "pin_profiles", "max_prefetch_loads",
              *EXECUTION_AXES, *BUDGET_AXES}
_BASELINE_KEYS = {"strategy", "cache", "eviction", "eviction_params", "cache_partition", "pinned", "pin_profile", "params"}


@dataclass(frozen=True)
class StrategyGrid:
    """One strategy table: the product of its parameter lists, plus optional axis overrides."""

    strategy: str
    combos: tuple[dict, ...]  # parameter dicts, product order (last key fastest)
    caches: tuple[CacheRequest, ...] | None
    evictions: tuple[EvictionChoice, ...] | None
    max_prefetch_loads: tuple[int | None, ...] | None
    path: tuple
    cache_partitions: tuple | None = None
    pinned: tuple | None = None
    pin_profiles: tuple[float, ...] | None = None
    execution: dict = field(default_factory=dict)  # option -> values, for the options this grid sets
    reserve_bytes: tuple | None = None
    context_tokens: tuple | None = None


@dataclass(frozen=True)
class Baseline:
    """The configuration each row's speedup is measured against (same trace, model, GPU, batch)."""

    strategy: str = "on-demand"
    cache: CacheRequest = CacheRequest(WORKING_SET)
    eviction: str = "lru"
    params: tuple = ()  # (name, value) pairs
    eviction_params: tuple = ()  # (name, float) pairs, the policy's defaults filled in
    cache_partition: Any = GLOBAL
    pinned: Any = None
    pin_profile: float = 1.0


@dataclass
class Spec:
    """A validated sweep spec."""

    name: str
    description: str
    seed: int
    runs: int
    out: Path | None
    imports: tuple[str, ...]
    traces: tuple[TraceSpec, ...]
    models: tuple | None  # model profiles, or None = each trace's own (or the pairs' models)
    hardware: tuple
    batch_sizes: tuple[int, ...]
    caches: tuple[CacheRequest, ...]
    evictions: tuple[EvictionChoice, ...]
    max_prefetch_loads: tuple[int | None, ...]
    grids: tuple[StrategyGrid, ...]
    baseline: Baseline | None
    spec_hash: str
    origin: str
    profiles: tuple | None = None  # ((ModelProfile, HardwareProfile), ...) run as pairs, not crossed
    reproduces: str | None = None  # a name in REPRODUCIBLE
    bound: bool = False  # bound_total_time_s and headroom_share columns (docs/bounds.md)
    cache_partitions: tuple = (GLOBAL,)  # "global", "per-layer" or tuples of per-layer sizes
    pinned: tuple = (None,)  # None, counts and sorted tuples of keys
    pin_profiles: tuple[float, ...] = (1.0,)
    #: SPEC section 7: option name -> values (each option's default alone when the spec leaves it out)
    execution: dict = field(default_factory=lambda: dict(EXECUTION_DEFAULTS))
    reserve_bytes: tuple = (None,)  # byte counts, or None: the default reserve (auto caches only)
    context_tokens: tuple = (None,)  # token counts, or None: the trace's longest sequence (auto caches only)
    batchings: tuple = (None,)  # "continuous", "recorded", or None: each trace's default
    raw: dict = field(repr=False, default_factory=dict)
    locator: KeyLocator | None = field(repr=False, default=None)
    shaped: tuple = field(repr=False, default=())  # (path, partition, pinned): lists checked against models

    def execution_axes(self, grid: StrategyGrid) -> dict:
        """The execution options' values for ``grid``: its own lists where it sets them."""
        return {**self.execution, **grid.execution}

    def error(self, path, message: str) -> SpecError:
        """A :class:`SpecError` naming the spec, the line of ``path`` and the key."""
        return _error(self.origin, self.locator, path, message)

    def check_shape(self, num_layers: int, num_experts: int, what: str) -> None:
        """Every partition list and pinned key list of the spec must fit ``what``'s shape."""
        for path, partition, pinned in self.shaped:
            try:
                check_shape(partition, pinned, num_layers, num_experts)
            except ValueError as exc:
                raise self.error(path, f"{exc} ({what} has {num_layers} layers of {num_experts} experts)") from None


def _error(origin: str, locator: KeyLocator | None, path, message: str) -> SpecError:
    line = locator.line(path) if locator is not None and path else None
    where = f"{origin}, line {line}" if line else origin
    return SpecError(f"{where}: {format_path(path)}: {message}")


class _Reader:
    """Typed access to the raw document, raising SpecErrors that name key and line."""

    def __init__(self, origin: str, locator: KeyLocator | None, base: Path):
        self.origin = origin
        self.locator = locator
        self.base = base

    def fail(self, path, message: str) -> SpecError:
        return _error(self.origin, self.locator, path, message)

    def check_keys(self, table: Mapping, allowed, path, what: str) -> None:
        unknown = [k for k in table if k not in allowed]
        if unknown:
            raise self.fail(
                tuple(path) + (unknown[0],),
                f"unknown key in {what}; expected one of {', '.join(sorted(allowed))}",
            )

    def integer(self, value, path, minimum: int, maximum: int = INT64_MAX, why: str = "a 64-bit integer") -> int:
        """An integer in ``[minimum, maximum]``; ``why`` says where the maximum comes from."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_show(value)}")
        if value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {value}")
        if value > maximum:
            raise self.fail(path, f"expected an integer <= {maximum} ({why}), got {_show(value)}")
        return value

    def string(self, value, path) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_show(value)}")
        return value

    def as_list(self, value, path) -> list:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(path, "the list is empty: a sweep axis needs at least one value")
        return items

    def path_value(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    def profile(self, value, path, kind: str):
        """A model or hardware profile: built-in name, TOML path (relative to the spec) or table."""
        resolve = model_profile if kind == "model" else hardware_profile
        builtins = list_models() if kind == "model" else list_hardware()
        if isinstance(value, str):
            if value not in builtins and (value.lower().endswith(".toml") or "/" in value or os.sep in value):
                value = self.path_value(value)
        elif not isinstance(value, Mapping):
            raise self.fail(path, f"expected a {kind} profile name, TOML path or table, got {_show(value)}")
        try:
            return resolve(value)
        except FastsimError as exc:
            raise self.fail(path, str(exc)) from None


def _canonical_hash(raw: dict) -> str:
    text = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def load_spec(source, base_dir=None) -> Spec:
    """Read and validate a sweep spec.

    Parameters
    ----------
    source : str, os.PathLike or Mapping
        A TOML file, or the parsed document as a dict.
    base_dir : path, optional
        Where relative paths in the spec point from: the spec file's folder by default, the
        current directory for a dict.

    Raises
    ------
    SpecError
        Naming the file, line and key at fault.
    """
    if isinstance(source, Mapping):
        raw = _plain(source)
        origin = "sweep spec"
        locator = None
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        default_name = "sweep"
    else:
        path = Path(os.fspath(source))
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"{origin}: no such sweep spec") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{origin}: cannot read: {exc}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{origin}: malformed TOML: {exc}") from None
        locator = KeyLocator(text)
        base = Path(base_dir) if base_dir is not None else path.parent
        default_name = path.stem
    r = _Reader(origin, locator, base)
    return _validate(raw, r, default_name)


def _plain(value):
    """A deep copy of a mapping as plain dicts and lists (for hashing and validation)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _validate(raw: dict, r: _Reader, default_name: str) -> Spec:
    r.check_keys(raw, _TOP_KEYS, (), "the sweep spec")
    name = r.string(raw.get("name", default_name), ("name",))
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise r.fail(("description",), f"expected a string, got {_show(description)}")
    runs = r.integer(raw.get("runs", 1), ("runs",), 1)
    seed = _seed(r, raw.get("seed", 0), ("seed",), runs)
    out = raw.get("out")
    out = r.path_value(r.string(out, ("out",))) if out is not None else None
    imports = ()
    if "imports" in raw:
        imports = tuple(r.string(m, ("imports", i)) for i, m in enumerate(r.as_list(raw["imports"], ("imports",))))
    for i, module in enumerate(imports):
        try:
            __import__(module)
        except (ImportError, ValueError, TypeError) as exc:  # "a..b" and "." are no module names
            raise r.fail(("imports", i), f"cannot import {module!r}: {exc}") from None

    traces = trace_specs(raw, r)
    for t in traces:
        if t.seed is not None:
            _seed(r, t.seed, t.path + ("seed",), runs)
    profiles = _profiles(raw, r)
    models = None
    if "models" in raw:
        models = tuple(r.profile(v, ("models", i), "model") for i, v in enumerate(r.as_list(raw["models"], ("models",))))
        _dedupe_check(r, [m.name for m in models], ("models",))
    hardware = tuple(
        r.profile(v, ("hardware", i), "hardware") for i, v in enumerate(r.as_list(raw.get("hardware", "rtx3090"), ("hardware",)))
    ) if profiles is None else tuple(dict.fromkeys(h for _, h in profiles))
    _dedupe_check(r, [h.name for h in hardware], ("hardware",))
    batch_sizes = tuple(r.integer(v, ("batch_sizes", i), 1) for i, v in enumerate(r.as_list(raw.get("batch_sizes", 1), ("batch_sizes",))))
    batchings = batchings_axis(raw["batchings"], ("batchings",), r) if "batchings" in raw else (None,)
    caches = caches_axis(raw.get("caches", WORKING_SET), ("caches",), r)
    evictions = evictions_axis(raw.get("evictions", "lru"), ("evictions",), r)
    shaped: list = []  # (path, partition, pinned) of every list value, checked against the models
    partitions, lists = partitions_axis(raw.get("cache_partitions", GLOBAL), ("cache_partitions",), r)
    shaped += [(where, v, None) for where, v in lists]
    pinned, lists = pinned_axis(raw.get("pinned", "none"), ("pinned",), r)
    shaped += [(where, GLOBAL, v) for where, v in lists]
    pin_profiles = pin_profiles_axis(raw.get("pin_profiles", 1.0), ("pin_profiles",), r)
    max_loads = max_loads_axis(raw.get("max_prefetch_loads", "none"), ("max_prefetch_loads",), r)
    execution = dict(EXECUTION_DEFAULTS)
    execution.update(execution_axes(raw, (), r))
    budgets = {k: budget_axis(k, raw[k], (k,), r) if k in raw else (None,) for k in BUDGET_AXES}
    grids = _strategies(raw, r, shaped)
    for g in grids:
        check_uploads({**execution, **g.execution}, g.execution, g.path, r)
    baseline = _baseline(raw, r, shaped)
    reproduces = raw.get("reproduces")
    if reproduces is not None and (not isinstance(reproduces, str) or reproduces not in REPRODUCIBLE):
        raise r.fail(("reproduces",), f"expected one of {', '.join(REPRODUCIBLE)}, got {_show(reproduces)}")
    with_bound = raw.get("bound", False)
    if not isinstance(with_bound, bool):
        raise r.fail(("bound",), f"expected true or false, got {_show(with_bound)}")
    spec = Spec(
        name=name, description=description, seed=seed, runs=runs, out=out, imports=imports,
        traces=traces, models=models, hardware=hardware, batch_sizes=batch_sizes, caches=caches,
        evictions=evictions, max_prefetch_loads=max_loads, grids=grids, baseline=baseline,
        spec_hash=_canonical_hash(raw), origin=r.origin, raw=raw, locator=r.locator,
        profiles=profiles, reproduces=reproduces, cache_partitions=partitions, pinned=pinned,
        pin_profiles=pin_profiles, shaped=tuple(shaped), execution=execution, batchings=batchings, **budgets,
    )
    spec.bound = with_bound
    listed = []  # (model, path) of every model the spec names outside its traces
    if models is not None:
        listed = [(m, ("models", i)) for i, m in enumerate(models)]
    elif profiles is not None:
        listed = [(m, ("profiles", i, 0)) for i, (m, _) in enumerate(profiles)]
    for m, _ in listed:
        spec.check_shape(m.num_layers, m.num_experts, f"model {m.name!r}")
    for t in traces:
        if not t.generated:
            if t.model is not None and not listed:
                spec.check_shape(t.model.num_layers, t.model.num_experts, f"trace {t.name!r}'s model {t.model.name!r}")
            continue
        _, nl, ne, k = generated_shape(t, r)
        for m, where in listed:
            if (m.num_layers, m.num_experts, m.top_k) != (nl, ne, k):
                raise r.fail(
                    where,
                    f"model {m.name!r} has (num_layers, num_experts, top_k) = "
                    f"{(m.num_layers, m.num_experts, m.top_k)} but trace {t.name!r} has {(nl, ne, k)}",
                )
        spec.check_shape(nl, ne, f"trace {t.name!r}")
    if reproduces is not None:
        want = REPRODUCIBLE[reproduces]
        for m, where in listed:
            if (m.num_layers, m.num_experts, m.top_k) != want:
                raise r.fail(
                    where,
                    f"reproduces = {reproduces!r} needs models of (num_layers, num_experts, top_k) = {want}; "
                    f"{m.name!r} has {(m.num_layers, m.num_experts, m.top_k)}",
                )
    return spec


def _seed(r: _Reader, value, path, runs: int) -> int:
    """A generator seed: run ``r`` generates with ``seed + r``, which a table holds as int64."""
    return r.integer(value, path, 0, INT64_MAX - (runs - 1),
                     f"run r generates with seed + r, a 64-bit integer, and runs = {runs}")


def _param_file(r: _Reader, value: str, where: tuple) -> str:
    """A file parameter's path, relative to the spec, which must exist when the spec is read."""
    file = r.path_value(value)
    if not file.is_file():
        raise r.fail(where, f"no such file: {file}")
    return str(file)


def _check_strategy_param(defn, name: str, value) -> None:
    """One strategy parameter value, as the strategy checks it; FastsimError or ValueError."""
    check_param_number(defn.params, name, value, f"strategy {defn.name!r} parameter {name!r}")
    defn.resolve({name: value})


def _profiles(raw: dict, r: _Reader) -> tuple | None:
    """``profiles = [[model, hardware], ...]``: pairs run as given, instead of crossing lists."""
    if "profiles" not in raw:
        return None
    for other in ("models", "hardware"):
        if other in raw:
            raise r.fail(
                (other,),
                "give either profiles (model and hardware pairs) or models/hardware (crossed), not both",
            )
    value = raw["profiles"]
    if not isinstance(value, list) or not value:
        raise r.fail(("profiles",), f"expected a list of [model, hardware] pairs, got {_show(value)}")
    pairs = []
    seen = set()
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise r.fail(("profiles", i), f"expected a [model, hardware] pair, got {_show(pair)}")
        model = r.profile(pair[0], ("profiles", i, 0), "model")
        hw = r.profile(pair[1], ("profiles", i, 1), "hardware")
        if (model.name, hw.name) in seen:
            raise r.fail(("profiles", i), f"the pair ({model.name!r}, {hw.name!r}) is listed twice")
        seen.add((model.name, hw.name))
        pairs.append((model, hw))
    return tuple(pairs)


def _dedupe_check(r: _Reader, names: list, path) -> None:
    seen = set()
    for i, n in enumerate(names):
        if n in seen:
            raise r.fail(tuple(path) + (i,), f"{n!r} is listed twice")
        seen.add(n)


def _strategies(raw: dict, r: _Reader, shaped: list) -> tuple[StrategyGrid, ...]:
    table = raw.get("strategies")
    if table is None:
        raise r.fail(("strategies",), "missing: add at least one [strategies.NAME] table")
    if not isinstance(table, Mapping) or not table:
        raise r.fail(("strategies",), "expected [strategies.NAME] tables, one per strategy")
    grids = []
    for name, body in table.items():
        try:
            defn = get_strategy(name)
        except FastsimError as exc:
            raise r.fail(("strategies", name), str(exc)) from None
        bodies = body if isinstance(body, list) else [body]
        indexed = isinstance(body, list)
        if not bodies:
            raise r.fail(("strategies", name), "expected a table of parameter lists, got an empty list")
        for j, grid in enumerate(bodies):
            path = ("strategies", name, j) if indexed else ("strategies", name)
            if not isinstance(grid, Mapping):
                raise r.fail(path, f"expected a table of parameter lists, got {_show(grid)}")
            known = set(defn.param_names())
            r.check_keys(grid, known | _GRID_AXES, path, f"strategy {name!r} (its parameters: {', '.join(defn.param_names()) or 'none'}; axes")
            keys = [k for k in grid if k not in _GRID_AXES]
            lists = []
            files = {p.name for p in defn.params if p.kind == "file"}
            for k in keys:
                values = list(r.as_list(grid[k], path + (k,)))
                for i, v in enumerate(values):
                    where = path + (k, i) if isinstance(grid[k], list) else path + (k,)
                    if k in files and isinstance(v, str) and v:
                        values[i] = v = _param_file(r, v, where)
                    try:
                        _check_strategy_param(defn, k, v)
                    except ValueError as exc:
                        raise r.fail(where, str(exc)) from None
                lists.append(values)
            combos = tuple(dict(zip(keys, c)) for c in itertools.product(*lists))
            grids.append(_grid(defn.name, combos, grid, path, r, shaped))
    return tuple(grids)


def _grid(strategy: str, combos: tuple, grid: Mapping, path: tuple, r: _Reader, shaped: list) -> StrategyGrid:
    """A strategy table's combos with the axes it sets for itself (``None``: the spec's)."""
    partitions = pinned = None
    if "cache_partitions" in grid:
        partitions, lists = partitions_axis(grid["cache_partitions"], path + ("cache_partitions",), r)
        shaped += [(where, v, None) for where, v in lists]
    if "pinned" in grid:
        pinned, lists = pinned_axis(grid["pinned"], path + ("pinned",), r)
        shaped += [(where, GLOBAL, v) for where, v in lists]

    def axis(key, parse):
        return parse(grid[key], path + (key,), r) if key in grid else None

    return StrategyGrid(
        strategy=strategy, combos=combos, caches=axis("caches", caches_axis), evictions=axis("evictions", evictions_axis),
        max_prefetch_loads=axis("max_prefetch_loads", max_loads_axis), path=path, cache_partitions=partitions,
        pinned=pinned, pin_profiles=axis("pin_profiles", pin_profiles_axis), execution=execution_axes(grid, path, r),
        **{k: budget_axis(k, grid[k], path + (k,), r) if k in grid else None for k in BUDGET_AXES},
    )


def _baseline(raw: dict, r: _Reader, shaped: list) -> Baseline | None:
    value = raw.get("baseline", True)
    if value is False:
        return None
    if value is True:
        return Baseline()
    if not isinstance(value, Mapping):
        raise r.fail(("baseline",), f"expected a table or false, got {_show(value)}")
    r.check_keys(value, _BASELINE_KEYS, ("baseline",), "[baseline]")
    strategy = value.get("strategy", "on-demand")
    try:
        defn = get_strategy(strategy)
    except FastsimError as exc:
        raise r.fail(("baseline", "strategy"), str(exc)) from None
    try:
        cache = parse_cache(value.get("cache", WORKING_SET))
    except ValueError as exc:
        raise r.fail(("baseline", "cache"), str(exc)) from None
    ev_params = value.get("eviction_params", {})
    if not isinstance(ev_params, Mapping):
        raise r.fail(("baseline", "eviction_params"), f"expected a table of parameter values, got {_show(ev_params)}")
    try:
        eviction = eviction_choice(value.get("eviction", "lru"))
    except ValueError as exc:
        raise r.fail(("baseline", "eviction"), str(exc)) from None
    for k, v in ev_params.items():
        try:
            eviction_choice(eviction.name, {k: v})
        except ValueError as exc:
            raise r.fail(("baseline", "eviction_params", k), str(exc)) from None
    eviction = eviction_choice(eviction.name, ev_params)
    organisation = {}
    for key, parse, default in (("cache_partition", partition_value, GLOBAL), ("pinned", pinned_value, None),
                                ("pin_profile", pin_profile_value, 1.0)):
        try:
            organisation[key] = parse(value[key]) if key in value else default
        except ValueError as exc:
            raise r.fail(("baseline", key), str(exc)) from None
    if isinstance(organisation["cache_partition"], tuple):
        shaped.append((("baseline", "cache_partition"), organisation["cache_partition"], None))
    if isinstance(organisation["pinned"], tuple):
        shaped.append((("baseline", "pinned"), GLOBAL, organisation["pinned"]))
    params = value.get("params", {})
    if not isinstance(params, Mapping):
        raise r.fail(("baseline", "params"), f"expected a table of parameter values, got {_show(params)}")
    for k, v in params.items():
        try:
            _check_strategy_param(defn, k, v)
        except ValueError as exc:
            raise r.fail(("baseline", "params", k), str(exc)) from None
    return Baseline(defn.name, cache, eviction.name, tuple(params.items()), eviction.params, **organisation)
