"""Sweep axes: caches, evictions, cache partitions, pins, pin profiles, prefetch caps, the
execution options (SPEC section 7) and the batching.

Each axis has a *normaliser* that turns one value as a user writes it into its canonical,
hashable form and raises ``ValueError`` with the reason; the spec reader adds the key and line
(:class:`~fastsim.errors.SpecError`), :func:`fastsim.replay_many` the configuration's index
(:class:`~fastsim.errors.ConfigError`). The ``*_axis`` functions read a whole axis of a spec
(a value or a list of values) with a reader that names key and line.

Canonical forms (two values that replay the same give the same form, so configurations dedupe):

- eviction: :class:`EvictionChoice`, the policy's registered name and its parameters with the
  defaults filled in;
- cache partition: ``"global"``, ``"per-layer"`` or a tuple of ``L`` integers;
- pinned: ``None`` (no pins; a count of 0 and an empty list are this), a count ``N > 0``, or a
  sorted tuple of keys;
- pin profile: a float in ``(0, 1]``; only a count uses it, so it is 1.0 for every other pin
  request (set by :func:`fastsim.sweep.grid.make_config`);
- execution options: the option names of :mod:`fastsim.timeline.options`, caps as integers or
  ``None`` (no cap), ``prefill`` a bool; ``reserve_bytes`` an integer of bytes and
  ``context_tokens`` an integer, both used only by ``cache = "auto"``;
- batching: ``"continuous"`` or ``"recorded"`` (docs/model.md, "Recorded batching").

Every integer must fit in 64 bits (:data:`INT64_MAX`): results tables and kernels hold them so.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import FastsimError
from ..eviction import get_eviction

__all__ = [
    "INT64_MAX", "WORKING_SET", "GLOBAL", "PER_LAYER", "CacheRequest", "EvictionChoice", "parse_cache", "eviction_choice",
    "partition_value", "pinned_value", "pin_profile_value", "partition_label", "pin_request_label",
    "eviction_params_label", "batching_value",
]

WORKING_SET = "working-set"
AUTO = "auto"
GLOBAL = "global"
PER_LAYER = "per-layer"
_UNITS = {"gb": 10**9, "mb": 10**6, "kb": 10**3, "tb": 10**12, "gib": 2**30, "mib": 2**20, "b": 1}
#: The largest integer a spec or configuration may give: results tables hold int64 columns and
#: kernels int64 arrays, so a larger one would fail every row instead of the one key.
INT64_MAX = 2**63 - 1
#: Strategy and policy parameters travel as 64-bit floats: integers beyond 2**53 would not survive.
EXACT_FLOAT_INT = 2**53


def _show(value) -> str:
    if _is_int(value) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return f"{type(value).__name__} {value!r}"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_int64(value, what: str) -> None:
    """ValueError when the integer ``value`` is too large for 64 bits (``what`` names it)."""
    if _is_int(value) and value > INT64_MAX:
        raise ValueError(f"{what} must be at most {INT64_MAX} (a 64-bit integer), got {_show(value)}")


def check_param_number(params, name: str, value, where: str) -> None:
    """A number a parameter's own check cannot take: too large for a float, or an integer
    parameter beyond 2**53. ``params`` are the strategy's or policy's :class:`Param` objects;
    ValueError naming ``where`` (``strategy 'top-k' parameter 'k'``)."""
    param = next((p for p in params if p.name == name), None)
    if param is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return  # the parameter's own check names what is wrong
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{where} must be a finite number, got {_show(value)}") from None
    if param.kind == "int" and math.isfinite(number) and abs(number) > EXACT_FLOAT_INT:
        raise ValueError(f"{where} must lie within +-2**53 (parameters are held as 64-bit floats), got {_show(value)}")


# --------------------------------------------------------------------------------- caches


@dataclass(frozen=True)
class CacheRequest:
    """A cache size as asked for: ``kind`` is ``"working-set"``, ``"auto"`` (SPEC section 7's
    budget: GPU memory less dense weights, KV cache and a reserve), ``"slots"`` or ``"bytes"``."""

    kind: str
    value: int | None = None

    @property
    def label(self) -> str:
        """The request as :func:`fastsim.replay.resolve_config` names it (``cache_request``)."""
        if self.kind in (WORKING_SET, AUTO):
            return self.kind
        return f"{self.value} {self.kind}"

    def replay_kwargs(self) -> dict[str, Any]:
        if self.kind == AUTO:
            return {"cache_bytes": AUTO}
        if self.kind == "bytes":
            return {"cache_bytes": self.value}
        return {"cache_slots": WORKING_SET if self.kind == WORKING_SET else self.value}


def parse_cache(value, where=None) -> CacheRequest:
    """``"working-set"``, ``"auto"``, an integer (slots), ``"64 slots"``, or a size such as ``"1.5GB"``.

    Raises ``ValueError`` with the reason (the caller adds the key).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected 'working-set', 'auto', a number of slots or a size like '2GB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a cache of {value} slots is negative")
        check_int64(value, "a number of slots")
        return CacheRequest("slots", value)
    if isinstance(value, float):
        raise ValueError(
            f"got the bare number {value!r}: write an integer number of slots or a size with its "
            f"unit, such as '{value}GB'"
        )
    if not isinstance(value, str):
        raise ValueError(f"expected 'working-set', 'auto', a number of slots or a size like '2GB', got {value!r}")
    text = value.strip().lower().replace("_", "")
    if text == WORKING_SET:
        return CacheRequest(WORKING_SET)
    if text == AUTO:
        return CacheRequest(AUTO)
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz ").strip()
    unit = text[len(number):].strip()
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"cannot read {value!r}: expected 'working-set', 'auto', '64 slots' or a size like '2GB'") from None
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"cache size {value!r} must be a finite size >= 0")
    if unit in ("slot", "slots"):
        if amount != int(amount):
            raise ValueError(f"a number of slots must be an integer, got {value!r}")
        check_int64(int(amount), f"the number of slots in {value!r}")
        return CacheRequest("slots", int(amount))
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} in {value!r}: expected GB, MB, KB, TB, GiB, MiB, B or slots")
    nbytes = int(round(amount * _UNITS[unit]))
    check_int64(nbytes, f"the number of bytes in {value!r}")
    return CacheRequest("bytes", nbytes)


# ------------------------------------------------------------------------------ evictions


@dataclass(frozen=True)
class EvictionChoice:
    """An eviction policy with its parameters: ``params`` holds ``(name, float)`` pairs in the
    policy's parameter order, defaults filled in (empty for a policy without parameters)."""

    name: str
    params: tuple = ()

    def param_dict(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v:g}' for k, v in self.params)})"


def eviction_choice(name, params=None) -> EvictionChoice:
    """A registered policy name and a mapping of its parameters, validated against the policy."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"expected an eviction policy name, got {_show(name)}")
    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"eviction parameters must be a table of values, got {_show(params)}")
    try:
        policy = get_eviction(name)
    except FastsimError as exc:
        raise ValueError(str(exc)) from None
    for key, v in dict(params or {}).items():
        check_param_number(policy.params, key, v, f"eviction {policy.name!r} parameter {key!r}")
    try:
        values = policy.resolve(dict(params or {}))
    except FastsimError as exc:
        raise ValueError(str(exc)) from None
    return EvictionChoice(policy.name, tuple((p.name, float(v)) for p, v in zip(policy.params, values)))


def eviction_params_label(params: tuple) -> str:
    """The ``eviction_params`` column: the parameters as a JSON object (``"{}"`` for none)."""
    return json.dumps({k: _num(v) for k, v in params}, sort_keys=True)


def _num(v: float):
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else v


# ------------------------------------------------------------------------- organisation


def partition_value(value):
    """``"global"``, ``"per-layer"`` or a non-empty list of integers >= 0 (one per layer; the
    length is checked against the model separately)."""
    if isinstance(value, str):
        if value in (GLOBAL, PER_LAYER):
            return value
        raise ValueError(f"expected 'global', 'per-layer' or a list of slot counts (one per layer), got {value!r}")
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("a cache partition list needs one size per layer, got an empty list")
        for v in value:
            if not _is_int(v) or v < 0:
                raise ValueError(f"a cache partition list holds integers >= 0 (one per layer), got {_show(v)}")
            check_int64(v, "a partition size")
        return tuple(int(v) for v in value)
    raise ValueError(f"expected 'global', 'per-layer' or a list of slot counts (one per layer), got {_show(value)}")


def pinned_value(value):
    """``None``, a count ``>= 0`` or a list of distinct keys ``>= 0`` (``layer * E + expert``)."""
    if value is None:
        return None
    if _is_int(value):
        if value < 0:
            raise ValueError(f"a pinned count must be >= 0, got {value}")
        check_int64(value, "a pinned count")
        return int(value) or None
    if isinstance(value, (list, tuple)):
        for k in value:
            if not _is_int(k) or k < 0:
                raise ValueError(f"pinned keys are integers >= 0 (layer * num_experts + expert), got {_show(k)}")
            check_int64(k, "a pinned key")
        if len(set(value)) != len(value):
            dup = next(k for k in value if list(value).count(k) > 1)
            raise ValueError(f"pinned key {dup} is listed twice")
        return tuple(sorted(int(k) for k in value)) or None
    raise ValueError(f"expected a count of keys to pin or a list of keys, got {_show(value)}")


def pin_profile_value(value) -> float:
    """A fraction of the trace's tokens in ``(0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (_is_int(value) and abs(value) > 1):
        raise ValueError(f"pin_profile must be a fraction in (0, 1], got {_show(value)}")
    v = float(value)
    if not math.isfinite(v) or not 0.0 < v <= 1.0:
        raise ValueError(f"pin_profile must be a fraction in (0, 1], got {value!r}")
    return v


def partition_label(partition) -> str:
    """The ``cache_partition`` column: ``"global"``, ``"per-layer"`` or the JSON list."""
    return partition if isinstance(partition, str) else json.dumps(list(partition))


def pin_request_label(pinned, pin_profile: float) -> str:
    """The ``pin_request`` column: ``"none"``, ``"top N over F of the trace"`` (as
    :func:`fastsim.replay.resolve_config` names it) or ``"keys [..]"``."""
    if pinned is None:
        return "none"
    if isinstance(pinned, int):
        return f"top {pinned} over {pin_profile:g} of the trace"
    return f"keys {json.dumps(list(pinned))}"


def check_shape(partition, pinned, num_layers: int, num_experts: int) -> None:
    """A partition list must have one entry per layer, pinned keys must lie in ``[0, L * E)``."""
    if isinstance(partition, tuple) and len(partition) != num_layers:
        raise ValueError(
            f"a cache partition list needs {num_layers} sizes (one per layer), got {len(partition)}"
        )
    if isinstance(pinned, tuple):
        bad = [k for k in pinned if k >= num_layers * num_experts]
        if bad:
            raise ValueError(
                f"pinned key {bad[0]} is out of range: keys are layer * {num_experts} + expert, below "
                f"{num_layers * num_experts}"
            )


# ------------------------------------------------------------------------ spec axes
# ``r`` is the spec reader: ``r.fail(path, message)`` builds a SpecError, ``r.as_list`` reads
# a value or a list of values.


def _where(value, path, i):
    return tuple(path) + (i,) if isinstance(value, list) else tuple(path)


def _each(value, path, r, parse) -> tuple:
    """``parse`` applied to every entry of a list axis (or its one value), de-duplicated in order;
    a ValueError becomes the spec error naming that entry."""
    out = []
    for i, v in enumerate(r.as_list(value, path)):
        try:
            out.append(parse(v))
        except ValueError as exc:
            raise r.fail(_where(value, path, i), str(exc)) from None
    return tuple(dict.fromkeys(out))


def caches_axis(value, path, r) -> tuple[CacheRequest, ...]:
    return _each(value, path, r, parse_cache)


def evictions_axis(value, path, r) -> tuple[EvictionChoice, ...]:
    """Policy names, or tables ``{name = ..., PARAM = value or [values]}`` (their product)."""
    import itertools

    out = []
    for i, v in enumerate(r.as_list(value, path)):
        where = _where(value, path, i)
        if isinstance(v, Mapping):
            if "name" not in v:
                raise r.fail(where, "an eviction table needs 'name' (a registered policy) and its parameters")
            try:
                eviction_choice(v["name"])
            except ValueError as exc:
                raise r.fail(where + ("name",), str(exc)) from None
            keys = [k for k in v if k != "name"]
            lists = []
            for k in keys:
                values = r.as_list(v[k], where + (k,))
                for j, x in enumerate(values):
                    try:
                        eviction_choice(v["name"], {k: x})
                    except ValueError as exc:
                        raise r.fail(_where(v[k], where + (k,), j), str(exc)) from None
                lists.append(values)
            for combo in itertools.product(*lists):
                out.append(eviction_choice(v["name"], dict(zip(keys, combo))))
        else:
            try:
                out.append(eviction_choice(v))
            except ValueError as exc:
                raise r.fail(where, str(exc)) from None
    return tuple(dict.fromkeys(out))


def max_loads_axis(value, path, r) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for i, v in enumerate(r.as_list(value, path)):
        if v == "none":
            out.append(None)
        elif _is_int(v) and v >= 0:
            try:
                check_int64(v, "a cap on prefetch loads")
            except ValueError as exc:
                raise r.fail(_where(value, path, i), str(exc)) from None
            out.append(v)
        else:
            raise r.fail(_where(value, path, i), f"expected an integer >= 0 or 'none' (no cap), got {_show(v)}")
    return tuple(dict.fromkeys(out))


def partitions_axis(value, path, r) -> tuple:
    """``"global"``, ``"per-layer"`` and lists of per-layer sizes; returns ``(values, lists)``
    where ``lists`` holds ``(path, tuple)`` of each list entry for the shape check."""
    if isinstance(value, list) and value and all(_is_int(v) for v in value):
        raise r.fail(
            path, f"got a list of numbers: write one list partition as {path[-1]} = [{json.dumps(value)}] "
                  "(each entry is 'global', 'per-layer' or a list of sizes)"
        )
    out, lists = [], []
    for i, v in enumerate(r.as_list(value, path)):
        try:
            p = partition_value(v)
        except ValueError as exc:
            raise r.fail(_where(value, path, i), str(exc)) from None
        out.append(p)
        if isinstance(p, tuple):
            lists.append((_where(value, path, i), p))
    return tuple(dict.fromkeys(out)), lists


def pinned_axis(value, path, r) -> tuple:
    """Counts, lists of keys and ``"none"``; returns ``(values, lists)`` as :func:`partitions_axis`."""
    out, lists = [], []
    for i, v in enumerate(r.as_list(value, path)):
        try:
            p = None if v == "none" else pinned_value(v)
        except ValueError as exc:
            raise r.fail(_where(value, path, i), str(exc)) from None
        out.append(p)
        if isinstance(p, tuple):
            lists.append((_where(value, path, i), p))
    return tuple(dict.fromkeys(out)), lists


def pin_profiles_axis(value, path, r) -> tuple[float, ...]:
    return _each(value, path, r, pin_profile_value)


# ------------------------------------------------------------------------- execution
# SPEC section 7's options. Each value is checked by the normaliser of fastsim.timeline.options,
# so the spec, replay_many and fastsim.replay accept and reject the same values.

#: Spec axis -> the replay option it sets (SPEC section 7; docs/model.md, "Execution").
EXECUTION_AXES = {
    "timelines": "timeline", "links": "link", "max_inflight_prefetches": "max_inflight_prefetches",
    "miss_executions": "miss_execution", "max_uploads_per_layer": "max_uploads_per_layer",
    "overflows": "overflow", "prefill": "prefill",
}
#: Axes that size ``cache = "auto"`` only (other caches record null and are not repeated).
BUDGET_AXES = ("reserve_bytes", "context_tokens")
#: Each option's values where a spec leaves it out: its default alone.
EXECUTION_DEFAULTS = {
    "timeline": ("simple",), "link": ("fifo",), "max_inflight_prefetches": (None,), "miss_execution": ("load",),
    "max_uploads_per_layer": (None,), "overflow": ("error",), "prefill": (False,),
}


def execution_value(option: str, value):
    """One value of an execution option in canonical form (``"none"`` is no cap); ValueError."""
    from ..timeline.options import execution_options

    if option in ("max_inflight_prefetches", "max_uploads_per_layer") and value == "none":
        value = None
    if option == "prefill" and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_show(value)}")
    if option in ("max_inflight_prefetches", "max_uploads_per_layer") and value is not None and not _is_int(value):
        raise ValueError(f"expected an integer or 'none' (no cap), got {_show(value)}")
    check_int64(value, "a cap")
    kwargs = {option: value}
    if option == "max_uploads_per_layer":
        kwargs["miss_execution"] = "cpu"  # the pairing with miss_execution is checked per grid
    try:
        options = execution_options(**kwargs)
    except FastsimError as exc:
        raise ValueError(str(exc)) from None
    return getattr(options, option)


def bytes_value(value) -> int:
    """A byte count: an integer ``>= 0`` or a size with its unit (``"2GiB"``, ``"512MB"``)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a number of bytes or a size like '2GiB', got {_show(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a number of bytes >= 0, got {value}")
        check_int64(value, "a number of bytes")
        return value
    req = parse_cache(value)
    if req.kind != "bytes":
        raise ValueError(f"expected a number of bytes or a size like '2GiB', got {value!r}")
    return int(req.value)


def context_value(value) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"expected an integer number of tokens >= 0, got {_show(value)}")
    check_int64(value, "a number of tokens")
    return int(value)


def execution_axis(key: str, value, path, r) -> tuple:
    """One execution axis of a spec (:data:`EXECUTION_AXES` key), de-duplicated."""
    option = EXECUTION_AXES[key]
    return _each(value, path, r, lambda v: execution_value(option, v))


def execution_axes(table: Mapping, path, r) -> dict:
    """The execution axes a spec table (top level or a strategy table) sets: option -> values."""
    return {option: execution_axis(key, table[key], tuple(path) + (key,), r)
            for key, option in EXECUTION_AXES.items() if key in table}


def check_uploads(axes: dict, own: dict, path, r) -> None:
    """A cap on uploads needs misses that run elsewhere (``cpu`` or ``zero-copy``); with ``load``
    among the misses too, ``"none"`` must be among the caps for ``load`` to run. ``axes`` are a
    strategy table's execution axes, ``own`` those it sets itself, ``path`` the table's."""
    caps, misses = axes["max_uploads_per_layer"], axes["miss_execution"]
    if all(c is None for c in caps):
        return
    mine = "max_uploads_per_layer" in own
    key = tuple(path) + ("max_uploads_per_layer",) if mine else ("max_uploads_per_layer",)
    where = "" if mine else f" (strategy table {path[1]!r})"
    if not any(m in ("cpu", "zero-copy") for m in misses):
        raise r.fail(key, f"max_uploads_per_layer caps uploads when the other misses run elsewhere: it needs "
                          f"miss_executions to hold 'cpu' or 'zero-copy', and it holds {list(misses)}{where}")
    if "load" in misses and None not in caps:
        raise r.fail(key, "miss_executions holds 'load', which takes no max_uploads_per_layer: add 'none' to "
                          f"max_uploads_per_layer (the load rows run with it), or give the caps a strategy table "
                          f"of their own without 'load'{where}")


def budget_axis(key: str, value, path, r) -> tuple:
    """``reserve_bytes`` (byte counts or sizes) or ``context_tokens`` (integers), de-duplicated."""
    parse = bytes_value if key == "reserve_bytes" else context_value
    return _each(value, path, r, parse)


def execution_combos(axes: dict) -> list:
    """Every :class:`~fastsim.timeline.options.ExecutionOptions` of the product of ``axes``
    (option name -> values, in :data:`EXECUTION_AXES` order), the last fastest. A cap on uploads
    applies to CPU and zero-copy misses only, so ``("load", M)`` pairs are left out; the spec
    reader makes sure ``"none"`` is then among the caps, so ``load`` still runs."""
    import itertools

    from ..timeline.options import ExecutionOptions

    names = list(EXECUTION_AXES.values())
    out = []
    for combo in itertools.product(*(axes[n] for n in names)):
        opts = dict(zip(names, combo))
        if opts["miss_execution"] == "load" and opts["max_uploads_per_layer"] is not None:
            continue
        out.append(ExecutionOptions(**opts))
    return list(dict.fromkeys(out))


# -------------------------------------------------------------------------- batching


def batching_value(value) -> str:
    """One batching, ``"continuous"`` or ``"recorded"``; ValueError otherwise."""
    from ..timeline.recorded import BATCHINGS

    if not isinstance(value, str) or value not in BATCHINGS:
        raise ValueError(f"expected one of {', '.join(repr(b) for b in BATCHINGS)}, got {_show(value)}")
    return value


def batchings_axis(value, path, r) -> tuple[str, ...]:
    """The ``batchings`` axis: ``"continuous"`` and ``"recorded"``, de-duplicated."""
    return _each(value, path, r, batching_value)
