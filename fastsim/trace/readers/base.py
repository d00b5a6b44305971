"""What every log reader shares: the reader interface, the import options and the dimensions.

A reader turns one log format into a :class:`~fastsim.trace.model.Trace`. Array formats
(``npy``, ``npz``) read whole arrays; text formats (``jsonl``, ``csv``) read records that
:mod:`.assemble` merges (several files may feed one trace) into the trace.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ...errors import TraceError

__all__ = [
    "FIELD_ALIASES",
    "LAYOUTS",
    "LONG_ALIASES",
    "ON_RESTART",
    "Dims",
    "ImportOptions",
    "Reader",
    "display",
    "limit_text",
    "parse_field_options",
    "resolve_dims",
]

LAYOUTS = ("tokens-layers-topk", "per-layer", "long")
ON_RESTART = ("error", "new-sequence", "new-step")

# Names tried, in order, for each role of a JSON Lines record or CSV column when the caller does
# not name the field. ``layer`` and ``experts`` make a routing record; the others are optional.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "request": ("request_id", "req_id", "seq_id", "sequence", "request"),
    "token": ("token_idx", "token_pos", "position", "token"),
    "layer": ("layer", "layer_id"),
    "experts": ("experts", "topk_ids", "expert_ids"),
    "scores": ("gating_probs", "topk_weights", "scores"),
    "phase": ("phase",),
    "type": ("type", "record_type"),
    "slot": ("slot", "rank", "topk_rank", "k"),
}
# The long layout (one row per routed expert) names its single-expert and weight columns so.
LONG_ALIASES: dict[str, tuple[str, ...]] = {
    **FIELD_ALIASES,
    "experts": ("expert", "expert_id", "expert_idx", "experts"),
    "scores": ("weight", "score", "prob", "gate", "topk_weight", "gating_prob"),
}
REQUIRED_ROLES = ("layer", "experts")


@dataclass
class Dims:
    """Known trace dimensions (``None`` = infer from the data) and where they came from.

    ``num_layers`` counts the trace's layers: the listed ``layers`` when the log holds only
    some of the model's.
    """

    model: str | None = None
    num_experts: int | None = None
    num_layers: int | None = None
    top_k: int | None = None
    #: Model layer numbers the log holds (``--layers``), or None for all of them.
    layers: tuple[int, ...] | None = None
    #: The model profile's own top_k when the engine ran fewer experts (``--top-k`` below it).
    model_top_k: int | None = None


@dataclass
class ImportOptions:
    """Everything an import may be told besides the files themselves."""

    dims: Dims
    layout: str = "tokens-layers-topk"
    fields: Mapping[str, str | None] = field(default_factory=dict)
    sequence_lengths: object = None
    on_restart: str = "error"
    record_type: str | None = None


class Reader:
    """One log format. Array readers override :meth:`read`; text readers :meth:`records`."""

    #: Format name (``--format``).
    name: str = ""
    #: File name endings that select this reader (compression endings are stripped first).
    suffixes: tuple[str, ...] = ()
    #: Whether several files may be merged into one trace (text formats).
    text: bool = False

    def read(self, path, options: ImportOptions):
        """Read one file as a Trace (array formats)."""
        raise NotImplementedError

    def records(self, path, options: ImportOptions, into, file: int) -> None:
        """Append one file's routing records to ``into`` (a :class:`~.records.Records`) as file
        number ``file`` (text formats)."""
        raise NotImplementedError


def display(src) -> str:
    return os.fspath(src)


def limit_text(dims: Dims, key: str) -> str:
    """A known limit and where it came from, for error messages: ``top_k=2 of model 'x'``."""
    origin = f"of model {dims.model!r}" if dims.model is not None else "as given"
    return f"{key}={getattr(dims, key)} {origin}"


def _model_profile(model):
    from ...profiles import model_profile

    return model_profile(model)


def _positive(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise TraceError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _layer_list(layers) -> tuple[int, ...] | None:
    if layers is None:
        return None
    try:
        out = tuple(int(l) for l in layers)
    except (TypeError, ValueError):
        raise TraceError(f"layers must be a list of layer numbers, got {layers!r}") from None
    if not out:
        raise TraceError("layers lists no layer; expected at least one layer number")
    for prev, layer in zip((-1,) + out, out):
        if layer < 0:
            raise TraceError(f"layers: layer {layer} is negative")
        if layer <= prev:
            raise TraceError(
                f"layers must be listed in increasing order without repeats; {layer} follows {prev}"
            )
    return out


def resolve_dims(model, num_experts, num_layers, top_k, layers=None) -> Dims:
    """Merge the model profile's ``E, L, K`` with explicit numbers; a disagreement is an error.

    ``num_layers`` is the model's layer count; with ``layers`` (the model layers the log holds)
    the trace has ``len(layers)`` layers. ``top_k`` below the model's is an engine run at fewer
    experts per token: the trace's model becomes the derived ``NAME[k=K]``.
    """
    from ...errors import ProfileError
    from ...profiles.derive import derive

    num_experts = _positive(num_experts, "num_experts")
    num_layers = _positive(num_layers, "num_layers")
    top_k = _positive(top_k, "top_k")
    layers = _layer_list(layers)
    dims = Dims(num_experts=num_experts, num_layers=num_layers, top_k=top_k, layers=layers)
    profile = None
    if model is not None:
        profile = _model_profile(model)
        name = str(profile.name)
        for key in ("num_experts", "num_layers"):
            own, value = int(getattr(profile, key)), getattr(dims, key)
            if value is not None and value != own:
                raise TraceError(f"{key}={value} contradicts model {name!r}, which has {key}={own}")
            setattr(dims, key, own)
        own_k = int(profile.top_k)
        if top_k is not None and top_k > own_k:
            raise TraceError(
                f"top_k={top_k} exceeds model {name!r}, which has top_k={own_k}; an engine may run "
                "fewer experts per token than the model, never more"
            )
        dims.top_k = own_k if top_k is None else top_k
        if dims.top_k < own_k:
            dims.model_top_k = own_k
        dims.model = name
    if layers is not None:
        if dims.num_layers is not None and layers[-1] >= dims.num_layers:
            raise TraceError(
                f"layers: layer {layers[-1]} is out of range: {limit_text(dims, 'num_layers')}, "
                f"so layers are 0..{dims.num_layers - 1}"
            )
        dims.num_layers = len(layers)
    if profile is not None and (layers is not None or dims.model_top_k is not None):
        try:
            derived = derive(profile, layers, dims.top_k if dims.model_top_k is not None else None)
        except ProfileError as exc:  # pragma: no cover - the checks above come first
            raise TraceError(str(exc)) from None
        dims.model = derived.name
    return dims


def parse_field_options(items) -> dict[str, str | None]:
    """Turn ``["experts=topk_ids", "token="]`` into ``{"experts": "topk_ids", "token": None}``."""
    out: dict[str, str | None] = {}
    for item in items or ():
        role, sep, name = str(item).partition("=")
        role = role.strip()
        if not sep or role not in FIELD_ALIASES:
            raise TraceError(
                f"field option {item!r} must be ROLE=NAME with ROLE one of {', '.join(FIELD_ALIASES)}"
            )
        out[role] = name.strip() or None
    return out


def role_names(fields: Mapping[str, str | None] | None, long: bool = False) -> dict[str, tuple[str, ...]]:
    """Candidate field names per role; an empty tuple switches an optional role off."""
    fields = dict(fields or {})
    aliases = LONG_ALIASES if long else FIELD_ALIASES
    unknown = sorted(set(fields) - set(aliases))
    if unknown:
        raise TraceError(f"unknown field role {unknown[0]!r}; expected one of {', '.join(aliases)}")
    out = {}
    for role, names in aliases.items():
        if role in fields:
            name = fields[role]
            if not name:
                if role in REQUIRED_ROLES:
                    raise TraceError(f"the {role} field is required and cannot be switched off")
                out[role] = ()
            else:
                out[role] = (str(name),)
        else:
            out[role] = names
    return out


def pick(names: tuple[str, ...], present) -> str | None:
    """The first of ``names`` that is ``present``, or None."""
    for name in names:
        if name in present:
            return name
    return None
