"""Model and hardware profiles: the figures the timeline turns into nanoseconds (SPEC section 2).

Profiles are data. The built-in ones live in ``models.toml`` and ``hardware.toml`` beside this
module, one table per profile, each figure with a comment citing its source. Anywhere a profile is
taken it may be

- a built-in name (``"switch-base-128"``, ``"rtx3090"``; see :func:`list_models`,
  :func:`list_hardware`),
- a path (``str`` or ``os.PathLike``) to a TOML file holding exactly one profile table in the
  format of the built-in files, or
- a mapping with the profile's fields (an existing profile object passes through unchanged).

Every problem raises :class:`~fastsim.errors.ProfileError` with one message naming the profile,
the file and the field at fault.
"""
from __future__ import annotations

import math
import numbers
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ProfileError

__all__ = [
    "HardwareProfile",
    "ModelProfile",
    "ProfileError",
    "hardware_profile",
    "list_hardware",
    "list_models",
    "model_profile",
]


@dataclass(frozen=True)
class ModelProfile:
    """The figures of one MoE model that the timeline needs.

    Attributes
    ----------
    name : str
        Profile name (matched against a trace's ``model`` metadata).
    num_layers : int
        MoE layers per token step, ``L``.
    num_experts : int
        Routed experts per MoE layer, ``E``.
    top_k : int
        Experts each token is routed to per layer, ``K``.
    expert_bytes : int or tuple of int
        Bytes of one routed expert's weights as stored (parameters x bytes per parameter of the
        checkpoint's dtype, block scales included where the format has them); a tuple of one
        size per layer where a file mixes quantisation types by layer (a list of equal sizes is
        kept as one int). :meth:`layer_bytes` gives the per-layer sizes either way.
    dense_bytes_per_layer : int
        Non-expert weight bytes read per MoE layer per decode step (attention, norms, router,
        shared experts).
    expert_flops_per_token : float
        FLOPs one expert spends on one token: 2 x the expert's matrix parameters.
    dense_flops_per_token : float
        FLOPs of the non-expert part of one layer for one token.
    description : str
        Free text: origin of the figures. Not compared: two profiles are equal when their
        name and figures are.
    """

    name: str
    num_layers: int
    num_experts: int
    top_k: int
    expert_bytes: int
    dense_bytes_per_layer: int
    expert_flops_per_token: float
    dense_flops_per_token: float
    description: str = field(default="", compare=False)
    #: All non-expert weight bytes of the model (embeddings, every layer's attention, norms,
    #: router and shared experts, the LM head), for ``cache_bytes="auto"`` (SPEC section 7).
    #: Optional: None when the profile does not give it.
    dense_bytes_total: int | None = None
    #: KV-cache bytes one token of context holds over all layers (keys and values), optional.
    kv_bytes_per_token: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The SPEC fields as a plain JSON-able dict (``description`` and absent optional
        fields left out)."""
        d = {
            f.name: getattr(self, f.name) for f in fields(self)
            if f.name != "description" and getattr(self, f.name) is not None
        }
        if isinstance(d["expert_bytes"], tuple):
            d["expert_bytes"] = list(d["expert_bytes"])
        return d

    def layer_bytes(self) -> tuple[int, ...]:
        """The expert size of each layer (``num_layers`` entries)."""
        if isinstance(self.expert_bytes, tuple):
            return self.expert_bytes
        return (self.expert_bytes,) * self.num_layers

    @property
    def uniform_sizes(self) -> bool:
        return not isinstance(self.expert_bytes, tuple)


@dataclass(frozen=True)
class HardwareProfile:
    """The figures of one accelerator and its host link that the timeline needs.

    Attributes
    ----------
    name : str
        Profile name.
    h2d_bytes_per_s : float
        Pinned host-to-device copy bandwidth as measured, bytes per second.
    transfer_latency_s : float
        Fixed cost of one host-to-device transfer, seconds (may be 0).
    mem_bytes_per_s : float
        Device memory bandwidth, bytes per second.
    flops_per_s : float
        Dense matrix throughput in the models' dtype, FLOP per second.
    memory_bytes : int
        Device memory capacity, bytes.
    launch_s : float
        Cost of launching the kernels of one expert or one dense block, seconds (may be 0).
    description : str
        Free text: origin of the figures. Not compared: two profiles are equal when their
        name and figures are.
    """

    name: str
    h2d_bytes_per_s: float
    transfer_latency_s: float
    mem_bytes_per_s: float
    flops_per_s: float
    memory_bytes: int
    launch_s: float
    description: str = field(default="", compare=False)
    #: Host figures for ``miss_execution="cpu"`` (SPEC section 7); optional, None when absent.
    cpu_flops_per_s: float | None = None
    cpu_mem_bytes_per_s: float | None = None
    cpu_overhead_s: float | None = None
    #: Memory tiers (SPEC section 7): pinned host memory for experts, and the NVMe read rate
    #: of the experts beyond it; optional, None when absent (every expert in host memory).
    host_bytes: int | None = None
    nvme_bytes_per_s: float | None = None
    #: Fixed costs (optional, None when absent: section 2's formulas exactly). A fixed cost per
    #: (step, layer) added to ``dense(b)``: the framework's per-layer kernels, Python and
    #: dequantisation work that neither weight bytes nor FLOPs account for, seconds.
    layer_overhead_s: float | None = None
    #: Achieved fraction, in (0, 1], of ``mem_bytes_per_s`` and ``flops_per_s`` in ``expert(n)``
    #: (``expert_efficiency``) and in ``dense(b)`` (``dense_efficiency``).
    expert_efficiency: float | None = None
    dense_efficiency: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The SPEC fields as a plain JSON-able dict (``description`` and absent optional
        fields left out)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self)
            if f.name != "description" and getattr(self, f.name) is not None
        }


# Field kinds: "int" a positive integer; "int0" an integer >= 0 (a model with no dense weights
# per layer); "float" a positive number; "rate" a positive number or infinity (an idealised link
# or device, for what-if studies); "float0" a finite number >= 0 (fixed costs a profile may
# leave out); "fraction" a number in (0, 1] (an achieved share of a rate). An integer field
# also takes an integral float (80e9, 28.5e6: TOML and JSON writers often produce them), up to
# _INT64_MAX: results tables hold the figures as int64 columns and kernels as int64 arrays.
_MODEL_KINDS = {
    "num_layers": "int",
    "num_experts": "int",
    "top_k": "int",
    "expert_bytes": "sizes",
    "dense_bytes_per_layer": "int0",
    "expert_flops_per_token": "float",
    "dense_flops_per_token": "float0",
    "dense_bytes_total": "int0",
    "kv_bytes_per_token": "int0",
}
_HARDWARE_KINDS = {
    "h2d_bytes_per_s": "rate",
    "transfer_latency_s": "float0",
    "mem_bytes_per_s": "rate",
    "flops_per_s": "rate",
    "memory_bytes": "int",
    "launch_s": "float0",
    "cpu_flops_per_s": "rate",
    "cpu_mem_bytes_per_s": "rate",
    "cpu_overhead_s": "float0",
    "host_bytes": "int",
    "nvme_bytes_per_s": "rate",
    "layer_overhead_s": "float0",
    "expert_efficiency": "fraction",
    "dense_efficiency": "fraction",
}
#: Fields a profile may leave out (the options that need them say so when they are absent).
_INT64_MAX = 2**63 - 1
_OPTIONAL = {
    "dense_bytes_total", "kv_bytes_per_token",
    "cpu_flops_per_s", "cpu_mem_bytes_per_s", "cpu_overhead_s", "host_bytes", "nvme_bytes_per_s",
    "layer_overhead_s", "expert_efficiency", "dense_efficiency",
}


@dataclass(frozen=True, eq=False)
class _Kind:
    """What distinguishes the two profile families while parsing."""

    label: str  # "model" or "hardware", for messages
    cls: type
    kinds: dict[str, str]
    resource: str  # built-in file name


_MODEL = _Kind("model", ModelProfile, _MODEL_KINDS, "models.toml")
_SIZE_KIND = _Kind("model", ModelProfile, {"size": "int"}, "models.toml")  # one entry of a size list
_HARDWARE = _Kind("hardware", HardwareProfile, _HARDWARE_KINDS, "hardware.toml")


def _where(name: str | None, origin: str) -> str:
    """The start of every message: which profile, from where."""
    who = f"{name!r}" if name is not None else "(unnamed)"
    return f"{who} ({origin})"


def _check_value(kind: _Kind, field_name: str, value: Any, where: str, label: str | None = None) -> Any:
    """Validate one numeric field; return it as a plain ``int`` or ``float``. ``label`` names
    the field in messages when ``field_name`` alone does not (an entry of a list)."""
    rule = kind.kinds[field_name]
    prefix = f"{kind.label} profile {where}: field {field_name!r}{label or ''}"
    if rule == "sizes":
        # one size for every layer, or a list of one per layer (quantised files mix types)
        if isinstance(value, (list, tuple)):
            sizes = tuple(_check_value(_SIZE_KIND, "size", v, where, f" ({field_name}[{i}])")
                          for i, v in enumerate(value))
            if not sizes:
                raise ProfileError(f"{prefix} must be a positive integer or a list of them, got []")
            return sizes[0] if len(set(sizes)) == 1 else sizes
        rule = "int"
    if rule in ("int", "int0"):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ProfileError(f"{prefix} must be an integer, got {type(value).__name__} {value!r}")
        if not isinstance(value, numbers.Integral):
            as_float = float(value)
            if not (math.isfinite(as_float) and as_float.is_integer()):
                raise ProfileError(
                    f"{prefix} must be an integer (an integral float such as 28.5e6 is "
                    f"accepted), got {type(value).__name__} {value!r}"
                )
            value = as_float
        value = int(value)
        if value < 0 or (value == 0 and rule == "int"):
            raise ProfileError(f"{prefix} must be {'positive' if rule == 'int' else 'zero or positive'}, got {_shown(value)}")
        if value > _INT64_MAX:
            raise ProfileError(f"{prefix} must be at most {_INT64_MAX} (a 64-bit integer), got {_shown(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ProfileError(f"{prefix} must be a number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ProfileError(f"{prefix} must be a finite number, got {_shown(value)}") from None
    if math.isnan(value) or (value == math.inf and rule != "rate"):
        raise ProfileError(f"{prefix} must be finite, got {value}")
    if rule in ("float", "rate") and value <= 0.0:
        raise ProfileError(f"{prefix} must be positive, got {value}")
    if rule == "float0" and value < 0.0:
        raise ProfileError(f"{prefix} must be zero or positive, got {value}")
    if rule == "fraction" and not 0.0 < value <= 1.0:
        raise ProfileError(f"{prefix} must be a fraction in (0, 1], got {value}")
    return value


def _shown(value) -> str:
    """A number for a message; an integer of many digits by its length."""
    if isinstance(value, numbers.Integral) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(int(value))))} digits"
    return f"{value}"


def _build(kind: _Kind, data: Mapping, origin: str, name: str | None = None):
    """Validate a mapping of fields and build the profile.

    Parameters
    ----------
    kind : _Kind
        Model or hardware.
    data : Mapping
        The fields. ``name`` is taken from ``name`` when given (a table's key), else from the
        mapping, where it must then be present.
    origin : str
        Where the fields came from, for messages (``"file x.toml"``, ``"a mapping"``).
    name : str or None
        The profile name fixed by a table key; a ``name`` field in ``data`` must agree with it.
    """
    if not isinstance(data, Mapping):
        raise ProfileError(
            f"{kind.label} profile {_where(name, origin)}: expected a table of fields, "
            f"got {type(data).__name__}"
        )
    for key in data:
        if not isinstance(key, str):
            raise ProfileError(
                f"{kind.label} profile {_where(name, origin)}: field names must be strings, "
                f"got {key!r}"
            )
    given = data.get("name")
    if given is not None and not isinstance(given, str):
        raise ProfileError(
            f"{kind.label} profile {_where(name, origin)}: field 'name' must be a string, "
            f"got {type(given).__name__} {given!r}"
        )
    if name is None:
        if given is None:
            raise ProfileError(f"{kind.label} profile from {origin}: missing field 'name'")
        name = given
    elif given is not None and given != name:
        raise ProfileError(
            f"{kind.label} profile {_where(name, origin)}: field 'name' is {given!r} but the "
            f"table is [{name}]"
        )
    if not name.strip():
        raise ProfileError(f"{kind.label} profile from {origin}: field 'name' must not be empty")
    where = _where(name, origin)

    allowed = set(kind.kinds) | {"name", "description"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ProfileError(
            f"{kind.label} profile {where}: unknown field {unknown[0]!r}; "
            f"expected {', '.join(f.name for f in fields(kind.cls))}"
        )
    missing = [f for f in kind.kinds if f not in data and f not in _OPTIONAL]
    if missing:
        raise ProfileError(f"{kind.label} profile {where}: missing field {missing[0]!r}")
    values = {
        f: _check_value(kind, f, data[f], where)
        for f in kind.kinds
        if f in data and not (f in _OPTIONAL and data[f] is None)
    }
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(
            f"{kind.label} profile {where}: field 'description' must be a string, "
            f"got {type(description).__name__}"
        )
    if kind is _MODEL and isinstance(values["expert_bytes"], tuple) and len(values["expert_bytes"]) != values["num_layers"]:
        raise ProfileError(
            f"model profile {where}: field 'expert_bytes' lists {len(values['expert_bytes'])} sizes but "
            f"'num_layers' is {values['num_layers']}: give one size, or one per layer"
        )
    if kind is _MODEL and values["top_k"] > values["num_experts"]:
        raise ProfileError(
            f"model profile {where}: field 'top_k' ({values['top_k']}) exceeds field "
            f"'num_experts' ({values['num_experts']})"
        )
    return kind.cls(name=name, description=description, **values)


def _parse_file_text(kind: _Kind, text: str, origin: str) -> dict[str, Any]:
    """Parse TOML text into ``{name: profile}``; every top-level entry must be a table."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{kind.label} profile {origin}: malformed TOML: {exc}") from None
    profiles = {}
    for key, table in document.items():
        if not isinstance(table, dict):
            raise ProfileError(
                f"{kind.label} profile {origin}: top-level key {key!r} is not a table; write "
                f"each profile as [name] followed by its fields"
            )
        profiles[key] = _build(kind, table, origin, name=key)
    return profiles


@lru_cache(maxsize=None)
def _builtins(kind: _Kind) -> dict[str, Any]:
    """The built-in profiles of one family, parsed and validated once per process."""
    text = resources.files(__name__).joinpath(kind.resource).read_text(encoding="utf-8")
    return _parse_file_text(kind, text, f"built-in {kind.resource}")


def _load_file(kind: _Kind, path: Path):
    """Load the single profile table of a user's TOML file."""
    origin = f"file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{kind.label} profile {origin}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{kind.label} profile {origin}: cannot read: {exc}") from None
    profiles = _parse_file_text(kind, text, origin)
    if len(profiles) != 1:
        found = ", ".join(repr(p) for p in profiles) or "none"
        raise ProfileError(
            f"{kind.label} profile {origin}: expected exactly one profile table, found "
            f"{len(profiles)} ({found})"
        )
    return next(iter(profiles.values()))


def _looks_like_path(text: str) -> bool:
    """Whether a string that is not a built-in name should be read as a file path."""
    return (
        text.lower().endswith(".toml")
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or os.path.isfile(text)
    )


def _resolve(kind: _Kind, x: Any):
    """Turn a name, path, mapping or profile object into a validated profile."""
    if isinstance(x, kind.cls):
        return x
    if isinstance(x, (ModelProfile, HardwareProfile)):
        raise ProfileError(
            f"expected a {kind.label} profile, got the {type(x).__name__} {x.name!r}"
        )
    if isinstance(x, os.PathLike):
        return _load_file(kind, Path(os.fspath(x)))
    if isinstance(x, str):
        known = _builtins(kind)
        if x in known:
            return known[x]
        if kind is _MODEL and x.endswith("]"):  # NAME[0,8,12] or NAME[k=K]: see derive.py
            from .derive import derived_model

            return derived_model(x, lambda base: _resolve(kind, base))
        if kind is _MODEL and not os.path.isfile(x):  # NAME@wB: see quantise.py
            from .quantise import quantised_model

            quantised = quantised_model(x, lambda base: _resolve(kind, base))
            if quantised is not None:
                return quantised
        if _looks_like_path(x):
            return _load_file(kind, Path(x))
        raise ProfileError(
            f"unknown {kind.label} profile {x!r}; built-in {kind.label} profiles: "
            f"{', '.join(sorted(known))} (or give a TOML file path)"
        )
    if isinstance(x, Mapping):
        return _build(kind, x, "a mapping")
    raise ProfileError(
        f"a {kind.label} profile must be a built-in name, a TOML file path, a mapping or a "
        f"{kind.cls.__name__}, got {type(x).__name__}"
    )


def model_profile(x: Any) -> ModelProfile:
    """Resolve a model profile.

    Parameters
    ----------
    x : str, os.PathLike, Mapping or ModelProfile
        A built-in name (see :func:`list_models`), such a name with a suffix (``NAME@w4``:
        quantised experts, :mod:`fastsim.profiles.quantise`; ``NAME[k=6]``: see
        :mod:`fastsim.profiles.derive`), a path to a TOML file holding one profile table, a mapping with the fields of :class:`ModelProfile` (``name`` required,
        ``description`` optional), or a profile, returned unchanged.

    Returns
    -------
    ModelProfile

    Raises
    ------
    ProfileError
        Unknown name (the message lists the built-ins), unreadable or malformed file, missing or
        unknown field, wrong type, or a non-positive value.
    """
    return _resolve(_MODEL, x)


def hardware_profile(x: Any) -> HardwareProfile:
    """Resolve a hardware profile.

    Parameters
    ----------
    x : str, os.PathLike, Mapping or HardwareProfile
        A built-in name (see :func:`list_hardware`), a path to a TOML file holding one profile
        table, a mapping with the fields of :class:`HardwareProfile` (``name`` required,
        ``description`` optional), or a profile, returned unchanged.

    Returns
    -------
    HardwareProfile

    Raises
    ------
    ProfileError
        Unknown name (the message lists the built-ins), unreadable or malformed file, missing or
        unknown field, wrong type, or a value out of range (``transfer_latency_s``,
        ``launch_s``, ``cpu_overhead_s`` and ``layer_overhead_s`` may be 0, the efficiencies
        lie in (0, 1], everything else must be positive).
    """
    return _resolve(_HARDWARE, x)


def list_models() -> list[str]:
    """Names of the built-in model profiles, sorted."""
    return sorted(_builtins(_MODEL))


def list_hardware() -> list[str]:
    """Names of the built-in hardware profiles, sorted."""
    return sorted(_builtins(_HARDWARE))
