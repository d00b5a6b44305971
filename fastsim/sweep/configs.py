"""``replay_many`` configurations: a mapping of :func:`fastsim.replay` arguments as a :class:`Config`.

Every malformed value raises one :class:`~fastsim.errors.ConfigError` naming the configuration's
index (``configs[2]: ...``) and the field.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError, FastsimError
from ..profiles import hardware_profile, model_profile
from ..timeline.options import execution_options
from .axes import (
    AUTO, EXECUTION_AXES, GLOBAL, batching_value, bytes_value, check_shape, context_value, eviction_choice, parse_cache,
    partition_value, pin_profile_value, pinned_value,
)
from .grid import Config, make_config

__all__ = ["config_from_mapping", "CONFIG_KEYS"]

CONFIG_KEYS = {
    "strategy", "model", "hardware", "cache_slots", "cache_bytes", "eviction", "batch_size", "max_prefetch_loads",
    "params", "eviction_params", "cache_partition", "pinned", "pin_profile",
    *EXECUTION_AXES.values(), "reserve_bytes", "context_tokens", "batching",
}


def _plain_scalars(value):
    """numpy scalars (and lists of them) as Python numbers, as ``fastsim.replay`` accepts them."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1):
        return [_plain_scalars(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    return value


def _organisation(given: Mapping, model) -> dict:
    """The SPEC section 6 keys of one ``replay_many`` configuration, validated (ValueError)."""
    ev_params = given.get("eviction_params")
    choice = eviction_choice(given.get("eviction", "lru"), ev_params)
    out = {"eviction": choice}
    for key, parse, default in (("cache_partition", partition_value, GLOBAL), ("pinned", pinned_value, None),
                                ("pin_profile", pin_profile_value, 1.0)):
        value = given.get(key)
        try:
            out[key] = default if value is None else parse(_plain_scalars(value))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    check_shape(out["cache_partition"], out["pinned"], model.num_layers, model.num_experts)
    return out


def config_from_mapping(trace, i: int, given, trace_name: str) -> Config:
    if not isinstance(given, Mapping):
        raise ConfigError(f"configs[{i}]: expected a mapping of replay arguments, got {type(given).__name__}")
    params = {k: v for k, v in given.items() if k not in CONFIG_KEYS}
    params.update(given.get("params") or {})
    strategy = given.get("strategy", "on-demand")
    try:
        model = model_profile(given["model"] if given.get("model") is not None else trace.model)
        hardware = hardware_profile(given.get("hardware", "rtx3090"))
    except FastsimError as exc:
        raise ConfigError(f"configs[{i}]: {exc}") from None
    except TypeError:
        raise ConfigError(f"configs[{i}]: the trace names no model profile: give model=NAME") from None
    slots, nbytes = given.get("cache_slots"), given.get("cache_bytes")
    if slots is not None and nbytes is not None:
        raise ConfigError(f"configs[{i}]: give one of cache_slots and cache_bytes, not both")
    try:
        if nbytes == AUTO:
            cache = parse_cache(AUTO)
        elif nbytes is not None:
            if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
                raise ValueError(f"cache_bytes must be an integer >= 0 or 'auto', got {nbytes!r}")
            cache = parse_cache(f"{nbytes}B")
        elif slots is not None:
            cache = parse_cache(slots)
        elif strategy == "on-demand":
            cache = parse_cache("working-set")
        else:
            raise ValueError("give cache_slots (a number or 'working-set') or cache_bytes")
    except ValueError as exc:
        raise ConfigError(f"configs[{i}]: {exc}") from None
    try:
        organisation = _organisation(given, model)
    except ValueError as exc:
        raise ConfigError(f"configs[{i}]: {exc}") from None
    batch = given.get("batch_size", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"configs[{i}]: batch_size must be an integer >= 1, got {batch!r}")
    cap = given.get("max_prefetch_loads")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise ConfigError(f"configs[{i}]: max_prefetch_loads must be an integer >= 0 or None, got {cap!r}")
    try:
        execution = execution_options(**{k: _plain_scalars(given[k]) for k in EXECUTION_AXES.values() if k in given})
    except FastsimError as exc:
        raise ConfigError(f"configs[{i}]: {exc}") from None
    budget = {}
    for key, parse in (("reserve_bytes", bytes_value), ("context_tokens", context_value)):
        value = given.get(key)
        if value is not None:  # as in fastsim.replay, they size an auto cache and nothing else
            try:
                budget[key] = parse(_plain_scalars(value))
            except ValueError as exc:
                raise ConfigError(f"configs[{i}]: {key}: {exc}") from None
    batching = given.get("batching")
    if batching is not None:  # None: the trace's default, as in fastsim.replay
        try:
            batching = batching_value(batching)
        except ValueError as exc:
            raise ConfigError(f"configs[{i}]: batching: {exc}") from None
    try:
        return make_config(trace_name, model, hardware, batch, strategy, params, cache, organisation.pop("eviction"), cap,
                           execution=execution, batching=batching, **organisation, **budget)
    except FastsimError as exc:
        raise ConfigError(f"configs[{i}]: {exc}") from None
