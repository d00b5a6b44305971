"""Reference timeline (SPEC section 3) in plain Python: dicts, lists and linear scans.

Slow on purpose and written to follow the SPEC's text line by line; the kernel in
``fastsim.timeline.core`` must agree with it exactly. It shares no code with the kernel side
(``fastsim.timeline``, ``fastsim.replay``, ``fastsim.strategies``): it resolves the cache size,
computes its own nanoseconds from the profile fields (SPEC section 2), writes an event record as
it replays, and derives every metric by counting that record, so a fault in any of those on the
kernel side shows up as a disagreement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..profiles import hardware_profile, model_profile
from .._version import __version__
from .durations import dense_ns, expert_ns, load_ns
from .registry import reference_strategy

__all__ = ["ReferenceSchedule", "ReferenceResult", "replay_reference", "metrics_from_events"]

WORKING_SET = "working-set"


class ReferenceSchedule:
    """Continuous batching and the per-``(step, layer)`` demand sets, in plain Python."""

    def __init__(self, experts, sequence_lengths, num_layers: int, num_experts: int, batch_size: int):
        lengths = [int(x) for x in sequence_lengths]
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        self.num_layers = num_layers
        self.num_experts = num_experts
        self.steps = []  # steps[s] = list of trace rows active at step s, in slot order
        slots = [None] * batch_size  # (sequence, position) or None
        waiting = list(range(len(lengths)))
        while True:
            for b in range(batch_size):
                if slots[b] is None:
                    while waiting and lengths[waiting[0]] == 0:
                        waiting.pop(0)
                    if waiting:
                        slots[b] = (waiting.pop(0), 0)
            if all(x is None for x in slots):
                break
            rows = []
            for b in range(batch_size):
                if slots[b] is not None:
                    q, pos = slots[b]
                    rows.append(starts[q] + pos)
                    slots[b] = (q, pos + 1) if pos + 1 < lengths[q] else None
            self.steps.append(rows)
        self.sets = []  # sets[s][l] = (sorted experts, counts)
        for rows in self.steps:
            per_layer = []
            for l in range(self.num_layers):
                count: dict[int, int] = {}
                for t in rows:
                    for e in experts[t][l]:
                        e = int(e)
                        if e >= 0:
                            count[e] = count.get(e, 0) + 1
                R = sorted(count)
                per_layer.append((R, [count[e] for e in R]))
            self.sets.append(per_layer)

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def working_set(self) -> int:
        """The largest ``|R|`` of the replay (0 when there is no step)."""
        return max((len(R) for per_layer in self.sets for R, _ in per_layer), default=0)

    def R(self, step: int, layer: int):
        return self.sets[step][layer]

    def keys(self, step: int, layer: int) -> list[int]:
        return [layer * self.num_experts + e for e in self.sets[step][layer][0]]

    def next_use(self, key: int, step: int, layer: int) -> float:
        """Position of the first demand of ``key`` after ``(step, layer)``; infinity if none."""
        key_layer, e = divmod(key, self.num_experts)
        s = step if key_layer > layer else step + 1
        while s < len(self.sets):
            if e in self.sets[s][key_layer][0]:
                return s * self.num_layers + key_layer
            s += 1
        return float("inf")


@dataclass
class ReferenceResult:
    """What the reference replay measured, with the attributes of ``fastsim.ReplayResult``."""

    metrics: dict[str, float]
    config: dict[str, Any]
    events: list = field(default_factory=list, repr=False)
    step_time_s: np.ndarray | None = None
    step_stall_s: np.ndarray | None = None
    outcomes: np.ndarray | None = None
    wanted: list | None = field(default=None, repr=False)


def _cache_size(cache_slots, cache_bytes, strategy_name, expert_bytes, working_set) -> tuple[int, str]:
    if cache_slots is None and cache_bytes is None and strategy_name == "on-demand":
        cache_slots = WORKING_SET  # the seed's baseline caches only the working set
    if (cache_slots is None) == (cache_bytes is None):
        raise ValueError("give exactly one of cache_slots and cache_bytes")
    if cache_slots == WORKING_SET:
        return working_set, WORKING_SET
    if cache_slots is not None:
        return int(cache_slots), f"{int(cache_slots)} slots"
    return int(cache_bytes) // expert_bytes, f"{int(cache_bytes)} bytes"


# Event kinds of the record (one tuple per event, in the order they happen).
ACCESS = "access"  # (ACCESS, step, layer, key, outcome) with outcome 0 hit, 1 late, 2 miss
LOAD = "load"  # (LOAD, step, layer, key, kind, start, ready_at) with kind "demand" or "prefetch"
EVICT = "evict"  # (EVICT, step, layer, key)
COMPUTE = "compute"  # (COMPUTE, step, layer, g, start, end)
OCCUPANCY = "occupancy"  # (OCCUPANCY, step, layer, resident keys)


def replay_reference(
    trace,
    strategy: str = "on-demand",
    model=None,
    hardware="rtx3090",
    cache_slots=None,
    cache_bytes=None,
    eviction: str = "lru",
    batch_size: int = 1,
    *,
    max_prefetch_loads=None,
    per_step: bool = False,
    record: bool = False,
    **params,
) -> ReferenceResult:
    """The same contract as :func:`fastsim.replay`, computed by the reference implementation.

    ``strategy`` is a built-in name, a name registered with a reference, or a reference class.
    Inputs are assumed valid (the kernel side validates them); an impossible cache raises
    ``ValueError``.
    """
    name, factory = reference_strategy(strategy)
    mprof = model_profile(trace.model if model is None else model)
    hprof = hardware_profile(hardware)
    if eviction not in ("lru", "belady"):
        raise ValueError(f"the reference knows evictions lru and belady, not {eviction!r}")
    B = int(batch_size)
    sched = ReferenceSchedule(trace.experts.tolist(), trace.sequence_lengths, trace.num_layers, trace.num_experts, B)
    L, E = trace.num_layers, trace.num_experts
    C, request = _cache_size(cache_slots, cache_bytes, name, mprof.expert_bytes, sched.working_set)
    if C < sched.working_set:
        raise ValueError(f"a cache of {C} keys is below the working set {sched.working_set}")
    strat = factory(L, E, trace.top_k, sched, **params)
    belady = eviction == "belady"
    cap = -1 if max_prefetch_loads is None else int(max_prefetch_loads)
    t_load = load_ns(mprof, hprof)

    resident: dict[int, int] = {}  # key -> ready_at
    recency: dict[int, int] = {}
    tick = 0
    now = 0
    link_free = 0
    events: list = []
    wanted_lists = []

    def choose(cands, s, l):
        if belady:
            return max(cands, key=lambda k: (sched.next_use(k, s, l), -k))
        return min(cands, key=lambda k: recency[k])

    def evict(k, s, l):
        del resident[k]
        events.append((EVICT, s, l, k))

    def load(k, g, kind, s, l):
        nonlocal link_free
        start = max(g, link_free)
        resident[k] = start + t_load
        link_free = resident[k]
        events.append((LOAD, s, l, k, kind, start, resident[k]))

    for s in range(sched.num_steps):
        active = len(sched.steps[s])
        for l in range(L):
            g = now
            R, n = sched.R(s, l)
            keys = sched.keys(s, l)
            # 2. demand
            for key in keys:
                tick += 1
                if key in resident:
                    events.append((ACCESS, s, l, key, 0 if resident[key] <= g else 1))
                else:
                    events.append((ACCESS, s, l, key, 2))
                    if len(resident) >= C:
                        cands = [k for k in resident if k not in keys and resident[k] <= g]
                        if not cands:
                            cands = [k for k in resident if k not in keys]
                        evict(choose(cands, s, l), s, l)
                    load(key, g, "demand", s, l)
                recency[key] = tick
            # 3. prefetch
            wanted = [int(k) for k in strat.observe(s, l, list(R), list(n))]
            wanted_lists.append(wanted)
            processed: list[int] = []
            loads = 0
            for key in wanted:
                if key in resident:
                    processed.append(key)
                    continue
                if cap >= 0 and loads >= cap:
                    break
                if len(resident) >= C:
                    cands = [k for k in resident if k not in keys and k not in processed and resident[k] <= g]
                    if not cands:
                        break
                    victim = choose(cands, s, l)
                    if belady and sched.next_use(victim, s, l) < sched.next_use(key, s, l):
                        processed.append(key)
                        continue
                    evict(victim, s, l)
                load(key, g, "prefetch", s, l)
                loads += 1
                processed.append(key)
            for key in reversed(processed):
                tick += 1
                if key in resident:
                    recency[key] = tick
            # 4. compute
            start = max([g] + [resident[k] for k in keys])
            end = start + dense_ns(mprof, hprof, active)
            for c in n:
                end += expert_ns(mprof, hprof, c)
            events.append((COMPUTE, s, l, g, start, end))
            now = end
            # 5. occupancy
            events.append((OCCUPANCY, s, l, len(resident)))

    metrics, step_time, step_stall = metrics_from_events(events, sched.num_steps, trace.num_tokens, mprof.expert_bytes)
    config = {
        "strategy": name, "params": dict(params), "model": mprof.name, "hardware": hprof.name,
        "eviction": eviction, "batch_size": B, "cache_slots": C, "cache_request": request,
        "max_prefetch_loads": cap, "implementation": "reference", "trace": trace.fingerprint(),
        "fastsim_version": __version__,
    }
    result = ReferenceResult(metrics=metrics, config=config, events=events)
    if per_step:
        result.step_time_s = np.asarray(step_time, np.float64) / 1e9
        result.step_stall_s = np.asarray(step_stall, np.float64) / 1e9
    if record:
        result.outcomes = np.asarray([e[4] for e in events if e[0] == ACCESS], np.int8)
        result.wanted = [np.asarray(w, np.int64) for w in wanted_lists]
    return result


def metrics_from_events(events, steps: int, tokens: int, expert_bytes: int):
    """Every SPEC section 3 metric counted from the event record, plus per-step time and stall
    (integer nanoseconds)."""
    outcomes = [e[4] for e in events if e[0] == ACCESS]
    demand_loads = sum(1 for e in events if e[0] == LOAD and e[4] == "demand")
    prefetch_loads = sum(1 for e in events if e[0] == LOAD and e[4] == "prefetch")
    # a prefetched key is useful when accessed before it leaves, wasted when it leaves unused
    unused: set[int] = set()
    useful = wasted = 0
    for e in events:
        if e[0] == LOAD and e[4] == "prefetch":
            unused.add(e[3])
        elif e[0] == ACCESS and e[3] in unused:
            unused.discard(e[3])
            useful += 1
        elif e[0] == EVICT and e[3] in unused:
            unused.discard(e[3])
            wasted += 1
    wasted += len(unused)
    step_time = [0] * steps
    step_stall = [0] * steps
    total = 0
    for e in events:
        if e[0] == COMPUTE:
            _, s, _, g, start, end = e
            step_stall[s] += start - g
            step_time[s] += end - g
            total = end
    samples = [e[3] for e in events if e[0] == OCCUPANCY]
    accesses = len(outcomes)
    hits = outcomes.count(0)
    total_s = total / 1e9
    peak = max(samples, default=0)
    metrics = {
        "accesses": accesses,
        "hits": hits,
        "late": outcomes.count(1),
        "misses": outcomes.count(2),
        "hit_rate": hits / accesses if accesses else 0.0,
        "demand_loads": demand_loads,
        "prefetch_loads": prefetch_loads,
        "prefetch_useful": useful,
        "prefetch_wasted": wasted,
        "h2d_bytes": (demand_loads + prefetch_loads) * expert_bytes,
        "stall_s": sum(step_stall) / 1e9,
        "total_time_s": total_s,
        "tokens": tokens,
        "steps": steps,
        "tokens_per_s": tokens / total_s if total_s > 0 else 0.0,
        "mean_resident": sum(samples) / len(samples) if samples else 0.0,
        "peak_resident": peak,
        "peak_cache_bytes": peak * expert_bytes,
    }
    return metrics, step_time, step_stall
