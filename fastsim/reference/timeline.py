"""Reference timeline (SPEC sections 3 and 6) in plain Python: dicts, lists and linear scans.

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
from .durations import dense_ns
from .eviction import EvictionContext, reference_eviction
from .layout import WORKING_SET, LayerDurations, resolve_layout
from .registry import reference_strategy
from .residency import EVICT, Residency

__all__ = ["ReferenceSchedule", "ReferenceResult", "replay_reference", "metrics_from_events"]


class ReferenceSchedule:
    """Continuous batching and the per-``(step, layer)`` demand sets, in plain Python.

    With ``prompt_lengths`` (one per sequence; prefill, docs/model.md "Prefill") a slot that
    takes a sequence with a prompt of ``p >= 1`` tokens runs all ``p`` in that step, then one
    decode token per step; without it every token is a decode token. With ``batching=
    "recorded"`` (docs/model.md "Recorded batching") each non-empty sequence is one step of all
    its tokens, its first ``p`` of them prompt tokens, and ``batch_size`` is not read."""

    def __init__(self, experts, sequence_lengths, num_layers: int, num_experts: int, batch_size: int,
                 prompt_lengths=None, batching: str = "continuous"):
        lengths = [int(x) for x in sequence_lengths]
        prompts = [0] * len(lengths) if prompt_lengths is None else [int(p) for p in prompt_lengths]
        for q, (p, n) in enumerate(zip(prompts, lengths)):
            if not 0 <= p <= n:
                raise ValueError(f"prompt_tokens of sequence {q} is {p}; expected 0..{n} (its length)")
        if batching not in ("continuous", "recorded"):
            raise ValueError(f"batching must be 'continuous' or 'recorded', got {batching!r}")
        starts = [0]
        for n in lengths:
            starts.append(starts[-1] + n)
        self.num_layers = num_layers
        self.num_experts = num_experts
        self.steps = []  # steps[s] = list of trace rows active at step s, in slot order
        self.step_sequences = []  # step_sequences[s][i] = the sequence of row steps[s][i]
        self.finished = []  # finished[s] = sequences whose last token ran at step s
        self.prompt_rows = []  # prompt_rows[s] = the rows of step s that are prompt tokens
        self.prefilled = []  # prefilled[s] = sequences whose prompt ran at step s
        self.decode_tokens = []  # decode_tokens[s] = rows of step s that are decode tokens
        if batching == "recorded":
            self._recorded_passes(lengths, prompts, starts)
        else:
            self._slot_loop(lengths, prompts, starts, batch_size)
        self._experts = experts
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

    def _add_step(self, rows, seqs, done, prompt_rows, prefilled) -> None:
        self.steps.append(rows)
        self.step_sequences.append(seqs)
        self.finished.append(done)
        self.prompt_rows.append(prompt_rows)
        self.prefilled.append(prefilled)
        self.decode_tokens.append(len(rows) - len(prompt_rows))

    def _recorded_passes(self, lengths, prompts, starts) -> None:
        """One step per non-empty sequence (a recorded forward pass), every token at once."""
        for q, n in enumerate(lengths):
            if n == 0:
                continue  # a pass with no tokens runs no step
            rows = list(range(starts[q], starts[q] + n))
            prompt_rows = set(rows[: prompts[q]])
            self._add_step(rows, [q] * n, [q], prompt_rows, [q] if prompts[q] >= 1 else [])

    def _slot_loop(self, lengths, prompts, starts, batch_size) -> None:
        """SPEC section 3's continuous batching over ``batch_size`` slots."""
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
            rows, seqs, done, prompt_rows, prefilled = [], [], [], set(), []
            for b in range(batch_size):
                if slots[b] is not None:
                    q, pos = slots[b]
                    prefill = pos == 0 and prompts[q] >= 1
                    run = prompts[q] if prefill else 1  # the whole prompt in one step
                    for i in range(run):
                        rows.append(starts[q] + pos + i)
                        seqs.append(q)
                    if prefill:
                        prompt_rows.update(range(starts[q], starts[q] + run))
                        prefilled.append(q)
                    slots[b] = (q, pos + run) if pos + run < lengths[q] else None
                    if slots[b] is None:
                        done.append(q)
            self._add_step(rows, seqs, done, prompt_rows, prefilled)

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def working_set(self) -> int:
        """The largest ``|R|`` of the replay (0 when there is no step)."""
        return max((len(R) for per_layer in self.sets for R, _ in per_layer), default=0)

    def R(self, step: int, layer: int):
        return self.sets[step][layer]

    def prefill_experts(self, step: int, layer: int) -> set[int]:
        """The experts of ``R`` that at least one prompt token routes to (prefill accesses)."""
        return {int(e) for t in self.prompt_rows[step] for e in self._experts[t][layer] if int(e) >= 0}

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


# Event kinds of the record (one tuple per event, in the order they happen).
PIN = "pin"  # (PIN, key, nbytes): resident and settled from time 0, before any step
ACCESS = "access"  # (ACCESS, step, layer, key, outcome) with outcome 0 hit, 1 late, 2 miss
LOAD = "load"  # (LOAD, step, layer, key, kind, start, ready_at, nbytes) with kind "demand" or "prefetch"
# EVICT (EVICT, step, layer, key): see fastsim.reference.residency, which evicts
COMPUTE = "compute"  # (COMPUTE, step, layer, g, start, end)
OCCUPANCY = "occupancy"  # (OCCUPANCY, step, layer, resident keys)
# The execution path (SPEC section 7, fastsim.reference.execution) writes ACCESS with a sixth
# field, the phase ("prefill" or "decode"), and LOAD as (LOAD, step, layer, key, kind, transfer
# id, issue time, nbytes), the start coming later in a START event; and these kinds:
STEP = "step"  # (STEP, step, sequences whose prompt runs in it, decode tokens in it)
LAYER = "layer"  # (LAYER, step, layer, begin, g, end, busy) busy = dense + the GPU experts' compute
ZERO_COPY = "zero-copy"  # (ZERO_COPY, step, layer, key, transfer id, nbytes): a miss computed over the link
CPU = "cpu"  # (CPU, step, layer, key, start, end): a miss computed on the CPU
# START (the link starts a transfer), HOST_HIT and NVME_READ: see fastsim.reference.link


#: The SPEC section 7 options at their defaults (section 3's timeline), and as the config records them.
EXECUTION_DEFAULTS = dict(
    timeline="simple", link="fifo", max_inflight_prefetches=None, miss_execution="load",
    max_uploads_per_layer=None, overflow="error", prefill=False, reserve_bytes=None, context_tokens=None,
)
EXECUTION_CONFIG_DEFAULTS = dict(
    timeline="simple", link="fifo", max_inflight_prefetches=-1, miss_execution="load",
    max_uploads_per_layer=-1, overflow="error", prefill=False, cache_budget=None,
)


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
    eviction_params=None,
    cache_partition="global",
    pinned=None,
    pin_profile: float = 1.0,
    max_prefetch_loads=None,
    timeline: str = "simple",
    link: str = "fifo",
    max_inflight_prefetches=None,
    miss_execution: str = "load",
    max_uploads_per_layer=None,
    overflow: str = "error",
    prefill: bool = False,
    reserve_bytes=None,
    context_tokens=None,
    batching=None,
    per_step: bool = False,
    record: bool = False,
    **params,
) -> ReferenceResult:
    """The same contract as :func:`fastsim.replay`, computed by the reference implementation.

    ``strategy`` is a built-in name, a name registered with a reference, or a reference class;
    ``eviction`` likewise (:mod:`fastsim.reference.eviction`), with ``eviction_params`` its
    parameters. ``cache_partition`` is ``"global"``, ``"per-layer"`` or a list of ``L`` sizes in
    the cache's unit; ``pinned`` ``None``, a count or a list of keys, a count chosen over the
    first ``pin_profile`` of the trace's tokens (SPEC section 6, docs/model.md "Cache
    organisation"). ``batching`` is ``"continuous"`` or ``"recorded"`` (docs/model.md "Recorded
    batching"); ``None`` reads the trace's metadata (``batching = "recorded"``). Inputs are assumed valid (the kernel side validates them); an impossible
    layout, an unknown policy or a score-aware policy without scores raises ``ValueError``.

    The SPEC section 7 options (``timeline`` ... ``context_tokens``, ``cache_bytes="auto"``, a
    hardware profile with memory tiers) run :func:`fastsim.reference.execution.
    replay_execution_reference` whenever any of them is not at its default.
    """
    hprof = hardware_profile(hardware)
    execution = dict(
        timeline=timeline, link=link, max_inflight_prefetches=max_inflight_prefetches,
        miss_execution=miss_execution, max_uploads_per_layer=max_uploads_per_layer, overflow=overflow,
        prefill=prefill, reserve_bytes=reserve_bytes, context_tokens=context_tokens,
    )
    if (execution != EXECUTION_DEFAULTS or isinstance(cache_bytes, str)
            or getattr(hprof, "host_bytes", None) is not None):
        from .execution import replay_execution_reference

        return replay_execution_reference(
            trace, strategy, model, hprof, cache_slots, cache_bytes, eviction, batch_size,
            eviction_params=eviction_params, cache_partition=cache_partition, pinned=pinned,
            pin_profile=pin_profile, max_prefetch_loads=max_prefetch_loads, per_step=per_step, record=record,
            batching=batching, **execution, **params,
        )
    name, factory = reference_strategy(strategy)
    mprof = model_profile(trace.model if model is None else model)
    policy_name, policy_cls = reference_eviction(eviction)
    B = int(batch_size)
    batching = replay_batching(trace, batching, B, cache_bytes)
    experts = trace.experts.tolist()
    sched = ReferenceSchedule(experts, trace.sequence_lengths, trace.num_layers, trace.num_experts, B,
                              batching=batching)
    L, E = trace.num_layers, trace.num_experts
    layout = resolve_layout(cache_slots, cache_bytes, name, mprof, sched, cache_partition, pinned, pin_profile, experts)
    scores = None if trace.scores is None else trace.scores.tolist()
    policy = policy_cls(EvictionContext(L, E, sched, experts, scores), **dict(eviction_params or {}))
    sched.experts, sched.scores = experts, scores  # the rows and router weights some strategies' references read
    strat = factory(L, E, trace.top_k, sched, **params)
    cap = -1 if max_prefetch_loads is None else int(max_prefetch_loads)
    times = LayerDurations(mprof, hprof, layout.byte_size)

    events: list = []
    cache = Residency(layout, policy, policy_name, sched, events, settled=lambda ready_at, g: ready_at <= g)
    resident = cache.resident  # key -> ready_at
    now = 0
    link_free = 0
    wanted_lists = []
    for k in layout.pinned_list:  # resident and settled at time 0, never loaded
        cache.pin(k, 0)
        events.append((PIN, k, layout.nbytes(k)))

    def load(k, g, kind, s, l):
        nonlocal link_free
        start = max(g, link_free)
        link_free = start + times.load(layout.layer(k))
        events.append((LOAD, s, l, k, kind, start, link_free, layout.nbytes(k)))
        cache.admit(k, link_free, kind)

    for s in range(sched.num_steps):
        active = len(sched.steps[s])
        for l in range(L):
            g = now
            R, n = sched.R(s, l)
            keys = sched.keys(s, l)
            policy.on_position(s, l)
            # 2. demand
            demand_from = len(events)
            for key in keys:
                cache.tick += 1
                if key in resident:
                    events.append((ACCESS, s, l, key, 0 if cache.settled(key, g) else 1))
                    cache.accessed(key)
                    continue
                events.append((ACCESS, s, l, key, 2))
                cache.make_room_for_demand(key, keys, g, s, l)
                load(key, g, "demand", s, l)
            # 3. prefetch
            wanted = strategy_wants(strat, events[demand_from:], s, l, R, n)
            wanted_lists.append(wanted)
            cache.prefetch(wanted, keys, g, s, l, cap, load)
            # 4. compute
            start = max([g] + [resident[k] for k in keys])
            end = start + dense_ns(mprof, hprof, active)
            for c in n:
                end += times.expert(l, c)
            events.append((COMPUTE, s, l, g, start, end))
            now = end
            # 5. occupancy
            events.append((OCCUPANCY, s, l, len(resident)))
        policy.after_step(s)

    metrics, step_time, step_stall = metrics_from_events(events, sched.num_steps, trace.num_tokens)
    config = {
        "strategy": name, "params": dict(params), "model": mprof.name, "hardware": hprof.name,
        "eviction": policy_name, "eviction_params": dict(policy.params), "batch_size": B, "batching": batching,
        "cache_slots": layout.capacity, "cache_request": layout.request, "cache_unit": layout.unit,
        "cache_partition": cache_partition if isinstance(cache_partition, str) else list(cache_partition),
        "partition_budgets": list(layout.budgets), "pinned": list(layout.pinned_list),
        "pin_profile": float(pin_profile), "max_prefetch_loads": cap,
        **EXECUTION_CONFIG_DEFAULTS, "implementation": "reference",
        "trace": trace.fingerprint(), "fastsim_version": __version__,
    }
    return reference_result(metrics, config, events, step_time, step_stall, wanted_lists, per_step, record)


def replay_batching(trace, batching, batch_size: int, cache_bytes) -> str:
    """The batching a replay runs: ``batching``, or the trace's metadata when ``None``
    (docs/model.md "Recorded batching"). Recorded passes fix the batch: a ``batch_size`` other
    than 1, or ``cache_bytes="auto"`` (which sizes a KV cache for ``batch_size`` slots), is a
    ``ValueError`` with them."""
    if batching is None:
        batching = "recorded" if (getattr(trace, "metadata", None) or {}).get("batching") == "recorded" else "continuous"
    if batching not in ("continuous", "recorded"):
        raise ValueError(f"batching must be 'continuous' or 'recorded', got {batching!r}")
    if batching == "recorded" and batch_size != 1:
        raise ValueError(f"batching='recorded' replays the recorded passes; batch_size must be 1, got {batch_size}")
    if batching == "recorded" and isinstance(cache_bytes, str):
        raise ValueError('cache_bytes="auto" needs batch slots, and batching="recorded" has none')
    return batching


def strategy_wants(strat, demand_events, s: int, l: int, R, n) -> list[int]:
    """The keys ``strat`` asks to prefetch at ``(s, l)``. A strategy with feedback first sees
    the outcomes of this layer's demand (the ACCESS events of ``demand_events``), in R's order."""
    if hasattr(strat, "feedback"):
        strat.feedback(s, l, list(R), [ev[4] for ev in demand_events if ev[0] == ACCESS])
    return [int(k) for k in strat.observe(s, l, list(R), list(n))]


def reference_result(metrics, config, events, step_time, step_stall, wanted_lists, per_step, record):
    """The :class:`ReferenceResult` of a replay, with the per-step arrays and the record of
    outcomes and prefetch lists where asked."""
    result = ReferenceResult(metrics=metrics, config=config, events=events)
    if per_step:
        result.step_time_s = np.asarray(step_time, np.float64) / 1e9
        result.step_stall_s = np.asarray(step_stall, np.float64) / 1e9
    if record:
        result.outcomes = np.asarray([e[4] for e in events if e[0] == ACCESS], np.int8)
        result.wanted = [np.asarray(w, np.int64) for w in wanted_lists]
    return result


def metrics_from_events(events, steps: int, tokens: int):
    """Every SPEC section 3 metric counted from the event record, plus per-step time and stall
    (integer nanoseconds). Residency is replayed from the PIN, LOAD and EVICT events. Time comes
    from COMPUTE events (section 3) or LAYER events (the execution path); zero-copy reads add
    their bytes to ``h2d_bytes``."""
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
        elif e[0] == LAYER:  # the layer's time minus the GPU's busy time is its stall
            _, s, _, begin, _, end, busy = e
            step_stall[s] += end - begin - busy
            step_time[s] += end - begin
            total = end
    # occupancy: keys and bytes resident at each sample, pinned keys from the start
    held: dict[int, int] = {}  # key -> bytes
    samples: list[int] = []
    byte_samples: list[int] = []
    for e in events:
        if e[0] == PIN:
            held[e[1]] = e[2]
        elif e[0] == LOAD:
            held[e[3]] = e[7]
        elif e[0] == EVICT:
            del held[e[3]]
        elif e[0] == OCCUPANCY:
            assert len(held) == e[3], "the record's occupancy matches its loads and evictions"
            samples.append(len(held))
            byte_samples.append(sum(held.values()))
    accesses = len(outcomes)
    hits = outcomes.count(0)
    total_s = total / 1e9
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
        "h2d_bytes": sum(e[7] for e in events if e[0] == LOAD) + sum(e[5] for e in events if e[0] == ZERO_COPY),
        "stall_s": sum(step_stall) / 1e9,
        "total_time_s": total_s,
        "tokens": tokens,
        "steps": steps,
        "tokens_per_s": tokens / total_s if total_s > 0 else 0.0,
        "mean_resident": sum(samples) / len(samples) if samples else 0.0,
        "peak_resident": max(samples, default=0),
        "peak_cache_bytes": max(byte_samples, default=0),
    }
    return metrics, step_time, step_stall
