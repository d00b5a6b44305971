"""The timeline core (SPEC sections 3 and 6): cache, FIFO host-to-device link, prefetching,
compute, with the eviction policy, partitions, pins and key sizes of ``docs/model.md``.

One generic core, specialised per (strategy, eviction policy) pair: each pair's cached entry point
(:mod:`fastsim.timeline.entries`) calls :func:`run_timeline` with the strategy's
``init``/``observe`` hooks and the policy's :class:`~fastsim.eviction.base.Hooks`, which numba
inlines. The victim rule of SPEC section 3 lives in the policies' shared
:func:`~fastsim.eviction.base.eligibility`; the core decides when to evict and what a load costs.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["no_feedback", "prefetch_lists", "run_timeline"]


@njit(nogil=True, inline="always")
def no_feedback(state, params, sched, s, l, experts, outcomes):
    """The feedback hook of a strategy that asks for none (inlined away)."""
    return None


def prefetch_lists(sched, top_k, params, init, observe):
    """Every ``observe`` output of a replay, without the cache: ``(ptr, keys)`` in CSR form.

    Strategies without feedback see only ``(s, l, R, n)`` and the schedule, never the cache, so
    their wanted lists do not depend on capacity, eviction or hardware (sweeps may share them;
    tests compare them against the pure-Python references). A strategy with feedback reads the
    cache's outcomes, so it has no such lists: it is refused.
    """
    from ..errors import ConfigError
    from ..strategies import takes_feedback

    name = takes_feedback(observe)
    if name is not None:
        raise ConfigError(
            f"strategy {name!r} takes feedback from the cache, so its wanted lists depend on the cache and "
            "cannot be computed without one: replay it with record=True to see them"
        )
    return _prefetch_lists(sched, top_k, params, init, observe)


@njit(nogil=True)
def _prefetch_lists(sched, top_k, params, init, observe):
    num_layers = sched.num_layers
    num_experts = sched.num_experts
    state = init(num_layers, num_experts, top_k, params)
    out = np.empty(num_layers * num_experts, np.int64)
    positions = sched.r_ptr.shape[0] - 1
    ptr = np.zeros(positions + 1, np.int64)
    cap = max(16, positions * 4)
    keys = np.empty(cap, np.int64)
    n = 0
    for p in range(positions):
        s = p // num_layers
        l = p - s * num_layers
        lo = sched.r_ptr[p]
        hi = sched.r_ptr[p + 1]
        m = observe(state, params, sched, s, l, sched.r_experts[lo:hi], sched.r_counts[lo:hi], out)
        if n + m > cap:
            cap = max(cap * 2, n + m)
            grown = np.empty(cap, np.int64)
            grown[:n] = keys[:n]
            keys = grown
        keys[n : n + m] = out[:m]
        n += m
        ptr[p + 1] = n
    return ptr, keys[:n].copy()


# Indices into the ``config`` array every entry point takes.
CFG_CAPACITY = 0  # cache slots C (already capped at L * E); the demand-only path reads it
CFG_EVICTION = 1  # demand-only path: 0 = lru, 1 = belady, 2 = fifo
CFG_MAX_LOADS = 2  # prefetch loads allowed per observe call; < 0 = no cap
CFG_TOP_K = 3  # the trace's K, handed to the strategy's init
CFG_PER_STEP = 4  # 1 = fill per-step time and stall arrays
CFG_RECORD = 5  # 1 = record every access outcome and every wanted list
CFG_SINGLE = 6  # 1 = every R holds at most one expert (a faster path may be taken)
CFG_SIZE = 7

# Indices into the counters array the core returns.
N_HITS = 0
N_LATE = 1
N_MISSES = 2
N_PREFETCH_LOADS = 3
N_PREFETCH_USEFUL = 4
N_PREFETCH_WASTED = 5
N_STALL_NS = 6
N_TOTAL_NS = 7
N_RESIDENT_SUM = 8
N_PEAK_RESIDENT = 9
N_SAMPLES = 10
N_H2D_BYTES = 11  # bytes loaded, demand and prefetch (-1: the caller derives them)
N_PEAK_BYTES = 12  # largest resident bytes at an occupancy sample (-1: the caller derives them)
N_SIZE = 13

# Outcome codes of one demand access.
HIT = 0
LATE = 1
MISS = 2


@njit(nogil=True, inline="always")
def run_timeline(sched, cost, config, params, layout, ev_params, init, observe, policy, feedback):
    """Replay one configuration (SPEC sections 3 and 6).

    Parameters
    ----------
    sched : Schedule
    cost : tuple ``(load_ns, expert_ns, dense_ns)``: int64 (L,), int64 (L, B + 1), int64 (B + 1,)
        per layer, since a key's load and weight-read times follow its layer's expert size
    config : ndarray (CFG_SIZE,), int64 — see the ``CFG_*`` indices
    params : ndarray, float64 — the strategy's parameters
    layout : tuple ``(part_of_layer, part_off, budget, unit, key_bytes, pinned)``
        int64 (L,) partition of each layer; int64 (P + 1,) key-count offsets of the partitions;
        int64 (P,) budgets in the cache's unit; int64 (L,) a key's size in that unit per layer;
        int64 (L,) a key's bytes per layer; uint8 (L * E,) 1 for pinned keys
    ev_params : ndarray, float64 — the eviction policy's parameters
    init, observe : the strategy's hooks
    policy : :class:`~fastsim.eviction.base.Hooks`
    feedback : the strategy's feedback hook (:func:`no_feedback` for none), called after the
        demand of each position with its outcomes, before ``observe``

    Returns
    -------
    counters : ndarray (N_SIZE,), int64
    step_time, step_stall : ndarray (steps,) int64 nanoseconds, or empty
    outcome : ndarray (accesses,) int8 (HIT / LATE / MISS per ``R`` entry), or empty
    wanted_ptr, wanted_keys : every ``observe`` output in CSR form, or empty
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
    r_stamp = np.zeros(num_keys, np.int64)  # position + 1 while the key is in the current R
    prot_stamp = np.zeros(num_keys, np.int64)  # observe-call number while the key is protected
    used = np.zeros(budget.shape[0], np.int64)  # units resident per partition

    counters = np.zeros(N_SIZE, np.int64)
    step_time = np.zeros(num_steps if per_step else 0, np.int64)
    step_stall = np.zeros(num_steps if per_step else 0, np.int64)
    outcome = np.empty(r_experts.shape[0] if record else 0, np.int8)
    positions = num_steps * num_layers
    wanted_ptr = np.zeros(positions + 1 if record else 0, np.int64)
    wanted_cap = max(16, positions * 2) if record else 0
    wanted_keys = np.empty(wanted_cap, np.int64)
    n_wanted = 0

    hits = 0
    late = 0
    misses = 0
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
    now = 0
    link_free = 0
    call = 0
    tick = 0

    # pinned keys: resident and settled from the start, outside every policy's order
    for k in range(num_keys):
        if pinned[k]:
            lk = k // num_experts
            resident[k] = 1
            used[part_of_layer[lk]] += unit[lk]
            n_res += 1
            res_bytes += key_bytes[lk]

    for s in range(num_steps):
        step_begin = now
        for l in range(num_layers):
            p = s * num_layers + l
            g = now
            lo = r_ptr[p]
            hi = r_ptr[p + 1]
            base = l * num_experts
            part = part_of_layer[l]
            stamp = p + 1
            for j in range(lo, hi):
                r_stamp[base + r_experts[j]] = stamp
            policy.on_position(pstate, sched, p, l, lo, hi)
            # ---- 2. demand
            ready_max = g
            for j in range(lo, hi):
                key = base + r_experts[j]
                tick += 1
                if resident[key]:
                    if ready_at[key] <= g:
                        hits += 1
                        seen[j - lo] = HIT
                        if record:
                            outcome[j] = HIT
                    else:
                        late += 1
                        seen[j - lo] = LATE
                        if record:
                            outcome[j] = LATE
                    if pf_pending[key]:
                        pf_useful += 1
                        pf_pending[key] = 0
                    if not pinned[key]:
                        policy.on_access(pstate, key, part, tick)
                else:
                    misses += 1
                    seen[j - lo] = MISS
                    if record:
                        outcome[j] = MISS
                    while used[part] + unit[l] > budget[part]:
                        victim = policy.victim(pstate, part, (r_stamp, stamp, prot_stamp, -1, ready_at, g), True, tick)
                        if victim < 0:
                            raise ValueError("no victim for a demand load: the cache is below the working set")
                        vl = victim // num_experts
                        pf_wasted += pf_pending[victim]
                        resident[victim] = 0
                        pf_pending[victim] = 0
                        used[part] -= unit[vl]
                        n_res -= 1
                        res_bytes -= key_bytes[vl]
                        policy.on_evict(pstate, victim, part)
                    start = g if g > link_free else link_free
                    ready_at[key] = start + load_ns[l]
                    link_free = ready_at[key]
                    resident[key] = 1
                    used[part] += unit[l]
                    n_res += 1
                    res_bytes += key_bytes[l]
                    h2d_bytes += key_bytes[l]
                    policy.on_load(pstate, key, part, tick, True)
                if ready_at[key] > ready_max:
                    ready_max = ready_at[key]
            # ---- 3. prefetch
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
                    used[kpart] -= unit[vl]
                    n_res -= 1
                    res_bytes -= key_bytes[vl]
                    policy.on_evict(pstate, victim, kpart)
                if no_victim:
                    break
                prot_stamp[key] = call
                processed += 1
                if skipped:
                    # the victim is needed before the wanted key: keep it, skip this key
                    continue
                start = g if g > link_free else link_free
                ready_at[key] = start + load_ns[kl]
                link_free = ready_at[key]
                resident[key] = 1
                used[kpart] += unit[kl]
                n_res += 1
                res_bytes += key_bytes[kl]
                h2d_bytes += key_bytes[kl]
                policy.on_load(pstate, key, kpart, tick, False)
                pf_pending[key] = 1
                pf_loads += 1
                loads += 1
            # recency in reverse list order: the most wanted key ends the most recent
            for i in range(processed - 1, -1, -1):
                key = out[i]
                tick += 1
                if resident[key] and not pinned[key]:
                    policy.on_refresh(pstate, key, part_of_layer[key // num_experts], tick)
            policy.after_position(pstate, sched, p, l, lo, hi)
            # ---- 4. compute
            start = ready_max
            stall += start - g
            t = start + dense_ns[sched.active[s]]
            for j in range(lo, hi):
                t += expert_ns[l, r_counts[j]]
            now = t
            if per_step:
                step_stall[s] += start - g
            # ---- 5. occupancy
            resident_sum += n_res
            if n_res > peak:
                peak = n_res
            if res_bytes > peak_bytes:
                peak_bytes = res_bytes
        policy.after_step(pstate, sched, s)
        if per_step:
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
    return counters, step_time, step_stall, outcome, wanted_ptr, wanted_keys[:n_wanted]
