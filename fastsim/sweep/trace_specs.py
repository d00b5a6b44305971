"""The ``[[traces]]`` entries of a sweep spec: Parquet files or generator settings.

Part of :func:`fastsim.sweep.spec.load_spec`'s validation: ``r`` is the spec's reader, whose
``fail`` raises a :class:`~fastsim.errors.SpecError` naming the file, line and key. A generated
trace's settings are checked by generating zero tokens, at no cost.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FastsimError
from ..profiles import list_models
from .axes import INT64_MAX, _show

__all__ = ["TraceSpec", "trace_specs", "generate_with", "generated_shape"]

_TRACE_FILE_KEYS = {"name", "file", "model"}


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


def trace_specs(raw: dict, r) -> tuple[TraceSpec, ...]:
    """The spec's ``[[traces]]`` entries, each a file or generator settings, names distinct."""
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


def _generated_trace(entry: Mapping, i: int, path: tuple, r) -> TraceSpec:
    """A ``[[traces]]`` entry of generator settings, checked by generating zero tokens."""
    from ..trace import generate

    allowed = {"name", "model", "tokens", "sequences", "seed", "preset", "router_scores", "prompt_tokens"} | set(
        generate.DEFAULT_PARAMS)
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
    if entry.get("router_scores") is not None:
        if not isinstance(entry["router_scores"], bool):
            raise r.fail(path + ("router_scores",), f"expected true or false, got {_show(entry['router_scores'])}")
        if entry["router_scores"]:
            params["router_scores"] = True
    if entry.get("prompt_tokens") is not None:
        value = entry["prompt_tokens"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
            raise r.fail(path + ("prompt_tokens",),
                         f"expected a count of prompt tokens in [0, {INT64_MAX}], got {_show(value)}")
        params["prompt_tokens"] = value
    for key in params:
        if _beyond_floats(params[key]):
            raise r.fail(path + (key,), f"expected a finite number, got {_show(params[key])} (beyond any float)")
    if preset is not None:
        params["preset"] = preset
    _check_generates(entry, model, sequences, params, path, r)
    label = preset if preset is not None and "model" not in entry else model
    default = label if isinstance(label, str) and "/" not in label else f"generated-{i}"
    name = r.string(entry.get("name", f"{default}-{tokens}"), path + ("name",))
    return TraceSpec(name=name, model=model, tokens=tokens, sequences=sequences, seed=seed, params=params, path=path)


def _beyond_floats(value) -> bool:
    """An integer (or a list holding one) too large for a float: the generator's checks
    convert to float, and would raise OverflowError instead of naming the key."""
    if isinstance(value, (list, tuple)):
        return any(_beyond_floats(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return True
    return False


def _check_generates(entry: Mapping, model, sequences, params: dict, path: tuple, r) -> None:
    """A zero-token trace checks the model, the preset and every parameter at no cost."""
    import numpy as np

    try:
        # its lengths are all zero whatever the settings: overflow in them (a huge
        # length_sigma) is no problem of the spec's, and must not warn
        with np.errstate(all="ignore"):
            generate_with(model, 0, sequences, 0, params)
    except FastsimError as exc:
        text = str(exc)
        bad = next((k for k in entry if k not in ("name", "tokens") and (repr(k) in text or f" {k} " in text)), None)
        raise r.fail(path + ((bad,) if bad else ()), text.removeprefix("generate: ")) from None
    except (MemoryError, ValueError) as exc:  # a shape or a sequence count whose arrays do not fit in memory
        raise r.fail(path, f"the generator cannot allocate a trace of these settings: {exc}") from None


def generate_with(model, tokens: int, sequences, seed: int, params: dict):
    """Generate a trace from a spec's settings (``params`` may hold ``preset``)."""
    from ..trace.generate import generate_from_params

    params = dict(params)
    preset = params.pop("preset", None)
    if preset is not None:
        return generate_from_params(model, tokens, sequences, seed, params, preset=preset)
    return generate_from_params(model, tokens, sequences, seed, params)


def generated_shape(t: TraceSpec, r):
    """``resolve_shape`` of a generated trace's model; a bad model fails at its key."""
    from ..trace.generate import resolve_shape

    try:
        return resolve_shape(t.model)
    except FastsimError as exc:
        raise r.fail(t.path + ("model",), str(exc)) from None
