"""Reference timeline of SPEC section 7 (execution options) in plain Python.

Written to follow ``docs/model.md`` "Execution (SPEC section 7)" line by line, slow on purpose:
dicts, lists and explicit queues of transfer records (:mod:`fastsim.reference.link`). With every
option at its default it replays exactly SPEC sections 3 and 6, as
:func:`fastsim.reference.timeline.replay_reference` does. It shares no code with the kernel side
(``fastsim.timeline``, ``fastsim.replay``, ``fastsim.strategies``): its durations, cache budget,
schedule, link and metrics are its own, and every metric is counted from its event record.
"""
from __future__ import annotations

from .._version import __version__
from ..profiles import hardware_profile, model_profile
from .durations import dense_ns
from .eviction import EvictionContext, reference_eviction
from .execution_metrics import execution_metrics
from .execution_terms import CPU_FIGURES, TIER_FIGURES, ExecutionDurations, auto_cache_bytes, describe_budget, need_figures
from .layout import LayerDurations, resolve_layout
from .link import LINKS, HostMemory, ReferenceLink
from .registry import reference_strategy
from .residency import Residency
from .timeline import (
    ACCESS, CPU, LAYER, LOAD, OCCUPANCY, PIN, STEP, ZERO_COPY, ReferenceResult, ReferenceSchedule, reference_result,
    replay_batching, strategy_wants,
)

__all__ = ["replay_execution_reference", "TIMELINES", "MISS_EXECUTIONS", "OVERFLOWS", "AUTO"]

TIMELINES = ("simple", "layered")
MISS_EXECUTIONS = ("load", "cpu", "zero-copy")
OVERFLOWS = ("error", "exceed")
AUTO = "auto"


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _cap(value, name, least):
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or value < least:
        raise ValueError(f"{name} must be an integer >= {least} or None, got {value!r}")
    return int(value)


def _no_cap(value):
    return -1 if value is None else value


def replay_execution_reference(
    trace,
    strategy="on-demand",
    model=None,
    hardware="rtx3090",
    cache_slots=None,
    cache_bytes=None,
    eviction="lru",
    batch_size=1,
    *,
    eviction_params=None,
    cache_partition="global",
    pinned=None,
    pin_profile=1.0,
    max_prefetch_loads=None,
    timeline="simple",
    link="fifo",
    max_inflight_prefetches=None,
    miss_execution="load",
    max_uploads_per_layer=None,
    overflow="error",
    prefill=False,
    reserve_bytes=None,
    context_tokens=None,
    batching=None,
    per_step=False,
    record=False,
    **params,
) -> ReferenceResult:
    """The contract of :func:`fastsim.replay` with SPEC section 7's options, computed by the
    reference. The options are those of docs/model.md "Execution"; the memory tiers come from
    the hardware profile (``host_bytes``, ``nvme_bytes_per_s``). A missing profile figure an
    option needs, ``prefill=True`` on a trace without prompt marks, and an impossible layout
    raise ``ValueError``."""
    _choice(timeline, "timeline", TIMELINES)
    _choice(link, "link", LINKS)
    _choice(miss_execution, "miss_execution", MISS_EXECUTIONS)
    _choice(overflow, "overflow", OVERFLOWS)
    inflight_cap = _cap(max_inflight_prefetches, "max_inflight_prefetches", 1)
    upload_cap = _cap(max_uploads_per_layer, "max_uploads_per_layer", 0)
    if upload_cap is not None and miss_execution == "load":
        raise ValueError('max_uploads_per_layer needs miss_execution="cpu" or "zero-copy"')
    name, factory = reference_strategy(strategy)
    mprof = model_profile(trace.model if model is None else model)
    hprof = hardware_profile(hardware)
    if miss_execution == "cpu":
        need_figures(hprof, CPU_FIGURES, 'miss_execution="cpu"', "hardware")
    tiers = getattr(hprof, "host_bytes", None) is not None
    if tiers:
        need_figures(hprof, TIER_FIGURES, "host_bytes (memory tiers)", "hardware")
    policy_name, policy_cls = reference_eviction(eviction)
    B = int(batch_size)
    batching = replay_batching(trace, batching, B, cache_bytes)
    L, E = trace.num_layers, trace.num_experts
    experts = trace.experts.tolist()
    prompts = getattr(trace, "prompt_tokens", None)
    if prefill and prompts is None:
        raise ValueError("prefill=True needs a trace that marks its prompts (trace.prompt_tokens is None)")
    sched = ReferenceSchedule(experts, trace.sequence_lengths, L, E, B, prompt_lengths=prompts if prefill else None,
                              batching=batching)

    budget = None
    if isinstance(cache_bytes, str):
        if cache_bytes != AUTO:
            raise ValueError(f"cache_bytes must be a number of bytes or 'auto', got {cache_bytes!r}")
        if cache_slots is not None:
            raise ValueError("give exactly one of cache_slots and cache_bytes")
        longest = max((int(x) for x in trace.sequence_lengths), default=0)
        cache_bytes, budget = auto_cache_bytes(mprof, hprof, B, context_tokens, reserve_bytes, longest)
    elif reserve_bytes is not None or context_tokens is not None:
        raise ValueError('reserve_bytes and context_tokens apply only with cache_bytes="auto"')
    try:
        layout = resolve_layout(cache_slots, cache_bytes, name, mprof, sched, cache_partition, pinned, pin_profile,
                                experts, check_working_set=overflow == "error")
    except ValueError as exc:
        if budget is None:
            raise
        raise ValueError(f'{exc} (cache_bytes="auto": {describe_budget(budget)})') from None

    scores = None if trace.scores is None else trace.scores.tolist()
    policy = policy_cls(EvictionContext(L, E, sched, experts, scores), **dict(eviction_params or {}))
    sched.experts, sched.scores = experts, scores  # the rows and router weights some strategies' references read
    strat = factory(L, E, trace.top_k, sched, **params)
    cap = -1 if max_prefetch_loads is None else int(max_prefetch_loads)
    times = LayerDurations(mprof, hprof, layout.byte_size)
    extra = ExecutionDurations(mprof, hprof, layout.byte_size)

    events: list = []
    wire = ReferenceLink(link, events)
    host = None
    if tiers:
        host = HostMemory(int(hprof.host_bytes), L * E, layout.nbytes, lambda k: extra.nvme(layout.layer(k)), events)
    # key -> the transfer its residency waits for (None: pinned, settled at 0)
    cache = Residency(layout, policy, policy_name, sched, events, settled=lambda x, g: x is None or x.ended_by(g))
    resident = cache.resident
    now = 0
    wanted_lists = []
    for k in layout.pinned_list:
        cache.pin(k, None)
        events.append((PIN, k, layout.nbytes(k)))

    def ready(x):
        return 0 if x is None else x.end

    def host_copy(k, g, s, l):
        """When ``k``'s host copy is ready for a transfer or CPU execution issued at ``g``."""
        return g if host is None else host.lookup(k, g, s, l)

    def load(k, g, kind, s, l, earliest=None):
        if earliest is None:  # a CPU-or-upload miss has looked its key up already
            earliest = host_copy(k, g, s, l)
        events.append((LOAD, s, l, k, kind, len(wire.transfers), g, layout.nbytes(k)))
        cache.admit(k, wire.issue(k, kind, g, earliest, times.load(layout.layer(k)), layout.nbytes(k)), kind)
        return resident[k]

    def staging_full(g):
        return inflight_cap is not None and wire.prefetches_not_ended(g) >= inflight_cap

    for s in range(sched.num_steps):
        b = len(sched.steps[s])  # active tokens, prompt tokens included
        events.append((STEP, s, list(sched.prefilled[s]), sched.decode_tokens[s]))
        for l in range(L):
            begin = now
            dense = dense_ns(mprof, hprof, b)
            g = now if timeline == "simple" else now + dense  # layered: attention and router first
            wire.advance(g)
            R, n = sched.R(s, l)
            keys = sched.keys(s, l)
            prompt_experts = sched.prefill_experts(s, l)
            policy.on_position(s, l)
            # demand, in R's order: each miss is decided when demand reaches it
            demand_from = len(events)
            gpu = []  # (expert, compute ns, the transfer it waits for or None) of the GPU's experts
            cpu_free = g  # the CPU runs one expert at a time, the first from g
            uploads = 0
            for e, c, key in zip(R, n, keys):
                cache.tick += 1
                phase = "prefill" if e in prompt_experts else "decode"
                if key in resident:
                    events.append((ACCESS, s, l, key, 0 if cache.settled(key, g) else 1, phase))
                    cache.accessed(key)
                    gpu.append((e, times.expert(l, c), resident[key]))
                    continue
                events.append((ACCESS, s, l, key, 2, phase))
                capped = upload_cap is not None and uploads >= upload_cap
                if miss_execution == "zero-copy" and (upload_cap is None or capped):
                    earliest = host_copy(key, g, s, l)
                    x = wire.issue(key, "zero-copy", g, earliest, extra.zero_copy(l), layout.nbytes(key))
                    events.append((ZERO_COPY, s, l, key, x.id, layout.nbytes(key)))
                    gpu.append((e, extra.zero_copy_compute(c), x))
                    continue
                if miss_execution == "cpu":
                    earliest = host_copy(key, g, s, l)  # one lookup: CPU and transfer wait for the same copy
                    cpu_end = max(cpu_free, earliest) + extra.cpu(l, c)
                    if capped or cpu_end < wire.demand_end_estimate(g, earliest, times.load(l)):
                        events.append((CPU, s, l, key, cpu_end - extra.cpu(l, c), cpu_end))
                        cpu_free = cpu_end
                        continue
                else:
                    earliest = None  # looked up when the upload is issued
                # with overflow="exceed" a load that finds no victim goes in all the same
                cache.make_room_for_demand(key, keys, g, s, l, may_overflow=overflow == "exceed")
                uploads += 1
                gpu.append((e, times.expert(l, c), load(key, g, "demand", s, l, earliest)))
            # prefetch at g, while the staging buffer has room
            wanted = strategy_wants(strat, events[demand_from:], s, l, R, n)
            wanted_lists.append(wanted)
            cache.prefetch(wanted, keys, g, s, l, cap, load, staging_full)
            # compute: the link runs until every transfer the GPU's experts wait for has started
            for _, _, x in gpu:
                if x is not None:
                    wire.wait_for(x)
            busy = dense + sum(c for _, c, _ in gpu)
            if timeline == "simple":
                start = max([g] + [ready(x) for _, _, x in gpu])
                gpu_end = start + busy
            else:  # one expert at a time, by readiness, ties by id
                gpu_end = g
                for _, c, x in sorted(gpu, key=lambda t: (max(ready(t[2]), g), t[0])):
                    gpu_end = max(ready(x), gpu_end) + c
            end = max(gpu_end, cpu_free)  # the layer ends when the GPU and the CPU are both done
            events.append((LAYER, s, l, begin, g, end, busy))
            now = end
            events.append((OCCUPANCY, s, l, len(resident)))
        policy.after_step(s)

    metrics, step_time, step_stall = execution_metrics(events, sched.num_steps, trace.num_tokens, layout)
    config = {
        "strategy": name, "params": dict(params), "model": mprof.name, "hardware": hprof.name,
        "eviction": policy_name, "eviction_params": dict(policy.params), "batch_size": B, "batching": batching,
        "cache_slots": layout.capacity, "cache_request": layout.request if budget is None else AUTO,
        "cache_unit": layout.unit,
        "cache_partition": cache_partition if isinstance(cache_partition, str) else list(cache_partition),
        "partition_budgets": list(layout.budgets), "pinned": list(layout.pinned_list),
        "pin_profile": float(pin_profile), "max_prefetch_loads": cap,
        "timeline": timeline, "link": link, "max_inflight_prefetches": _no_cap(inflight_cap),
        "miss_execution": miss_execution, "max_uploads_per_layer": _no_cap(upload_cap), "overflow": overflow,
        "prefill": bool(prefill), "cache_budget": budget, "implementation": "reference",
        "trace": trace.fingerprint(), "fastsim_version": __version__,
    }
    return reference_result(metrics, config, events, step_time, step_stall, wanted_lists, per_step, record)
