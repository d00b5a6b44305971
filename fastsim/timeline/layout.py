"""How the cache is organised for one replay (SPEC section 6): partitions, budgets, key sizes
and pins, resolved and validated in Python into the arrays the core reads.

The cache's *unit* is one slot, or one byte when the model's experts differ in size by layer and
the cache is given in bytes (``docs/model.md``, "Cache organisation").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._jit import kernel
from ..errors import ConfigError

__all__ = ["CacheLayout", "resolve_layout", "pinned_by_count", "GLOBAL", "PER_LAYER"]

GLOBAL = "global"
PER_LAYER = "per-layer"


@dataclass(frozen=True)
class CacheLayout:
    """A resolved cache organisation.

    ``budgets`` per partition in the cache's unit (``unit_is_bytes``); ``part_of_layer`` maps
    each layer to its partition; ``sizes`` the expert bytes of each layer; ``pinned`` the pinned
    keys, ascending.
    """

    partition: str
    part_of_layer: tuple[int, ...]
    budgets: tuple[int, ...]
    unit_is_bytes: bool
    sizes: tuple[int, ...]
    num_experts: int
    pinned: tuple[int, ...] = ()

    @property
    def simple(self) -> bool:
        """SPEC section 3's cache: one global partition of slots, nothing pinned."""
        return self.partition == GLOBAL and not self.unit_is_bytes and not self.pinned

    def units(self) -> np.ndarray:
        if self.unit_is_bytes:
            return np.asarray(self.sizes, np.int64)
        return np.ones(len(self.sizes), np.int64)

    def arrays(self):
        """``(part_of_layer, part_off, budget, unit, key_bytes, pinned)`` for the core."""
        L = len(self.sizes)
        part_of_layer = np.asarray(self.part_of_layer, np.int64)
        parts = len(self.budgets)
        part_keys = np.bincount(part_of_layer, minlength=parts) * self.num_experts
        part_off = np.zeros(parts + 1, np.int64)
        part_off[1:] = np.cumsum(part_keys)
        pinned = np.zeros(L * self.num_experts, np.uint8)
        pinned[list(self.pinned)] = 1
        return (part_of_layer, part_off, np.asarray(self.budgets, np.int64), self.units(),
                np.asarray(self.sizes, np.int64), pinned)


def _split(total: int, parts: int) -> list[int]:
    """``total // parts`` each, one more for each of the first ``total % parts``."""
    return [total // parts + (1 if q < total % parts else 0) for q in range(parts)]


def pinned_by_count(trace, count: int, pin_profile: float) -> tuple[int, ...]:
    """The ``count`` keys demanded by the most tokens over the first ``ceil(pin_profile *
    tokens)`` tokens (ties to the lowest key; never-demanded keys are not pinned)."""
    tokens = math.ceil(pin_profile * trace.num_tokens)
    x = trace.experts[:tokens]
    L, E = trace.num_layers, trace.num_experts
    keys = (np.arange(L, dtype=np.int64)[None, :, None] * E + x.astype(np.int64))[x >= 0]
    counts = np.bincount(keys, minlength=L * E)
    order = np.lexsort((np.arange(L * E), -counts))  # count descending, then key ascending
    chosen = [int(k) for k in order[:count] if counts[k] > 0]
    return tuple(sorted(chosen))


@kernel
def _worst_position(r_ptr, r_experts, num_layers, num_experts, part_of_layer, budget, unit, pinned, pinned_units):
    """The position whose demand needs most above its partition's budget: ``(p, need)``, or
    ``(-1, 0)`` when every position fits."""
    worst = -1
    worst_excess = 0
    worst_need = 0
    for p in range(r_ptr.shape[0] - 1):
        l = p % num_layers
        part = part_of_layer[l]
        need = pinned_units[part]
        base = l * num_experts
        for j in range(r_ptr[p], r_ptr[p + 1]):
            if not pinned[base + r_experts[j]]:
                need += unit[l]
        if need - budget[part] > worst_excess:
            worst_excess = need - budget[part]
            worst = p
            worst_need = need
    return worst, worst_need


def _layer_working_sets(sched) -> list[int]:
    sizes = np.diff(sched.r_ptr).reshape(-1, sched.num_layers) if sched.num_steps else np.zeros((1, sched.num_layers), int)
    return [int(v) for v in sizes.max(axis=0)]


def resolve_layout(trace, sched, model, total, unit_is_bytes, request, cache_partition, pinned, pin_profile,
                   working_set_request=False, check_working_set=True) -> CacheLayout:
    """Validate the organisation of a cache of ``total`` units and build its :class:`CacheLayout`.

    ``working_set_request``: the cache was asked as ``"working-set"``; a per-layer partition then
    gives each layer its own largest ``|R|``. ``check_working_set=False`` (``overflow="exceed"``)
    lets a position need more than its partition holds.
    """
    L, E = trace.num_layers, trace.num_experts
    sizes = tuple(int(x) for x in model.layer_bytes())
    what = "bytes" if unit_is_bytes else "slots"
    if isinstance(cache_partition, str):
        if cache_partition == GLOBAL:
            part_of_layer, budgets, label = (0,) * L, [total], GLOBAL
        elif cache_partition == PER_LAYER:
            budgets = _layer_working_sets(sched) if working_set_request else _split(total, L)
            part_of_layer, label = tuple(range(L)), PER_LAYER
        else:
            raise ConfigError(
                f"cache_partition must be 'global', 'per-layer' or a list of {L} sizes, got {cache_partition!r}"
            )
    else:
        try:
            budgets = [int(v) for v in cache_partition]
            bad = any(isinstance(v, bool) or int(v) != v or v < 0 for v in cache_partition)
        except (TypeError, ValueError):
            raise ConfigError(f"cache_partition must be 'global', 'per-layer' or a list of {L} sizes, got {cache_partition!r}") from None
        if bad or len(budgets) != L:
            raise ConfigError(f"cache_partition must list {L} non-negative integers (one per layer), got {list(cache_partition)!r}")
        if sum(budgets) != total:
            raise ConfigError(
                f"cache_partition sizes sum to {sum(budgets)} {what} but the cache is {total} {what} ({request})"
            )
        part_of_layer, label = tuple(range(L)), "list"
    if not unit_is_bytes and label == GLOBAL:
        budgets = [min(budgets[0], L * E)]  # more slots than keys change nothing

    if pinned is None:
        pins: tuple[int, ...] = ()
    elif isinstance(pinned, (bool, np.bool_)):
        raise ConfigError(f"pinned must be a count or a list of keys, got {pinned!r}")
    elif isinstance(pinned, (int, np.integer)):
        if pinned < 0:
            raise ConfigError(f"pinned must be a count >= 0 or a list of keys, got {pinned!r}")
        if isinstance(pin_profile, bool) or not isinstance(pin_profile, (int, float)) or not 0 < pin_profile <= 1:
            raise ConfigError(f"pin_profile must be a fraction in (0, 1], got {pin_profile!r}")
        pins = pinned_by_count(trace, int(pinned), float(pin_profile))
    else:
        try:
            keys = [int(k) for k in pinned]
            ok = all(not isinstance(k, bool) and int(k) == k for k in pinned)
        except (TypeError, ValueError):
            raise ConfigError(f"pinned must be a count or a list of keys (layer * E + expert), got {pinned!r}") from None
        if not ok or any(k < 0 or k >= L * E for k in keys):
            raise ConfigError(f"pinned keys must be integers in [0, {L * E}) (layer * E + expert), got {list(pinned)!r}")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"pinned lists a key twice: {list(pinned)!r}")
        pins = tuple(sorted(keys))

    layout = CacheLayout(label, tuple(part_of_layer), tuple(budgets), unit_is_bytes, sizes, E, pins)
    part_of_layer_a, part_off, budget, unit, key_bytes, pinned_a = layout.arrays()
    pinned_units = np.zeros(len(budgets), np.int64)
    for k in pins:
        pinned_units[part_of_layer_a[k // E]] += unit[k // E]
    for q in range(len(budgets)):
        if pinned_units[q] > budget[q]:
            where = "the cache" if label == GLOBAL else f"layer {q}'s partition"
            raise ConfigError(
                f"the pinned keys take {int(pinned_units[q])} {what} but {where} holds {int(budget[q])} {what}"
            )
    if not check_working_set:
        return layout
    p, need = _worst_position(sched.r_ptr, sched.r_experts, L, E, part_of_layer_a, budget, unit, pinned_a, pinned_units)
    if p >= 0:
        step, layer = divmod(int(p), L)
        q = part_of_layer_a[layer]
        where = f"a cache of {int(budget[q])} {what} ({request})" if label == GLOBAL else (
            f"layer {layer}'s partition of {int(budget[q])} {what} ({request}, {label})")
        raise ConfigError(
            f"{where} is smaller than the working set: step {step}, layer {layer} needs {int(need)} {what} at once"
            + (" with the pinned keys" if pins else "")
        )
    return layout
