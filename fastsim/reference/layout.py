"""The reference's cache layout (SPEC section 6): units, partitions, budgets, pins, key sizes.

Plain Python, written from ``docs/model.md`` "Cache organisation". Nothing here is shared with
the kernel side. A key ``k = layer * E + expert`` has a *size* in the cache's unit (one slot, or
its layer's bytes) and a size in bytes (what its load moves and what ``peak_cache_bytes`` sums).
"""
from __future__ import annotations

import math
import numbers
from types import SimpleNamespace

from .durations import expert_ns, load_ns

__all__ = ["WORKING_SET", "Layout", "expert_sizes", "resolve_layout", "pinned_keys", "check_room", "LayerDurations"]

WORKING_SET = "working-set"


def expert_sizes(model, num_layers: int) -> list[int]:
    """Each layer's ``expert_bytes``: the profile's list, or its one number repeated."""
    b = model.expert_bytes
    sizes = [int(x) for x in b] if isinstance(b, (list, tuple)) else [int(b)] * num_layers
    if len(sizes) != num_layers:
        raise ValueError(f"expert_bytes lists {len(sizes)} sizes for {num_layers} layers")
    return sizes


class Layout:
    """Where every key lives and how much room it takes.

    ``unit`` is ``"slots"`` or ``"bytes"``; ``capacity`` the cache in that unit; ``part[l]`` the
    partition of layer ``l``; ``budgets[q]`` partition ``q``'s room; ``unit_size[l]`` and
    ``byte_size[l]`` the size of one key of layer ``l``; ``pinned`` the pinned keys.
    """

    def __init__(self, num_experts, unit, capacity, request, part, budgets, unit_size, byte_size, pinned):
        self.num_experts = num_experts
        self.unit, self.capacity, self.request = unit, capacity, request
        self.part, self.budgets = part, budgets
        self.unit_size, self.byte_size = unit_size, byte_size
        self.pinned = set(pinned)
        self.pinned_list = sorted(self.pinned)

    def layer(self, key: int) -> int:
        return key // self.num_experts

    def partition(self, key: int) -> int:
        return self.part[self.layer(key)]

    def size(self, key: int) -> int:
        """Room the key takes, in the cache's unit."""
        return self.unit_size[self.layer(key)]

    def nbytes(self, key: int) -> int:
        return self.byte_size[self.layer(key)]

    def used(self, resident, q: int) -> int:
        """Sum of the sizes of the keys resident in partition ``q`` (in flight and pinned included)."""
        return sum(self.size(k) for k in resident if self.partition(k) == q)


def _cache(cache_slots, cache_bytes, strategy_name, sizes, working_set):
    """``(C, unit, request)``: the cache in its unit (SPEC sections 3 and 6)."""
    if cache_slots is None and cache_bytes is None and strategy_name == "on-demand":
        cache_slots = WORKING_SET  # the seed's baseline caches only the working set
    if (cache_slots is None) == (cache_bytes is None):
        raise ValueError("give exactly one of cache_slots and cache_bytes")
    if cache_slots == WORKING_SET:
        return working_set, "slots", WORKING_SET
    if cache_slots is not None:
        return int(cache_slots), "slots", f"{int(cache_slots)} slots"
    nbytes = int(cache_bytes)
    if len(set(sizes)) <= 1:  # one size: exactly the slot model
        return nbytes // sizes[0], "slots", f"{nbytes} bytes"
    return nbytes, "bytes", f"{nbytes} bytes"


def _partition(cache_partition, C: int, L: int):
    """``(part, budgets)``: the partition of each layer and each partition's budget."""
    if isinstance(cache_partition, str):
        if cache_partition == "global":
            return [0] * L, [C]
        if cache_partition == "per-layer":
            return list(range(L)), [C // L + (1 if l < C % L else 0) for l in range(L)]
        raise ValueError(f"cache_partition must be 'global', 'per-layer' or a list of {L} sizes, got {cache_partition!r}")
    sizes = list(cache_partition)
    if len(sizes) != L:
        raise ValueError(f"cache_partition lists {len(sizes)} sizes for {L} layers")
    if any(isinstance(x, bool) or int(x) != x or x < 0 for x in sizes):
        raise ValueError(f"cache_partition sizes must be integers >= 0, got {sizes}")
    sizes = [int(x) for x in sizes]
    if sum(sizes) != C:
        raise ValueError(f"cache_partition sizes sum to {sum(sizes)}, not to the cache's {C}")
    return list(range(L)), sizes


def pinned_keys(pinned, pin_profile, experts, num_layers: int, num_experts: int) -> list[int]:
    """The pinned keys, ascending. A count ``N`` pins the ``N`` keys demanded by the most tokens
    over the first ``ceil(pin_profile * tokens)`` tokens in trace order (a key counts once per
    token routed to it), ties to the lowest key; keys never demanded there are not pinned."""
    if pinned is None:
        return []
    num_keys = num_layers * num_experts
    if isinstance(pinned, bool):
        raise ValueError(f"pinned must be None, a count or a list of keys, got {pinned!r}")
    if isinstance(pinned, numbers.Integral):
        n = int(pinned)
        if n < 0:
            raise ValueError(f"pinned must be a count >= 0, got {n}")
        p = float(pin_profile)
        if not (0.0 < p <= 1.0):
            raise ValueError(f"pin_profile must be a fraction in (0, 1], got {pin_profile!r}")
        prefix = math.ceil(p * len(experts))
        count: dict[int, int] = {}
        for t in range(prefix):
            for l in range(num_layers):
                for e in set(int(x) for x in experts[t][l]):
                    if e >= 0:
                        count[l * num_experts + e] = count.get(l * num_experts + e, 0) + 1
        ranked = sorted(count, key=lambda k: (-count[k], k))
        return sorted(ranked[:n])
    keys = [int(k) for k in pinned]
    for k in keys:
        if not 0 <= k < num_keys:
            raise ValueError(f"pinned key {k} is outside [0, {num_keys}) (key = layer * E + expert)")
    return sorted(set(keys))


def resolve_layout(cache_slots, cache_bytes, strategy_name, model, schedule, cache_partition, pinned, pin_profile, experts,
                   check_working_set: bool = True) -> Layout:
    """Units, budgets and pins of one replay; raises ``ValueError`` on a layout that cannot hold
    the pins or (unless ``check_working_set`` is false: ``overflow="exceed"``) some
    ``(step, layer)``'s demand."""
    L, E = schedule.num_layers, schedule.num_experts
    sizes = expert_sizes(model, L)
    C, unit, request = _cache(cache_slots, cache_bytes, strategy_name, sizes, schedule.working_set)
    if request == WORKING_SET and cache_partition == "per-layer":
        # each layer's own working set: its largest |R| over the replay
        budgets = [max((len(schedule.R(s, l)[0]) for s in range(schedule.num_steps)), default=0) for l in range(L)]
        part, C = list(range(L)), sum(budgets)
    else:
        part, budgets = _partition(cache_partition, C, L)
    unit_size = [1] * L if unit == "slots" else list(sizes)
    layout = Layout(E, unit, C, request, part, budgets, unit_size, sizes, pinned_keys(pinned, pin_profile, experts, L, E))
    for q, budget in enumerate(budgets):
        room = sum(layout.size(k) for k in layout.pinned if layout.partition(k) == q)
        if room > budget:
            raise ValueError(f"pinned keys take {room} {unit} of partition {q}, whose budget is {budget}")
    if check_working_set:
        check_room(schedule, layout)
    return layout


def check_room(schedule, layout: Layout) -> None:
    """Every ``(step, layer)``: the sizes of ``R``'s non-pinned keys plus its partition's pinned
    keys must fit the partition's budget (the working-set check, per partition)."""
    pinned_room = [0] * len(layout.budgets)
    for k in layout.pinned:
        pinned_room[layout.partition(k)] += layout.size(k)
    for s in range(schedule.num_steps):
        for l in range(schedule.num_layers):
            q = layout.part[l]
            need = sum(layout.size(k) for k in schedule.keys(s, l) if k not in layout.pinned) + pinned_room[q]
            if need > layout.budgets[q]:
                raise ValueError(
                    f"a cache of {layout.budgets[q]} {layout.unit} for partition {q} is below the working set: "
                    f"step {s}, layer {l} needs {need} {layout.unit}"
                )


class LayerDurations:
    """``load_ns`` and ``expert_ns(n)`` for each layer's own expert size, ``dense_ns`` as before,
    computed by the reference's own duration formulas."""

    def __init__(self, model, hardware, sizes):
        self.model, self.hardware = model, hardware
        self.per_layer = [
            SimpleNamespace(
                expert_bytes=size, expert_flops_per_token=model.expert_flops_per_token,
                dense_bytes_per_layer=model.dense_bytes_per_layer, dense_flops_per_token=model.dense_flops_per_token,
            )
            for size in sizes
        ]
        self.loads = [load_ns(m, hardware) for m in self.per_layer]

    def load(self, layer: int) -> int:
        return self.loads[layer]

    def expert(self, layer: int, n: int) -> int:
        return expert_ns(self.per_layer[layer], self.hardware, n)
