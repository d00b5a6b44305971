"""The execution timeline (SPEC section 7): layer anatomy, the demand-first link and its staging
cap, CPU and zero-copy execution of misses, upload caps, overflow, the host-memory tier and
prefill phases, over the cache organisation of SPEC section 6.

Every rule is written in ``docs/model.md``, "Execution (SPEC section 7)"; the pure-Python
reference (:mod:`fastsim.reference.execution`) follows the same text independently. With every
option at its default this timeline gives exactly the results of :mod:`fastsim.timeline.core`
(tests hold it to that), but replays with default options keep running that shorter core.

Like the core, one generic function specialised per (strategy, eviction policy) pair: the
pair's entry point (:mod:`fastsim.timeline.entries`) calls :func:`run_execution` with the
strategy's hooks and the policy's :class:`~fastsim.eviction.base.Hooks`, inlined by numba.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .core import (
    CFG_MAX_LOADS, CFG_PER_STEP, CFG_RECORD, CFG_TOP_K, HIT, LATE, MISS,
    N_H2D_BYTES, N_HITS, N_LATE, N_MISSES, N_PEAK_BYTES, N_PEAK_RESIDENT, N_PREFETCH_LOADS,
    N_PREFETCH_USEFUL, N_PREFETCH_WASTED, N_RESIDENT_SUM, N_SAMPLES, N_SIZE, N_STALL_NS, N_TOTAL_NS,
)
from .link import (
    DEMAND, LK_DEMAND_FIRST, LK_DHEAD, LK_DTAIL, LK_LAST_KIND, LK_PHEAD, LK_PTAIL, LK_SIZE, PREFETCH,
    UNSTARTED, ZERO_COPY, advance_before, enqueue, grow_queue, host_fill, host_lookup, inflight_prefetches,
    note_demand_issue, predicted_end, queue_state, wait_for, HS_CAP, HS_HEAD, HS_SIZE, HS_TAIL,
)

__all__ = ["run_execution"]

# Indices into the ``xconfig`` array (the execution options).
X_LAYERED = 0  # 1 = timeline "layered"
X_DEMAND_FIRST = 1  # 1 = link "demand-first"
X_MAX_INFLIGHT = 2  # prefetch transfers pending at once; < 0 = no cap
X_MISS = 3  # 0 load, 1 cpu, 2 zero-copy
X_MAX_UPLOADS = 4  # demand loads per (step, layer) with cpu / zero-copy; < 0 = no cap
X_EXCEED = 5  # 1 = overflow "exceed"
X_HOST_BYTES = 6  # host memory for experts in bytes; < 0 = no tier
X_SIZE = 7

MISS_LOAD = 0
MISS_CPU = 1
MISS_ZERO_COPY = 2

# Counters beyond the core's (``N_*`` of :mod:`fastsim.timeline.core` come first).
N_DEMAND_LOADS = N_SIZE
N_CPU = N_SIZE + 1
N_ZERO_COPY = N_SIZE + 2
N_HOST_HITS = N_SIZE + 3
N_NVME_LOADS = N_SIZE + 4
N_PEAK_OVERFLOW = N_SIZE + 5
N_PREFILL_HITS = N_SIZE + 6
N_PREFILL_LATE = N_SIZE + 7
N_PREFILL_MISSES = N_SIZE + 8
NX_SIZE = N_SIZE + 9

# How one access of R runs.
ON_GPU = 0  # resident (hit, late or uploaded)
ON_CPU = 1
BY_ZERO_COPY = 2


@njit(nogil=True, inline="always")
def _overflow_of(used, budget, q):
    d = used[q] - budget[q]
    return d if d > 0 else 0


@njit(nogil=True, inline="always")
def run_execution(sched, cost, xcost, config, xconfig, params, layout, ev_params, r_prefill, init, observe, policy,
                  feedback):
    """Replay one configuration under the execution options (SPEC section 7).

    Parameters as :func:`fastsim.timeline.core.run_timeline`, plus
    ``xcost = (cpu_ns (L, N + 1), zc_ns (L,), zc_compute_ns (N + 1,), nvme_ns (L,))``,
    ``xconfig`` (``X_*``) and ``r_prefill`` (uint8 per entry of ``R``: 1 for a prefill access;
    empty without prefill). ``cost`` and ``xcost`` tables cover every token count of a step.

    Returns ``counters`` (``NX_SIZE``), ``step_time`` (always), ``step_stall`` (with per-step),
    ``outcome``, ``wanted_ptr``, ``wanted_keys`` (with record).
    """
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    num_keys = num_layers * num_experts
    num_steps = sched.active.shape[0]
    max_loads = config[CFG_MAX_LOADS]
    per_step = config[CFG_PER_STEP] != 0
    record = config[CFG_RECORD] != 0
    load_ns = cost[0]
    expert_ns = cost[1]
    dense_ns = cost[2]
    cpu_ns = xcost[0]
    zc_ns = xcost[1]
    zc_compute_ns = xcost[2]
    nvme_ns = xcost[3]
    layered = xconfig[X_LAYERED] != 0
    demand_first = xconfig[X_DEMAND_FIRST] != 0
    max_inflight = xconfig[X_MAX_INFLIGHT]
    miss_mode = xconfig[X_MISS]
    max_uploads = xconfig[X_MAX_UPLOADS]
    exceed = xconfig[X_EXCEED] != 0
    tiers = xconfig[X_HOST_BYTES] >= 0
    phases = r_prefill.shape[0] > 0
    part_of_layer, part_off, budget, unit, key_bytes, pinned = layout
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    r_counts = sched.r_counts

    state = init(num_layers, num_experts, config[CFG_TOP_K], params)
    pstate = policy.init(num_layers, num_experts, part_of_layer, part_off, ev_params, sched)
    out = np.empty(num_keys, np.int64)
    seen = np.empty(num_experts, np.int8)  # this position's outcomes, for the feedback hook

    resident = np.zeros(num_keys, np.uint8)
    pf_pending = np.zeros(num_keys, np.uint8)
    ready_at = np.zeros(num_keys, np.int64)
    zc_done = np.zeros(num_keys, np.int64)
    cur_t = np.full(num_keys, -1, np.int64)
    r_stamp = np.zeros(num_keys, np.int64)
    prot_stamp = np.zeros(num_keys, np.int64)
    used = np.zeros(budget.shape[0], np.int64)

    lk = np.zeros(LK_SIZE, np.int64)
    lk[LK_LAST_KIND] = -1
    lk[LK_DEMAND_FIRST] = 1 if demand_first else 0
    dq = queue_state(64)
    pq = queue_state(64)
    host_links = np.full((4, num_keys if tiers else 1), -1, np.int64)
    host_links[2, :] = 0
    host_links[3, :] = 0
    hs = np.zeros(HS_SIZE, np.int64)
    hs[HS_HEAD] = -1
    hs[HS_TAIL] = -1
    hs[HS_CAP] = xconfig[X_HOST_BYTES]
    if tiers:
        host_fill(host_links, hs, key_bytes, num_experts)
    host_counts = np.zeros(2, np.int64)

    positions = num_steps * num_layers
    widest = 1
    for p in range(positions):
        if r_ptr[p + 1] - r_ptr[p] > widest:
            widest = r_ptr[p + 1] - r_ptr[p]
    runs = np.zeros(widest, np.int8)
    g_ready = np.empty(widest, np.int64)
    g_dur = np.empty(widest, np.int64)

    counters = np.zeros(NX_SIZE, np.int64)
    step_time = np.zeros(num_steps, np.int64)
    step_stall = np.zeros(num_steps if per_step else 0, np.int64)
    outcome = np.empty(r_experts.shape[0] if record else 0, np.int8)
    wanted_ptr = np.zeros(positions + 1 if record else 0, np.int64)
    wanted_cap = max(16, positions * 2) if record else 0
    wanted_keys = np.empty(wanted_cap, np.int64)
    n_wanted = 0

    hits = 0
    late = 0
    misses = 0
    pre_hits = 0
    pre_late = 0
    pre_misses = 0
    demand_loads = 0
    cpu_runs = 0
    zc_runs = 0
    pf_loads = 0
    pf_useful = 0
    pf_wasted = 0
    stall = 0
    resident_sum = 0
    peak = 0
    n_res = 0
    res_bytes = 0
    peak_bytes = 0
    h2d_bytes = 0
    over = 0
    peak_over = 0
    now = 0
    call = 0
    tick = 0

    for k in range(num_keys):
        if pinned[k]:
            lk_ = k // num_experts
            resident[k] = 1
            used[part_of_layer[lk_]] += unit[lk_]
            n_res += 1
            res_bytes += key_bytes[lk_]

    for s in range(num_steps):
        step_begin = now
        dense = dense_ns[sched.active[s]]
        for l in range(num_layers):
            p = s * num_layers + l
            g = now + dense if layered else now
            lo = r_ptr[p]
            hi = r_ptr[p + 1]
            base = l * num_experts
            part = part_of_layer[l]
            stamp = p + 1
            for j in range(lo, hi):
                r_stamp[base + r_experts[j]] = stamp
            policy.on_position(pstate, sched, p, l, lo, hi)
            advance_before(dq, pq, lk, g, cur_t, ready_at, zc_done)
            # ---- demand
            uploads = 0
            cpu_free = g
            cpu_end = g
            for j in range(lo, hi):
                key = base + r_experts[j]
                tick += 1
                prefill_access = phases and r_prefill[j] != 0
                if resident[key]:
                    runs[j - lo] = ON_GPU
                    if ready_at[key] <= g:
                        hits += 1
                        seen[j - lo] = HIT
                        if prefill_access:
                            pre_hits += 1
                        if record:
                            outcome[j] = HIT
                    else:
                        late += 1
                        seen[j - lo] = LATE
                        if prefill_access:
                            pre_late += 1
                        if record:
                            outcome[j] = LATE
                    if pf_pending[key]:
                        pf_useful += 1
                        pf_pending[key] = 0
                    if not pinned[key]:
                        policy.on_access(pstate, key, part, tick)
                    continue
                misses += 1
                seen[j - lo] = MISS
                if prefill_access:
                    pre_misses += 1
                if record:
                    outcome[j] = MISS
                early = g
                if tiers:
                    early = host_lookup(host_links, hs, key, g, key_bytes, num_experts, nvme_ns, host_counts)
                run = ON_GPU
                if miss_mode == MISS_CPU:
                    cpu_start = cpu_free if cpu_free > early else early
                    cpu_done = cpu_start + cpu_ns[l, r_counts[j]]
                    if max_uploads >= 0 and uploads >= max_uploads:
                        run = ON_CPU
                    elif cpu_done < predicted_end(lk, g, early, load_ns[l]):
                        run = ON_CPU
                    if run == ON_CPU:
                        cpu_free = cpu_done
                        cpu_end = cpu_done
                        cpu_runs += 1
                elif miss_mode == MISS_ZERO_COPY:
                    if max_uploads < 0 or uploads >= max_uploads:
                        run = BY_ZERO_COPY
                runs[j - lo] = run
                if run == ON_CPU:
                    continue
                if lk[LK_DTAIL] - lk[LK_DHEAD] == dq.shape[1]:
                    dq = grow_queue(dq, lk, LK_DHEAD, LK_DTAIL)
                if run == BY_ZERO_COPY:
                    end = predicted_end(lk, g, early, zc_ns[l])
                    enqueue(dq, lk, LK_DTAIL, key, g, early, zc_ns[l], ZERO_COPY, cur_t, ready_at, zc_done)
                    note_demand_issue(lk, end)
                    h2d_bytes += key_bytes[l]
                    zc_runs += 1
                    continue
                while used[part] + unit[l] > budget[part]:
                    victim = policy.victim(pstate, part, (r_stamp, stamp, prot_stamp, -1, ready_at, g), True, tick)
                    if victim < 0:
                        if exceed:
                            break
                        raise ValueError("no victim for a demand load: the cache is below the working set")
                    vl = victim // num_experts
                    pf_wasted += pf_pending[victim]
                    resident[victim] = 0
                    pf_pending[victim] = 0
                    over -= _overflow_of(used, budget, part)
                    used[part] -= unit[vl]
                    over += _overflow_of(used, budget, part)
                    n_res -= 1
                    res_bytes -= key_bytes[vl]
                    policy.on_evict(pstate, victim, part)
                end = predicted_end(lk, g, early, load_ns[l])
                enqueue(dq, lk, LK_DTAIL, key, g, early, load_ns[l], DEMAND, cur_t, ready_at, zc_done)
                note_demand_issue(lk, end)
                resident[key] = 1
                over -= _overflow_of(used, budget, part)
                used[part] += unit[l]
                over += _overflow_of(used, budget, part)
                if over > peak_over:
                    peak_over = over
                n_res += 1
                res_bytes += key_bytes[l]
                h2d_bytes += key_bytes[l]
                demand_loads += 1
                uploads += 1
                policy.on_load(pstate, key, part, tick, True)
            # ---- prefetch
            feedback(state, params, sched, s, l, r_experts[lo:hi], seen[: hi - lo])
            m = observe(state, params, sched, s, l, r_experts[lo:hi], r_counts[lo:hi], out)
            if m < 0 or m > num_keys:
                raise ValueError("strategy returned a count outside 0 .. L*E")
            if record:
                if n_wanted + m > wanted_cap:
                    wanted_cap = max(2 * wanted_cap, n_wanted + m)
                    grown = np.empty(wanted_cap, np.int64)
                    grown[:n_wanted] = wanted_keys[:n_wanted]
                    wanted_keys = grown
                wanted_keys[n_wanted : n_wanted + m] = out[:m]
                n_wanted += m
                wanted_ptr[p + 1] = n_wanted
            call += 1
            loads = 0
            processed = 0
            for i in range(m):
                key = out[i]
                if key < 0 or key >= num_keys:
                    raise ValueError("strategy wrote a key outside 0 .. L*E-1")
                if resident[key]:
                    prot_stamp[key] = call
                    processed += 1
                    continue
                if max_loads >= 0 and loads >= max_loads:
                    break
                if max_inflight >= 0 and inflight_prefetches(dq, pq, lk, g) >= max_inflight:
                    break
                kl = key // num_experts
                kpart = part_of_layer[kl]
                no_victim = False
                skipped = False
                while used[kpart] + unit[kl] > budget[kpart]:
                    victim = policy.victim(pstate, kpart, (r_stamp, stamp, prot_stamp, call, ready_at, g), False, tick)
                    if victim < 0:
                        no_victim = True
                        break
                    if policy.keep(pstate, victim, key):
                        skipped = True
                        break
                    vl = victim // num_experts
                    pf_wasted += pf_pending[victim]
                    resident[victim] = 0
                    pf_pending[victim] = 0
                    over -= _overflow_of(used, budget, kpart)
                    used[kpart] -= unit[vl]
                    over += _overflow_of(used, budget, kpart)
                    n_res -= 1
                    res_bytes -= key_bytes[vl]
                    policy.on_evict(pstate, victim, kpart)
                if no_victim:
                    break
                prot_stamp[key] = call
                processed += 1
                if skipped:
                    continue
                early = g
                if tiers:
                    early = host_lookup(host_links, hs, key, g, key_bytes, num_experts, nvme_ns, host_counts)
                if demand_first:
                    if lk[LK_PTAIL] - lk[LK_PHEAD] == pq.shape[1]:
                        pq = grow_queue(pq, lk, LK_PHEAD, LK_PTAIL)
                    enqueue(pq, lk, LK_PTAIL, key, g, early, load_ns[kl], PREFETCH, cur_t, ready_at, zc_done)
                else:
                    if lk[LK_DTAIL] - lk[LK_DHEAD] == dq.shape[1]:
                        dq = grow_queue(dq, lk, LK_DHEAD, LK_DTAIL)
                    end = predicted_end(lk, g, early, load_ns[kl])
                    enqueue(dq, lk, LK_DTAIL, key, g, early, load_ns[kl], PREFETCH, cur_t, ready_at, zc_done)
                    note_demand_issue(lk, end)
                resident[key] = 1
                over -= _overflow_of(used, budget, kpart)
                used[kpart] += unit[kl]
                over += _overflow_of(used, budget, kpart)
                n_res += 1
                res_bytes += key_bytes[kl]
                h2d_bytes += key_bytes[kl]
                policy.on_load(pstate, key, kpart, tick, False)
                pf_pending[key] = 1
                pf_loads += 1
                loads += 1
            for i in range(processed - 1, -1, -1):
                key = out[i]
                tick += 1
                if resident[key] and not pinned[key]:
                    policy.on_refresh(pstate, key, part_of_layer[key // num_experts], tick)
            policy.after_position(pstate, sched, p, l, lo, hi)
            # ---- compute: the GPU's experts (and the CPU's, decided at demand)
            n_gpu = 0
            busy = 0 if layered else dense
            for j in range(lo, hi):
                run = runs[j - lo]
                if run == ON_CPU:
                    continue
                key = base + r_experts[j]
                if run == BY_ZERO_COPY:
                    wait_for(dq, pq, lk, zc_done, key, cur_t, ready_at, zc_done)
                    g_ready[n_gpu] = zc_done[key]
                    g_dur[n_gpu] = zc_compute_ns[r_counts[j]]
                else:
                    wait_for(dq, pq, lk, ready_at, key, cur_t, ready_at, zc_done)
                    g_ready[n_gpu] = ready_at[key]
                    g_dur[n_gpu] = expert_ns[l, r_counts[j]]
                busy += g_dur[n_gpu]
                n_gpu += 1
            if layered:
                # one at a time by readiness (resident ones count as ready at g), ties by id:
                # a stable insertion sort of R's ascending order by max(ready, g)
                for a in range(1, n_gpu):
                    r = g_ready[a]
                    d = g_dur[a]
                    ra = r if r > g else g
                    b = a - 1
                    while b >= 0 and (g_ready[b] if g_ready[b] > g else g) > ra:
                        g_ready[b + 1] = g_ready[b]
                        g_dur[b + 1] = g_dur[b]
                        b -= 1
                    g_ready[b + 1] = r
                    g_dur[b + 1] = d
                t = g
                for a in range(n_gpu):
                    if g_ready[a] > t:
                        t = g_ready[a]
                    t += g_dur[a]
                gpu_end = t
            else:
                start = g
                for a in range(n_gpu):
                    if g_ready[a] > start:
                        start = g_ready[a]
                gpu_end = start + busy
            end = gpu_end if gpu_end > cpu_end else cpu_end
            idle = end - g - busy
            stall += idle
            if per_step:
                step_stall[s] += idle
            now = end
            # ---- occupancy
            resident_sum += n_res
            if n_res > peak:
                peak = n_res
            if res_bytes > peak_bytes:
                peak_bytes = res_bytes
        policy.after_step(pstate, sched, s)
        step_time[s] = now - step_begin

    for k in range(num_keys):
        if pf_pending[k]:
            pf_wasted += 1
    counters[N_HITS] = hits
    counters[N_LATE] = late
    counters[N_MISSES] = misses
    counters[N_PREFETCH_LOADS] = pf_loads
    counters[N_PREFETCH_USEFUL] = pf_useful
    counters[N_PREFETCH_WASTED] = pf_wasted
    counters[N_STALL_NS] = stall
    counters[N_TOTAL_NS] = now
    counters[N_RESIDENT_SUM] = resident_sum
    counters[N_PEAK_RESIDENT] = peak
    counters[N_SAMPLES] = positions
    counters[N_H2D_BYTES] = h2d_bytes
    counters[N_PEAK_BYTES] = peak_bytes
    counters[N_DEMAND_LOADS] = demand_loads
    counters[N_CPU] = cpu_runs
    counters[N_ZERO_COPY] = zc_runs
    counters[N_HOST_HITS] = host_counts[0]
    counters[N_NVME_LOADS] = host_counts[1]
    counters[N_PEAK_OVERFLOW] = peak_over
    counters[N_PREFILL_HITS] = pre_hits
    counters[N_PREFILL_LATE] = pre_late
    counters[N_PREFILL_MISSES] = pre_misses
    return counters, step_time, step_stall, outcome, wanted_ptr, wanted_keys[:n_wanted]
