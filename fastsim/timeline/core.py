"""The timeline core (SPEC section 3): cache, FIFO host-to-device link, prefetching, compute.

One generic core, specialised per strategy: each strategy's cached entry point calls
:func:`run_timeline` with its own ``init``/``observe`` hooks, which numba inlines.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .._jit import kernel
from .evict import heap_push, heap_remove, heap_up, lru_push_mru, lru_unlink

__all__ = ["prefetch_lists", "make_entry"]


@njit(nogil=True)
def prefetch_lists(sched, top_k, params, init, observe):
    """Every ``observe`` output of a replay, without the cache: ``(ptr, keys)`` in CSR form.

    The strategies see only ``(s, l, R, n)`` and the schedule, never the cache, so their wanted
    lists do not depend on capacity, eviction or hardware; tests compare these lists against the
    pure-Python references.
    """
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


def make_entry(init, observe):
    """A jitted replay entry point for a user strategy (compiled once per process)."""

    @njit(nogil=True)
    def replay(sched, cost, config, params):
        return run_timeline(sched, cost, config, params, init, observe)

    return replay


# Indices into the ``config`` array every entry point takes.
CFG_CAPACITY = 0  # cache slots C (already capped at L * E)
CFG_EVICTION = 1  # 0 = lru, 1 = belady
CFG_MAX_LOADS = 2  # prefetch loads allowed per observe call; < 0 = no cap
CFG_TOP_K = 3  # the trace's K, handed to the strategy's init
CFG_PER_STEP = 4  # 1 = fill per-step time and stall arrays
CFG_RECORD = 5  # 1 = record every access outcome and every wanted list
CFG_SINGLE = 6  # 1 = every R holds at most one expert (a faster path may be taken)
CFG_SIZE = 7

EVICTION_CODES = {"lru": 0, "belady": 1}

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
N_SIZE = 11

# Outcome codes of one demand access.
HIT = 0
LATE = 1
MISS = 2


@njit(nogil=True, inline="always")
def _lru_victim(nxt, head, r_stamp, stamp, prot_stamp, call, ready_at, g, allow_in_flight):
    """The least recent key outside ``R`` and not protected by observe-call ``call``: a settled
    one, else (``allow_in_flight``) the least recent in flight; -1 when there is none."""
    fallback = -1
    k = nxt[head]
    while k != head:
        if r_stamp[k] != stamp and prot_stamp[k] != call:
            if ready_at[k] <= g:
                return k
            if allow_in_flight and fallback < 0:
                fallback = k
        k = nxt[k]
    return fallback


@njit(nogil=True)
def _belady_victim(heap, hpos, key_next, size, spill, r_stamp, stamp, prot_stamp, call, ready_at, g, allow_in_flight):
    """:func:`_lru_victim` by farthest next use. Pops ineligible keys off the heap until an
    eligible one tops it, then pushes them back; returns ``(victim, size)``, the victim still
    in the heap."""
    n_spill = 0
    victim = -1
    fallback = -1
    while size > 0:
        top = heap[0]
        if r_stamp[top] != stamp and prot_stamp[top] != call:
            if ready_at[top] <= g:
                victim = top
                break
            if allow_in_flight and fallback < 0:
                fallback = top
        spill[n_spill] = top
        n_spill += 1
        size = heap_remove(heap, hpos, key_next, top, size)
    for i in range(n_spill):
        size = heap_push(heap, hpos, key_next, spill[i], size)
    return (victim if victim >= 0 else fallback), size


@njit(nogil=True, inline="always")
def _evict(victim, resident, pf_pending, belady, heap, hpos, key_next, heap_size, prv, nxt):
    """Drop ``victim`` from the cache (the caller counts a pending prefetch as wasted first);
    returns the heap's new size."""
    resident[victim] = 0
    pf_pending[victim] = 0
    if belady:
        return heap_remove(heap, hpos, key_next, victim, heap_size)
    lru_unlink(prv, nxt, victim)
    return heap_size


@njit(nogil=True, inline="always")
def _load(key, g, link_free, load_ns, ready_at, resident, belady, heap, hpos, key_next, heap_size, prv, nxt, head):
    """Issue ``key``'s load at ``g`` on the FIFO link, as the most recent key (LRU) or by its
    next use (Belady); returns ``(link_free, heap_size)``."""
    start = g if g > link_free else link_free
    ready_at[key] = start + load_ns
    resident[key] = 1
    if belady:
        heap_size = heap_push(heap, hpos, key_next, key, heap_size)
    else:
        lru_push_mru(prv, nxt, key, head)
    return ready_at[key], heap_size


@njit(nogil=True, inline="always")
def run_timeline(sched, cost, config, params, init, observe):
    """Replay one configuration (SPEC section 3).

    Parameters
    ----------
    sched : Schedule
    cost : tuple ``(load_ns, expert_ns, dense_ns)``: int64, int64 (B + 1,), int64 (B + 1,)
    config : ndarray (CFG_SIZE,), int64 — see the ``CFG_*`` indices
    params : ndarray, float64 — the strategy's parameters
    init, observe : the strategy's hooks

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
    capacity = config[CFG_CAPACITY]
    belady = config[CFG_EVICTION] == 1
    max_loads = config[CFG_MAX_LOADS]
    per_step = config[CFG_PER_STEP] != 0
    record = config[CFG_RECORD] != 0
    load_ns = cost[0]
    expert_ns = cost[1]
    dense_ns = cost[2]
    r_ptr = sched.r_ptr
    r_experts = sched.r_experts
    r_counts = sched.r_counts

    state = init(num_layers, num_experts, config[CFG_TOP_K], params)
    out = np.empty(num_keys, np.int64)

    resident = np.zeros(num_keys, np.uint8)
    pf_pending = np.zeros(num_keys, np.uint8)
    ready_at = np.zeros(num_keys, np.int64)
    r_stamp = np.zeros(num_keys, np.int64)  # position + 1 while the key is in the current R
    prot_stamp = np.zeros(num_keys, np.int64)  # observe-call number while the key is protected
    # LRU: doubly linked list over keys, sentinel at num_keys (least recent after it)
    head = num_keys
    prv = np.empty(num_keys + 1, np.int64)
    nxt = np.empty(num_keys + 1, np.int64)
    prv[head] = head
    nxt[head] = head
    # Belady: next demand position per key and a max-heap of resident keys by it
    if belady:
        key_next = sched.key_first.copy()
        heap = np.empty(num_keys, np.int64)
        hpos = np.zeros(num_keys, np.int64)
        spill = np.empty(num_keys, np.int64)
    else:
        key_next = np.empty(0, np.int64)
        heap = np.empty(0, np.int64)
        hpos = np.empty(0, np.int64)
        spill = np.empty(0, np.int64)
    heap_size = 0

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
    now = 0
    link_free = 0
    call = 0

    for s in range(num_steps):
        step_begin = now
        for l in range(num_layers):
            p = s * num_layers + l
            g = now
            lo = r_ptr[p]
            hi = r_ptr[p + 1]
            base = l * num_experts
            stamp = p + 1
            for j in range(lo, hi):
                r_stamp[base + r_experts[j]] = stamp
            # ---- 2. demand
            ready_max = g
            for j in range(lo, hi):
                key = base + r_experts[j]
                if resident[key]:
                    if ready_at[key] <= g:
                        hits += 1
                        if record:
                            outcome[j] = HIT
                    else:
                        late += 1
                        if record:
                            outcome[j] = LATE
                    if pf_pending[key]:
                        pf_useful += 1
                        pf_pending[key] = 0
                    if not belady:
                        lru_unlink(prv, nxt, key)
                        lru_push_mru(prv, nxt, key, head)
                else:
                    misses += 1
                    if record:
                        outcome[j] = MISS
                    if n_res >= capacity:
                        # capacity >= |R| guarantees a victim outside R exists here
                        if belady:
                            victim, heap_size = _belady_victim(
                                heap, hpos, key_next, heap_size, spill, r_stamp, stamp, prot_stamp, -1,
                                ready_at, g, True,
                            )
                        else:
                            victim = _lru_victim(nxt, head, r_stamp, stamp, prot_stamp, -1, ready_at, g, True)
                        pf_wasted += pf_pending[victim]
                        heap_size = _evict(victim, resident, pf_pending, belady, heap, hpos, key_next, heap_size, prv, nxt)
                        n_res -= 1
                    link_free, heap_size = _load(
                        key, g, link_free, load_ns, ready_at, resident, belady, heap, hpos, key_next, heap_size, prv, nxt,
                        head,
                    )
                    n_res += 1
                if ready_at[key] > ready_max:
                    ready_max = ready_at[key]
            # ---- 3. prefetch
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
                if n_res >= capacity:
                    if belady:
                        victim, heap_size = _belady_victim(
                            heap, hpos, key_next, heap_size, spill, r_stamp, stamp, prot_stamp, call,
                            ready_at, g, False,
                        )
                    else:
                        victim = _lru_victim(nxt, head, r_stamp, stamp, prot_stamp, call, ready_at, g, False)
                    if victim < 0:
                        break
                    if belady and key_next[victim] < key_next[key]:
                        # the victim is needed before the wanted key: keep it, skip this key
                        prot_stamp[key] = call
                        processed += 1
                        continue
                    pf_wasted += pf_pending[victim]
                    heap_size = _evict(victim, resident, pf_pending, belady, heap, hpos, key_next, heap_size, prv, nxt)
                    n_res -= 1
                link_free, heap_size = _load(
                    key, g, link_free, load_ns, ready_at, resident, belady, heap, hpos, key_next, heap_size, prv, nxt,
                    head,
                )
                n_res += 1
                pf_pending[key] = 1
                pf_loads += 1
                loads += 1
                prot_stamp[key] = call
                processed += 1
            if not belady:
                # recency in reverse list order: the most wanted key ends the most recent
                for i in range(processed - 1, -1, -1):
                    key = out[i]
                    if resident[key]:
                        lru_unlink(prv, nxt, key)
                        lru_push_mru(prv, nxt, key, head)
            else:
                # R's keys move to their next demand only now, so that during this position's
                # demand and prefetch they rank last (they may not be evicted anyway)
                for j in range(lo, hi):
                    key = base + r_experts[j]
                    # a demand moves the key's next use later: it can only rise in the heap
                    key_next[key] = sched.r_next[j]
                    heap_up(heap, hpos, key_next, hpos[key])
            # ---- 4. compute
            start = ready_max
            stall += start - g
            t = start + dense_ns[sched.active[s]]
            for j in range(lo, hi):
                t += expert_ns[r_counts[j]]
            now = t
            if per_step:
                step_stall[s] += start - g
            # ---- 5. occupancy
            resident_sum += n_res
            if n_res > peak:
                peak = n_res
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
    return counters, step_time, step_stall, outcome, wanted_ptr, wanted_keys[:n_wanted]
