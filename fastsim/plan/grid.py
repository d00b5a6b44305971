"""The planner's grid: which strategies, evictions, partitions and cache sizes it replays.

The default grid is small on purpose (a 20k-token trace plans in well under a minute once the
entry points are compiled): on-demand, top-k at one and two times the model's routing top-k, and
cross-layer, all implementable without knowing the future; LRU and MoE-Infinity's
activation-aware eviction (``lfu`` forgets a key's count on eviction, so where reuse distances
exceed the cache every key ties at one access and it evicts as LRU does); a global and a
per-layer cache; eight cache sizes from the working set up to the largest cache the GPU holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..eviction import get_eviction
from ..strategies import get_strategy

__all__ = [
    "StrategyChoice", "Grid", "parse_strategy", "default_strategies", "cache_ladder", "gpu_slots", "build_grid",
    "DEFAULT_EVICTIONS", "DEFAULT_PARTITIONS", "DEFAULT_SIZES",
]

DEFAULT_EVICTIONS = ("lru", "activation-aware")
DEFAULT_PARTITIONS = ("global", "per-layer")
DEFAULT_SIZES = 8
PARTITIONS = ("global", "per-layer")
GB = 1e9


@dataclass(frozen=True)
class StrategyChoice:
    """One strategy with fixed parameters; ``label`` names it in the page (``top-k k=4``)."""

    name: str
    params: tuple = ()

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return self.name + " " + " ".join(f"{k}={_num(v)}" for k, v in self.params)


def _num(v):
    return int(v) if float(v).is_integer() else v


def parse_strategy(text: str) -> StrategyChoice:
    """``NAME`` or ``NAME:P=V:P=V`` (``top-k:k=4:window=5``), checked against the registry."""
    name, *pairs = text.strip().split(":")
    defn = get_strategy(name)  # an unknown name raises a ConfigError naming the choices
    known = {p.name for p in defn.params}
    params = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ConfigError(
                f"strategy {text!r}: expected NAME:PARAM=VALUE with PARAM one of {sorted(known) or 'none'}, "
                f"got {pair!r}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"strategy {text!r}: {key} needs a number, got {value!r}") from None
        params.append((key, int(number) if number.is_integer() else number))
    defn.resolve(dict(params))  # range checks, with the strategy's own messages
    return StrategyChoice(defn.name, tuple(params))


def default_strategies(top_k: int, num_experts: int) -> list[StrategyChoice]:
    """On-demand, top-k at ``top_k`` and ``2 * top_k`` experts per layer (capped at the layer's
    experts: a larger k only spends the link on experts that are not needed), and cross-layer."""
    ks = sorted({min(top_k, num_experts), min(2 * top_k, num_experts)})
    return [StrategyChoice("on-demand"), *(StrategyChoice("top-k", (("k", k),)) for k in ks),
            StrategyChoice("cross-layer")]


def check_evictions(names) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in names))
    if not names:
        raise ConfigError("evictions: give at least one eviction policy")
    for n in names:
        get_eviction(n)
    return names


def check_partitions(names) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in names))
    if not names:
        raise ConfigError("partitions: give at least one of 'global' and 'per-layer'")
    for n in names:
        if n not in PARTITIONS:
            raise ConfigError(f"partitions: expected 'global' or 'per-layer', got {n!r}")
    return names


def gpu_slots(model, hardware, batch_size: int, context_tokens: int) -> int:
    """Experts the GPU holds next to the dense weights, the KV cache and the 2 GiB reserve
    (``cache_bytes="auto"``'s budget); all of GPU memory where the profile lacks those figures."""
    from ..timeline.budget import auto_cache_bytes

    if model.dense_bytes_total is None or model.kv_bytes_per_token is None:
        return hardware.memory_bytes // model.expert_bytes
    try:
        return auto_cache_bytes(model, hardware, batch_size, context_tokens) // model.expert_bytes
    except ConfigError as exc:
        raise ConfigError(f"{hardware.name!r} has no room for a cache of {model.name!r}'s experts: {exc}") from None


def cache_ladder(low: int, high: int, count: int, also: tuple = ()) -> list[int]:
    """About ``count`` cache sizes in slots, evenly spaced from ``low`` to ``high`` inclusive, with
    ``also`` (the per-layer cache's smallest size) added where it falls inside."""
    if count < 1:
        raise ConfigError(f"sizes must be at least 1, got {count}")
    points = {int(round(x)) for x in np.linspace(low, high, count)} if count > 1 else {high}
    points.update(a for a in also if low <= a <= high)
    return sorted(points)


@dataclass
class Grid:
    """What the planner replays; ``sizes`` in slots, each ``expert_bytes`` bytes."""

    strategies: list
    evictions: tuple
    partitions: tuple
    sizes: list
    expert_bytes: int
    batch_size: int
    gpu_slots: int
    working_set: int
    per_layer_min: int
    notes: list = field(default_factory=list)

    def gb(self, slots: int) -> float:
        return slots * self.expert_bytes / GB

    def fits(self, partition: str, slots: int) -> bool:
        return slots >= (self.per_layer_min if partition == "per-layer" else self.working_set)

    def configs(self, model: str, hardware: str) -> list[dict]:
        """``fastsim.replay_many`` configurations, one per strategy x eviction x partition x size
        that can run (a per-layer cache below its layers' working sets cannot)."""
        out = []
        for s in self.strategies:
            for ev in self.evictions:
                for part in self.partitions:
                    for c in self.sizes:
                        if self.fits(part, c):
                            out.append(dict(strategy=s.name, params=dict(s.params), model=model, hardware=hardware,
                                            eviction=ev, cache_partition=part, cache_slots=c,
                                            batch_size=self.batch_size))
        return out


def _slots_from_gb(values, expert_bytes: int) -> list[int]:
    out = []
    for v in values:
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"cache_gb: sizes must be positive numbers of GB, got {v!r}")
        out.append(int(v * GB // expert_bytes))
    return out


def build_grid(trace, sched, model, hardware, *, strategies=None, evictions=None, partitions=None,
               cache_slots=None, cache_gb=None, sizes=DEFAULT_SIZES, batch_size=1) -> Grid:
    """The grid for ``trace`` (its schedule ``sched`` at ``batch_size``) on these profiles; every
    malformed choice raises one :class:`~fastsim.errors.ConfigError` naming it."""
    if not model.uniform_sizes:
        raise ConfigError(
            f"fastsim plan sizes caches in experts of one size, and model profile {model.name!r} has per-layer "
            "expert sizes: sweep byte budgets with fastsim sweep (cache_bytes) instead"
        )
    L, E = trace.num_layers, trace.num_experts
    if strategies is None:
        chosen = default_strategies(trace.top_k, E)
    else:
        chosen = [s if isinstance(s, StrategyChoice) else parse_strategy(s) for s in strategies]
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise ConfigError("strategies: give at least one strategy")
    evs = check_evictions(DEFAULT_EVICTIONS if evictions is None else evictions)
    parts = check_partitions(DEFAULT_PARTITIONS if partitions is None else partitions)
    widths = np.diff(sched.r_ptr)
    working_set = int(widths.max()) if widths.size else 0
    per_layer_min = L * working_set  # an even split gives each layer at least its working set
    context = int(trace.sequence_lengths.max()) if trace.sequence_lengths.shape[0] else 0
    room = min(L * E, gpu_slots(model, hardware, batch_size, context))
    notes = []
    if cache_slots is not None and cache_gb is not None:
        raise ConfigError("give cache_slots or cache_gb, not both")
    if cache_slots is not None or cache_gb is not None:
        ladder = list(cache_slots) if cache_slots is not None else _slots_from_gb(cache_gb, model.expert_bytes)
        for c in ladder:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
                raise ConfigError(f"cache sizes must be positive numbers of experts, got {c!r}")
        ladder = sorted({int(c) for c in ladder if c >= working_set})
        if not ladder:
            raise ConfigError(f"every cache size asked for is below the working set of {working_set} experts")
    else:
        if room < working_set:
            raise ConfigError(
                f"{hardware.name!r} holds {room} of {model.name!r}'s experts next to its dense weights and KV cache, "
                f"fewer than the working set of {working_set}"
            )
        ladder = cache_ladder(working_set, room, sizes, also=(per_layer_min,))
        if room < L * E:
            notes.append(f"the largest cache is what {hardware.name} holds ({room} of {L * E} experts) next to "
                         "the dense weights, the KV cache and a 2 GiB reserve")
    if "per-layer" in parts and ladder[-1] < per_layer_min:
        notes.append(f"no per-layer cache fits: one needs {per_layer_min} experts ({working_set} per layer)")
    return Grid(chosen, evs, parts, ladder, model.expert_bytes, batch_size, room, working_set, per_layer_min, notes)
