"""The timeline for strategies that never prefetch (on-demand): the same SPEC section 3 replay,
simplified by what cannot happen without prefetches. The two specialised paths serve SPEC section
3's cache (one global partition, no pins, one expert size) with ``lru``, ``belady`` or ``fifo``
(the LRU list without the move on a hit); :func:`run_demand_policy` serves every other policy and
layout.

Without prefetches every load belongs to the current ``R`` and compute waits for all of them, so
when a position starts every resident key has settled and the link is idle. Hence: no access is
ever late, a victim is never in flight, the least recent key outside ``R`` (LRU) or the farthest
next use (Belady) is always a valid victim, and a position with ``x`` misses stalls exactly
``x * load_ns``. The general core (:mod:`fastsim.timeline.core`) gives the same results; this
path is 2-4x faster, which matters for the baseline rows every sweep runs.

Indices into per-key arrays are unsigned so numba emits no negative-index wraparound code.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import core
from .evict import heap_down, heap_entry, heap_key, heap_push, heap_shape, heap_up, lru_push_mru, lru_unlink

__all__ = ["run_demand_only", "run_demand_single", "run_demand_policy"]


@njit(nogil=True, inline="always")
def _arrays(sched, num_keys, belady, per_step, record):
    """The per-replay arrays of both demand-only paths: residency, the LRU list (sentinel at
    ``num_keys``), the Belady heap and next uses, counters and the optional outputs."""
    resident = np.zeros(num_keys, np.uint8)
    prv = np.empty(num_keys + np.uint64(1), np.uint64)
    nxt = np.empty(num_keys + np.uint64(1), np.uint64)
    prv[num_keys] = num_keys
    nxt[num_keys] = num_keys
    if belady:
        heap = np.empty(num_keys, np.int64)
        hpos = np.zeros(num_keys, np.int64)
    else:
        heap = np.empty(0, np.int64)
        hpos = np.empty(0, np.int64)
    num_steps = sched.active.shape[0]
    counters = np.zeros(core.N_SIZE, np.int64)
    step_time = np.zeros(num_steps if per_step else 0, np.int64)
    step_stall = np.zeros(num_steps if per_step else 0, np.int64)
    outcome = np.empty(sched.r_experts.shape[0] if record else 0, np.int8)
    wanted_ptr = np.zeros(num_steps * sched.num_layers + 1 if record else 0, np.int64)
    return resident, prv, nxt, heap, hpos, counters, step_time, step_stall, outcome, wanted_ptr


@njit(nogil=True, inline="always")
def run_demand_only(sched, cost, config):
    """:func:`fastsim.timeline.core.run_timeline` for a strategy that never prefetches."""
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    num_keys = np.uint64(num_layers * num_experts)
    num_steps = sched.active.shape[0]
    capacity = config[core.CFG_CAPACITY]
    belady = config[core.CFG_EVICTION] == 1
    fifo = config[core.CFG_EVICTION] == 2  # the LRU list without the move on a hit
    per_step = config[core.CFG_PER_STEP] != 0
    record = config[core.CFG_RECORD] != 0
    load_ns = cost[0]
    expert_ns = cost[1]
    dense_ns = cost[2]
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    r_counts = sched.r_counts
    r_next = sched.r_next

    (resident, prv, nxt, heap, hpos, counters, step_time, step_stall, outcome,
     wanted_ptr) = _arrays(sched, num_keys, belady, per_step, record)
    head = num_keys  # LRU sentinel: nxt[head] least recent, prv[head] most recent
    r_stamp = np.zeros(num_keys, np.int64)
    heap_size = 0
    positions = num_steps * num_layers
    shift, mask, never = heap_shape(num_layers * num_experts, positions)

    hits = 0
    misses = 0
    stall = 0
    resident_sum = 0
    peak = 0
    n_res = 0
    now = 0
    p = 0
    for s in range(num_steps):
        step_begin = now
        dense = dense_ns[sched.active[s]]
        for l in range(num_layers):
            lo = r_ptr[p]
            hi = r_ptr[p + 1]
            base = np.uint64(l * num_experts)
            t = now + dense
            n_miss = 0
            if hi - lo > 1:
                # only a set of several keys can hold a resident key that must not be evicted
                for j in range(lo, hi):
                    r_stamp[base + np.uint64(r_experts[j])] = p + 1
            for j in range(lo, hi):
                key = base + np.uint64(r_experts[j])
                t += expert_ns[r_counts[j]]
                if resident[key]:
                    hits += 1
                    if record:
                        outcome[j] = core.HIT
                    if not belady and not fifo:
                        lru_unlink(prv, nxt, key)
                        lru_push_mru(prv, nxt, key, head)
                    continue
                misses += 1
                n_miss += 1
                if record:
                    outcome[j] = core.MISS
                if n_res >= capacity:
                    if belady:
                        # R's keys still rank at this position, the nearest possible: the top
                        # is outside R whenever the cache is full
                        victim = np.uint64(heap_key(heap[0], mask))
                        heap_size -= 1
                        if heap_size > 0:
                            heap[0] = heap[heap_size]
                            heap_down(heap, hpos, 0, heap_size, mask)
                    else:
                        victim = nxt[head]
                        while r_stamp[victim] == p + 1:
                            victim = nxt[victim]
                        lru_unlink(prv, nxt, victim)
                    resident[victim] = 0
                    n_res -= 1
                resident[key] = 1
                n_res += 1
                if belady:
                    # its next use is this position until R's keys move on below
                    heap_size = heap_push(heap, hpos, heap_entry(p, np.int64(key), shift, mask, never), heap_size, mask)
                else:
                    lru_push_mru(prv, nxt, key, head)
            if belady:
                for j in range(lo, hi):
                    key = base + np.uint64(r_experts[j])
                    # a demand moves the key's next use later: it can only rise in the heap
                    i = hpos[key]
                    heap[i] = heap_entry(r_next[j], np.int64(key), shift, mask, never)
                    heap_up(heap, hpos, i, mask)
            # the link was idle at the position's start, so its loads end n_miss loads later
            wait = n_miss * load_ns
            stall += wait
            if per_step:
                step_stall[s] += wait
            now = t + wait
            resident_sum += n_res
            if n_res > peak:
                peak = n_res
            p += 1
        if per_step:
            step_time[s] = now - step_begin

    counters[core.N_HITS] = hits
    counters[core.N_MISSES] = misses
    counters[core.N_STALL_NS] = stall
    counters[core.N_TOTAL_NS] = now
    counters[core.N_RESIDENT_SUM] = resident_sum
    counters[core.N_PEAK_RESIDENT] = peak
    counters[core.N_SAMPLES] = positions
    return counters, step_time, step_stall, outcome, wanted_ptr, np.empty(0, np.int64)


@njit(nogil=True, inline="always")
def run_demand_single(sched, cost, config):
    """:func:`run_demand_only` for schedules whose every ``R`` holds at most one expert (top-1
    routing at batch size 1, the shape of the seed's Switch runs): no set bookkeeping, and under
    Belady the new key takes the evicted root's place in one sift."""
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    num_keys = np.uint64(num_layers * num_experts)
    num_steps = sched.active.shape[0]
    capacity = config[core.CFG_CAPACITY]
    belady = config[core.CFG_EVICTION] == 1
    fifo = config[core.CFG_EVICTION] == 2  # the LRU list without the move on a hit
    per_step = config[core.CFG_PER_STEP] != 0
    record = config[core.CFG_RECORD] != 0
    load_ns = cost[0]
    expert_ns = cost[1]
    dense_ns = cost[2]
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    r_counts = sched.r_counts
    r_next = sched.r_next

    (resident, prv, nxt, heap, hpos, counters, step_time, step_stall, outcome,
     wanted_ptr) = _arrays(sched, num_keys, belady, per_step, record)
    head = num_keys  # LRU sentinel: nxt[head] least recent, prv[head] most recent
    heap_size = 0
    positions = num_steps * num_layers
    shift, mask, never = heap_shape(num_layers * num_experts, positions)

    hits = 0
    misses = 0
    resident_sum = 0
    peak = 0
    n_res = 0
    now = 0
    p = 0
    for s in range(num_steps):
        step_begin = now
        dense = dense_ns[sched.active[s]]
        step_misses = 0
        for l in range(num_layers):
            j = r_ptr[p]
            now += dense
            if r_ptr[p + 1] > j:
                key = np.uint64(l * num_experts) + np.uint64(r_experts[j])
                now += expert_ns[r_counts[j]]
                if resident[key]:
                    hits += 1
                    if record:
                        outcome[j] = core.HIT
                    if belady:
                        # a demand moves the key's next use later: it can only rise in the heap
                        i = hpos[key]
                        heap[i] = heap_entry(r_next[j], np.int64(key), shift, mask, never)
                        heap_up(heap, hpos, i, mask)
                    elif not fifo:
                        lru_unlink(prv, nxt, key)
                        lru_push_mru(prv, nxt, key, head)
                else:
                    misses += 1
                    step_misses += 1
                    now += load_ns
                    if record:
                        outcome[j] = core.MISS
                    resident[key] = 1
                    if belady:
                        entry = heap_entry(r_next[j], np.int64(key), shift, mask, never)
                        if n_res >= capacity:
                            resident[heap_key(heap[0], mask)] = 0
                            heap[0] = entry
                            heap_down(heap, hpos, 0, heap_size, mask)
                        else:
                            heap_size = heap_push(heap, hpos, entry, heap_size, mask)
                            n_res += 1
                    else:
                        if n_res >= capacity:
                            victim = nxt[head]
                            resident[victim] = 0
                            lru_unlink(prv, nxt, victim)
                        else:
                            n_res += 1
                        lru_push_mru(prv, nxt, key, head)
            resident_sum += n_res
            if n_res > peak:
                peak = n_res
            p += 1
        if per_step:
            step_time[s] = now - step_begin
            step_stall[s] = step_misses * load_ns

    counters[core.N_HITS] = hits
    counters[core.N_MISSES] = misses
    counters[core.N_STALL_NS] = misses * load_ns
    counters[core.N_TOTAL_NS] = now
    counters[core.N_RESIDENT_SUM] = resident_sum
    counters[core.N_PEAK_RESIDENT] = peak
    counters[core.N_SAMPLES] = positions
    return counters, step_time, step_stall, outcome, wanted_ptr, np.empty(0, np.int64)


@njit(nogil=True, inline="always")
def run_demand_policy(sched, cost, config, params, layout, ev_params, init, observe, policy):
    """:func:`fastsim.timeline.core.run_timeline` for a strategy that never prefetches, with any
    eviction policy, partition, pins and key sizes (the arguments of the general core).

    What cannot happen without prefetches makes it shorter: every resident key has settled when a
    position starts and the link is idle, so no access is late, no victim is in flight, and a
    position with ``x`` misses stalls ``x * load_ns[l]``.
    """
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    num_keys = num_layers * num_experts
    num_steps = sched.active.shape[0]
    per_step = config[core.CFG_PER_STEP] != 0
    record = config[core.CFG_RECORD] != 0
    load_ns = cost[0]
    expert_ns = cost[1]
    dense_ns = cost[2]
    part_of_layer, part_off, budget, unit, key_bytes, pinned = layout
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    r_counts = sched.r_counts

    pstate = policy.init(num_layers, num_experts, part_of_layer, part_off, ev_params, sched)
    resident = np.zeros(num_keys, np.uint8)
    settled = np.zeros(num_keys, np.int64)  # every key's ready_at is in the past at a demand
    r_stamp = np.zeros(num_keys, np.int64)
    no_protection = np.zeros(num_keys, np.int64)
    used = np.zeros(budget.shape[0], np.int64)
    counters = np.zeros(core.N_SIZE, np.int64)
    step_time = np.zeros(num_steps if per_step else 0, np.int64)
    step_stall = np.zeros(num_steps if per_step else 0, np.int64)
    outcome = np.empty(r_experts.shape[0] if record else 0, np.int8)
    positions = num_steps * num_layers
    wanted_ptr = np.zeros(positions + 1 if record else 0, np.int64)

    hits = 0
    misses = 0
    stall = 0
    resident_sum = 0
    peak = 0
    n_res = 0
    res_bytes = 0
    peak_bytes = 0
    h2d_bytes = 0
    now = 0
    tick = 0
    for k in range(num_keys):
        if pinned[k]:
            lk = k // num_experts
            resident[k] = 1
            used[part_of_layer[lk]] += unit[lk]
            n_res += 1
            res_bytes += key_bytes[lk]
    p = 0
    for s in range(num_steps):
        step_begin = now
        dense = dense_ns[sched.active[s]]
        for l in range(num_layers):
            lo = r_ptr[p]
            hi = r_ptr[p + 1]
            base = l * num_experts
            part = part_of_layer[l]
            stamp = p + 1
            for j in range(lo, hi):
                r_stamp[base + r_experts[j]] = stamp
            policy.on_position(pstate, sched, p, l, lo, hi)
            t = now + dense
            n_miss = 0
            for j in range(lo, hi):
                key = base + r_experts[j]
                tick += 1
                t += expert_ns[l, r_counts[j]]
                if resident[key]:
                    hits += 1
                    if record:
                        outcome[j] = core.HIT
                    if not pinned[key]:
                        policy.on_access(pstate, key, part, tick)
                    continue
                misses += 1
                n_miss += 1
                if record:
                    outcome[j] = core.MISS
                while used[part] + unit[l] > budget[part]:
                    victim = policy.victim(pstate, part, (r_stamp, stamp, no_protection, -1, settled, now), True, tick)
                    if victim < 0:
                        raise ValueError("no victim for a demand load: the cache is below the working set")
                    vl = victim // num_experts
                    resident[victim] = 0
                    used[part] -= unit[vl]
                    n_res -= 1
                    res_bytes -= key_bytes[vl]
                    policy.on_evict(pstate, victim, part)
                resident[key] = 1
                used[part] += unit[l]
                n_res += 1
                res_bytes += key_bytes[l]
                h2d_bytes += key_bytes[l]
                policy.on_load(pstate, key, part, tick, True)
            policy.after_position(pstate, sched, p, l, lo, hi)
            # the link was idle at the position's start, so its loads end n_miss loads later
            wait = n_miss * load_ns[l]
            stall += wait
            if per_step:
                step_stall[s] += wait
            now = t + wait
            resident_sum += n_res
            if n_res > peak:
                peak = n_res
            if res_bytes > peak_bytes:
                peak_bytes = res_bytes
            p += 1
        policy.after_step(pstate, sched, s)
        if per_step:
            step_time[s] = now - step_begin

    counters[core.N_HITS] = hits
    counters[core.N_MISSES] = misses
    counters[core.N_STALL_NS] = stall
    counters[core.N_TOTAL_NS] = now
    counters[core.N_RESIDENT_SUM] = resident_sum
    counters[core.N_PEAK_RESIDENT] = peak
    counters[core.N_SAMPLES] = positions
    counters[core.N_H2D_BYTES] = h2d_bytes
    counters[core.N_PEAK_BYTES] = peak_bytes
    return counters, step_time, step_stall, outcome, wanted_ptr, np.empty(0, np.int64)
