"""Reference timeline (SPEC section 3) in plain Python: dicts, lists and linear scans.

Slow on purpose and written to follow the SPEC's text line by line; the kernel in
``fastsim.timeline.core`` must agree with it exactly.
"""
from __future__ import annotations

import numpy as np

from ..replay import ReplayResult, metrics_from_counters, resolve_config
from ..timeline import core
from ..timeline.durations import to_ns, load_seconds, expert_seconds, dense_seconds
from .._version import __version__

__all__ = ["ReferenceSchedule", "replay_reference"]


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
) -> ReplayResult:
    """The same contract as :func:`fastsim.replay`, computed by the reference implementation."""
    cfg, _ = resolve_config(
        trace, strategy, model, hardware, cache_slots, cache_bytes, eviction, batch_size, max_prefetch_loads, params
    )
    if cfg.strategy.reference is None:
        raise NotImplementedError(f"strategy {cfg.strategy.name!r} has no reference implementation")
    sched = ReferenceSchedule(
        trace.experts.tolist(), trace.sequence_lengths, trace.num_layers, trace.num_experts, cfg.batch_size
    )
    L, E = trace.num_layers, trace.num_experts
    strat = cfg.strategy.reference(L, E, trace.top_k, sched, **cfg.param_dict())
    C = cfg.cache_slots
    belady = cfg.eviction == "belady"
    cap = cfg.max_prefetch_loads
    load_ns = to_ns(load_seconds(cfg.model, cfg.hardware))

    resident: dict[int, int] = {}  # key -> ready_at
    recency: dict[int, int] = {}
    prefetched_unused: set[int] = set()
    tick = 0
    now = 0
    link_free = 0
    hits = late = misses = pf_loads = useful = wasted = stall = 0
    resident_sum = peak = 0
    step_time, step_stall, outcomes, wanted_lists = [], [], [], []

    def choose(cands, s, l):
        if belady:
            return max(cands, key=lambda k: (sched.next_use(k, s, l), -k))
        return min(cands, key=lambda k: recency[k])

    def evict(k):
        nonlocal wasted
        del resident[k]
        if k in prefetched_unused:
            prefetched_unused.discard(k)
            wasted += 1

    def load(k, g):
        nonlocal link_free
        start = max(g, link_free)
        resident[k] = start + load_ns
        link_free = resident[k]

    for s in range(sched.num_steps):
        begin = now
        this_stall = 0
        for l in range(L):
            g = now
            R, n = sched.R(s, l)
            keys = sched.keys(s, l)
            # demand
            for key in keys:
                tick += 1
                if key in resident:
                    if resident[key] <= g:
                        hits += 1
                        outcomes.append(0)
                    else:
                        late += 1
                        outcomes.append(1)
                    if key in prefetched_unused:
                        prefetched_unused.discard(key)
                        useful += 1
                else:
                    misses += 1
                    outcomes.append(2)
                    if len(resident) >= C:
                        cands = [k for k in resident if k not in keys and resident[k] <= g]
                        if not cands:
                            cands = [k for k in resident if k not in keys]
                        evict(choose(cands, s, l))
                    load(key, g)
                recency[key] = tick
            # prefetch
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
                    evict(victim)
                load(key, g)
                prefetched_unused.add(key)
                pf_loads += 1
                loads += 1
                processed.append(key)
            for key in reversed(processed):
                tick += 1
                if key in resident:
                    recency[key] = tick
            # compute
            start = max([g] + [resident[k] for k in keys])
            stall += start - g
            this_stall += start - g
            active = len(sched.steps[s])
            now = start + to_ns(dense_seconds(cfg.model, cfg.hardware, active))
            for c in n:
                now += to_ns(expert_seconds(cfg.model, cfg.hardware, c))
            resident_sum += len(resident)
            peak = max(peak, len(resident))
        step_time.append(now - begin)
        step_stall.append(this_stall)
    wasted += len(prefetched_unused)

    counters = [0] * core.N_SIZE
    counters[core.N_HITS] = hits
    counters[core.N_LATE] = late
    counters[core.N_MISSES] = misses
    counters[core.N_PREFETCH_LOADS] = pf_loads
    counters[core.N_PREFETCH_USEFUL] = useful
    counters[core.N_PREFETCH_WASTED] = wasted
    counters[core.N_STALL_NS] = stall
    counters[core.N_TOTAL_NS] = now
    counters[core.N_RESIDENT_SUM] = resident_sum
    counters[core.N_PEAK_RESIDENT] = peak
    counters[core.N_SAMPLES] = sched.num_steps * L
    metrics = metrics_from_counters(counters, sched, trace.num_tokens, cfg.model.expert_bytes)
    result = ReplayResult(
        metrics=metrics,
        config={**cfg.describe(), "trace": trace.fingerprint(), "fastsim_version": __version__},
    )
    if per_step:
        result.step_time_s = np.asarray(step_time, np.float64) / 1e9
        result.step_stall_s = np.asarray(step_stall, np.float64) / 1e9
    if record:
        result.outcomes = np.asarray(outcomes, np.int8)
        result.wanted = [np.asarray(w, np.int64) for w in wanted_lists]
    return result
