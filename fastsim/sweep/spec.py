"""Sweep specs: a TOML file (or a dict) naming traces, profiles, caches and strategy grids.

:func:`load_spec` validates the whole document before anything runs; every problem raises one
:class:`~fastsim.errors.SpecError` naming the file, the line and the key (``strategies.top-k.k``)
and what was expected. The format is documented in ``docs/sweeps.md``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FastsimError, SpecError
from ..profiles import hardware_profile, list_hardware, list_models, model_profile
from ..strategies import get_strategy
from .locate import KeyLocator, format_path

__all__ = ["REPRODUCIBLE", "Spec", "TraceSpec", "StrategyGrid", "Baseline", "CacheRequest", "load_spec", "parse_cache"]

WORKING_SET = "working-set"
EVICTIONS = ("lru", "belady")

_TOP_KEYS = {
    "name", "description", "seed", "runs", "out", "imports", "traces", "models", "hardware",
    "batch_sizes", "caches", "evictions", "max_prefetch_loads", "strategies", "baseline", "profiles",
    "reproduces",
}
#: Published experiments a spec may declare it reproduces (``reproduces = NAME``), with the
#: ``(num_layers, num_experts, top_k)`` their models must have.
REPRODUCIBLE = {"seed-switch": (12, 128, 1), "seed-qwen": (28, 64, 8)}
_TRACE_FILE_KEYS = {"name", "file", "model"}
_GRID_AXES = {"caches", "evictions", "max_prefetch_loads"}
_BASELINE_KEYS = {"strategy", "cache", "eviction", "params"}
_UNITS = {"gb": 10**9, "mb": 10**6, "kb": 10**3, "tb": 10**12, "gib": 2**30, "mib": 2**20, "b": 1}


@dataclass(frozen=True)
class CacheRequest:
    """A cache size as asked for: ``kind`` is ``"working-set"``, ``"slots"`` or ``"bytes"``."""

    kind: str
    value: int | None = None

    @property
    def label(self) -> str:
        """The request as :func:`fastsim.replay.resolve_config` names it (``cache_request``)."""
        if self.kind == WORKING_SET:
            return WORKING_SET
        return f"{self.value} {self.kind}"

    def replay_kwargs(self) -> dict[str, Any]:
        if self.kind == "bytes":
            return {"cache_bytes": self.value}
        return {"cache_slots": WORKING_SET if self.kind == WORKING_SET else self.value}


@dataclass(frozen=True)
class TraceSpec:
    """One ``[[traces]]`` entry: a Parquet file or generator settings."""

    name: str
    file: Path | None = None
    model: Any = None  # profile (name, path or mapping) for a file; the generator's model otherwise
    tokens: int = 0
    sequences: int | None = None
    seed: int | None = None
    params: dict = field(default_factory=dict)  # generator parameters, "preset" included
    path: tuple = ()

    @property
    def generated(self) -> bool:
        return self.file is None

    def run_seed(self, base_seed: int, run: int) -> int | None:
        """The generator seed of run ``run``: the trace's seed (or the spec's) plus the run index."""
        if not self.generated:
            return None
        return (self.seed if self.seed is not None else base_seed) + run


@dataclass(frozen=True)
class StrategyGrid:
    """One strategy table: the product of its parameter lists, plus optional axis overrides."""

    strategy: str
    combos: tuple[dict, ...]  # parameter dicts, product order (last key fastest)
    caches: tuple[CacheRequest, ...] | None
    evictions: tuple[str, ...] | None
    max_prefetch_loads: tuple[int | None, ...] | None
    path: tuple


@dataclass(frozen=True)
class Baseline:
    """The configuration each row's speedup is measured against (same trace, model, GPU, batch)."""

    strategy: str = "on-demand"
    cache: CacheRequest = CacheRequest(WORKING_SET)
    eviction: str = "lru"
    params: tuple = ()  # (name, value) pairs


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
    evictions: tuple[str, ...]
    max_prefetch_loads: tuple[int | None, ...]
    grids: tuple[StrategyGrid, ...]
    baseline: Baseline | None
    spec_hash: str
    origin: str
    profiles: tuple | None = None  # ((ModelProfile, HardwareProfile), ...) run as pairs, not crossed
    reproduces: str | None = None  # a name in REPRODUCIBLE
    raw: dict = field(repr=False, default_factory=dict)
    locator: KeyLocator | None = field(repr=False, default=None)

    def error(self, path, message: str) -> SpecError:
        """A :class:`SpecError` naming the spec, the line of ``path`` and the key."""
        return _error(self.origin, self.locator, path, message)


def _error(origin: str, locator: KeyLocator | None, path, message: str) -> SpecError:
    line = locator.line(path) if locator is not None and path else None
    where = f"{origin}, line {line}" if line else origin
    return SpecError(f"{where}: {format_path(path)}: {message}")


def parse_cache(value, where=None) -> CacheRequest:
    """``"working-set"``, an integer (slots), ``"64 slots"``, or a size such as ``"1.5GB"``.

    Raises ``ValueError`` with the reason (the caller adds the key).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected 'working-set', a number of slots or a size like '2GB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a cache of {value} slots is negative")
        return CacheRequest("slots", value)
    if isinstance(value, float):
        raise ValueError(
            f"got the bare number {value!r}: write an integer number of slots or a size with its "
            f"unit, such as '{value}GB'"
        )
    if not isinstance(value, str):
        raise ValueError(f"expected 'working-set', a number of slots or a size like '2GB', got {value!r}")
    text = value.strip().lower().replace("_", "")
    if text == WORKING_SET:
        return CacheRequest(WORKING_SET)
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
    unit = text[len(number):].strip()
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"cannot read {value!r}: expected 'working-set', '64 slots' or a size like '2GB'") from None
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"cache size {value!r} must be a finite size >= 0")
    if unit in ("slot", "slots"):
        if amount != int(amount):
            raise ValueError(f"a number of slots must be an integer, got {value!r}")
        return CacheRequest("slots", int(amount))
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} in {value!r}: expected GB, MB, KB, TB, GiB, MiB, B or slots")
    return CacheRequest("bytes", int(round(amount * _UNITS[unit])))


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

    def integer(self, value, path, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_show(value)}")
        if value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {value}")
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


def _show(value) -> str:
    return f"{type(value).__name__} {value!r}"


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
    seed = r.integer(raw.get("seed", 0), ("seed",), 0)
    runs = r.integer(raw.get("runs", 1), ("runs",), 1)
    out = raw.get("out")
    out = r.path_value(r.string(out, ("out",))) if out is not None else None
    imports = ()
    if "imports" in raw:
        imports = tuple(r.string(m, ("imports", i)) for i, m in enumerate(r.as_list(raw["imports"], ("imports",))))
    for i, module in enumerate(imports):
        try:
            __import__(module)
        except ImportError as exc:
            raise r.fail(("imports", i), f"cannot import {module!r}: {exc}") from None

    traces = _traces(raw, r)
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
    caches = _caches(raw.get("caches", WORKING_SET), ("caches",), r)
    evictions = _evictions(raw.get("evictions", "lru"), ("evictions",), r)
    max_loads = _max_loads(raw.get("max_prefetch_loads", "none"), ("max_prefetch_loads",), r)
    grids = _strategies(raw, r)
    baseline = _baseline(raw, r)
    reproduces = raw.get("reproduces")
    if reproduces is not None and reproduces not in REPRODUCIBLE:
        raise r.fail(("reproduces",), f"expected one of {', '.join(REPRODUCIBLE)}, got {_show(reproduces)}")
    spec = Spec(
        name=name, description=description, seed=seed, runs=runs, out=out, imports=imports,
        traces=traces, models=models, hardware=hardware, batch_sizes=batch_sizes, caches=caches,
        evictions=evictions, max_prefetch_loads=max_loads, grids=grids, baseline=baseline,
        spec_hash=_canonical_hash(raw), origin=r.origin, raw=raw, locator=r.locator,
        profiles=profiles, reproduces=reproduces,
    )
    listed = []  # (model, path) of every model the spec names outside its traces
    if models is not None:
        listed = [(m, ("models", i)) for i, m in enumerate(models)]
    elif profiles is not None:
        listed = [(m, ("profiles", i, 0)) for i, (m, _) in enumerate(profiles)]
    for t in traces:
        if not t.generated:
            continue
        for m, where in listed:
            _, nl, ne, k = _gen_shape(t, r)
            if (m.num_layers, m.num_experts, m.top_k) != (nl, ne, k):
                raise r.fail(
                    where,
                    f"model {m.name!r} has (num_layers, num_experts, top_k) = "
                    f"{(m.num_layers, m.num_experts, m.top_k)} but trace {t.name!r} has {(nl, ne, k)}",
                )
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


def _gen_shape(t: TraceSpec, r: _Reader):
    from ..trace.generate import resolve_shape

    try:
        return resolve_shape(t.model)
    except FastsimError as exc:
        raise r.fail(t.path + ("model",), str(exc)) from None


def _dedupe_check(r: _Reader, names: list, path) -> None:
    seen = set()
    for i, n in enumerate(names):
        if n in seen:
            raise r.fail(tuple(path) + (i,), f"{n!r} is listed twice")
        seen.add(n)


def _traces(raw: dict, r: _Reader) -> tuple[TraceSpec, ...]:
    if "traces" not in raw:
        raise r.fail(("traces",), "missing: add at least one [[traces]] table (a file or generator settings)")
    entries = raw["traces"]
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        raise r.fail(("traces",), "expected one or more [[traces]] tables")
    out = []
    names = set()
    for i, entry in enumerate(entries):
        path = ("traces", i)
        if not isinstance(entry, Mapping):
            raise r.fail(path, f"expected a table, got {_show(entry)}")
        if "file" in entry:
            r.check_keys(entry, _TRACE_FILE_KEYS, path, "a file trace")
            file = r.path_value(r.string(entry["file"], path + ("file",)))
            model = entry.get("model")
            if model is not None:
                model = r.profile(model, path + ("model",), "model")
            name = entry.get("name", file.stem)
            spec = TraceSpec(name=r.string(name, path + ("name",)), file=file, model=model, path=path)
        else:
            spec = _generated_trace(entry, i, path, r)
        if spec.name in names:
            raise r.fail(path + ("name",), f"trace name {spec.name!r} is used twice; give each trace a distinct name")
        names.add(spec.name)
        out.append(spec)
    return tuple(out)


def _generated_trace(entry: Mapping, i: int, path: tuple, r: _Reader) -> TraceSpec:
    from ..trace import generate

    allowed = {"name", "model", "tokens", "sequences", "seed", "preset"} | set(generate.DEFAULT_PARAMS)
    r.check_keys(entry, allowed, path, "a generated trace")
    preset = entry.get("preset")
    if preset is not None:
        preset = r.string(preset, path + ("preset",))
    if "tokens" not in entry:
        raise r.fail(path, "a trace needs 'file', or generator settings with 'tokens' and 'model' (or 'preset')")
    model = entry.get("model")
    if model is None:
        if preset is None:
            raise r.fail(path, "a generated trace needs 'model' (or a 'preset' that names one)")
        models = getattr(generate, "PRESET_MODELS", {})
        if preset in models:
            model = models[preset][0]
    elif isinstance(model, str):
        if model not in list_models() and (model.endswith(".toml") or "/" in model):
            model = str(r.path_value(model))
    elif isinstance(model, list):
        model = tuple(r.integer(v, path + ("model", j), 1) for j, v in enumerate(model))
    elif not isinstance(model, Mapping):
        raise r.fail(path + ("model",), f"expected a model profile or [layers, experts, top_k], got {_show(model)}")
    tokens = r.integer(entry["tokens"], path + ("tokens",), 1)
    sequences = entry.get("sequences")
    if sequences is not None:
        sequences = r.integer(sequences, path + ("sequences",), 1)
    seed = entry.get("seed")
    if seed is not None:
        seed = r.integer(seed, path + ("seed",), 0)
    params = {k: v for k, v in entry.items() if k in generate.DEFAULT_PARAMS}
    if preset is not None:
        params["preset"] = preset
    try:
        # a zero-token trace checks the model, the preset and every parameter at no cost
        generate_with(model, 0, sequences, 0, params)
    except FastsimError as exc:
        text = str(exc)
        bad = next((k for k in entry if k not in ("name", "tokens") and (repr(k) in text or f" {k} " in text)), None)
        raise r.fail(path + ((bad,) if bad else ()), text.removeprefix("generate: ")) from None
    label = preset if preset is not None and "model" not in entry else model
    default = label if isinstance(label, str) and "/" not in label else f"generated-{i}"
    name = r.string(entry.get("name", f"{default}-{tokens}"), path + ("name",))
    return TraceSpec(name=name, model=model, tokens=tokens, sequences=sequences, seed=seed, params=params, path=path)


def generate_with(model, tokens: int, sequences, seed: int, params: dict):
    """Generate a trace from a spec's settings (``params`` may hold ``preset``)."""
    from ..trace.generate import generate_from_params

    params = dict(params)
    preset = params.pop("preset", None)
    if preset is not None:
        return generate_from_params(model, tokens, sequences, seed, params, preset=preset)
    return generate_from_params(model, tokens, sequences, seed, params)


def _caches(value, path, r: _Reader) -> tuple[CacheRequest, ...]:
    out = []
    for i, v in enumerate(r.as_list(value, path)):
        try:
            out.append(parse_cache(v))
        except ValueError as exc:
            raise r.fail(tuple(path) + (i,) if isinstance(value, list) else path, str(exc)) from None
    return tuple(dict.fromkeys(out))


def _evictions(value, path, r: _Reader) -> tuple[str, ...]:
    out = []
    for i, v in enumerate(r.as_list(value, path)):
        if v not in EVICTIONS:
            raise r.fail(tuple(path) + (i,) if isinstance(value, list) else path, f"expected 'lru' or 'belady', got {_show(v)}")
        out.append(v)
    return tuple(dict.fromkeys(out))


def _max_loads(value, path, r: _Reader) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for i, v in enumerate(r.as_list(value, path)):
        where = tuple(path) + (i,) if isinstance(value, list) else path
        if v == "none":
            out.append(None)
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            out.append(v)
        else:
            raise r.fail(where, f"expected an integer >= 0 or 'none' (no cap), got {_show(v)}")
    return tuple(dict.fromkeys(out))


def _strategies(raw: dict, r: _Reader) -> tuple[StrategyGrid, ...]:
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
            for k in keys:
                values = r.as_list(grid[k], path + (k,))
                for i, v in enumerate(values):
                    where = path + (k, i) if isinstance(grid[k], list) else path + (k,)
                    try:
                        defn.resolve({k: v})
                    except FastsimError as exc:
                        raise r.fail(where, str(exc)) from None
                lists.append(values)
            combos = tuple(dict(zip(keys, c)) for c in itertools.product(*lists))
            grids.append(
                StrategyGrid(
                    strategy=defn.name,
                    combos=combos,
                    caches=_caches(grid["caches"], path + ("caches",), r) if "caches" in grid else None,
                    evictions=_evictions(grid["evictions"], path + ("evictions",), r) if "evictions" in grid else None,
                    max_prefetch_loads=(
                        _max_loads(grid["max_prefetch_loads"], path + ("max_prefetch_loads",), r)
                        if "max_prefetch_loads" in grid else None
                    ),
                    path=path,
                )
            )
    return tuple(grids)


def _baseline(raw: dict, r: _Reader) -> Baseline | None:
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
    eviction = value.get("eviction", "lru")
    if eviction not in EVICTIONS:
        raise r.fail(("baseline", "eviction"), f"expected 'lru' or 'belady', got {_show(eviction)}")
    params = value.get("params", {})
    if not isinstance(params, Mapping):
        raise r.fail(("baseline", "params"), f"expected a table of parameter values, got {_show(params)}")
    for k, v in params.items():
        try:
            defn.resolve({k: v})
        except FastsimError as exc:
            raise r.fail(("baseline", "params", k), str(exc)) from None
    return Baseline(defn.name, cache, eviction, tuple(params.items()))
