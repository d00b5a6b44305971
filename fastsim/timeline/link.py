"""The host-to-device link of the execution timeline (SPEC section 7, ``docs/model.md``,
"Transfers and the link"), and the host-memory tier in front of it.

Transfers wait in two FIFO queues (demand transfers, prefetch transfers; under ``link="fifo"``
everything goes through the first, so issue order is start order). The link decides lazily, in
the order the replay's operations happen: :func:`advance_before` makes every start it would make
before a time, :func:`wait_for` the starts until one key's transfer has begun. A transfer's end
is known the moment it starts and is written to ``ready_at`` of its key while that transfer is
still the key's current one; until then the key reads as in flight (``UNSTARTED``).

Queues are ring buffers in one int64 array each (rows ``Q_*``), their counters and the link's
scalars in one int64 array (``LK_*``): a single array per structure keeps numba from refcounting
a tuple of arrays on every call (see ``docs/benchmarks.md``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "UNSTARTED", "DEMAND", "PREFETCH", "ZERO_COPY", "link_state", "queue_state", "grow_queue", "enqueue",
    "predicted_end", "note_demand_issue", "advance_before", "wait_for", "inflight_prefetches", "host_state", "host_fill",
    "host_lookup",
]

#: ``ready_at`` of a key whose transfer is queued but not started: later than any clock value.
UNSTARTED = np.iinfo(np.int64).max

# transfer kinds
DEMAND = 0
PREFETCH = 1
ZERO_COPY = 2

# rows of a queue array
Q_KEY = 0
Q_ISSUE = 1
Q_EARLY = 2
Q_DUR = 3
Q_TID = 4
Q_KIND = 5
Q_ROWS = 6

# link scalars
LK_FREE = 0  # end of the last started transfer (0 before any)
LK_DHEAD = 1  # demand queue: items popped so far
LK_DTAIL = 2  # demand queue: items pushed so far
LK_PHEAD = 3
LK_PTAIL = 4
LK_LAST_KIND = 5  # kind of the last started transfer (-1 before any)
LK_TAIL = 6  # end the next demand transfer queues behind (demand-first: the last demand's; fifo: the last's)
LK_TID = 7  # next transfer id
LK_DEMAND_FIRST = 8
LK_PF_PENDING = 9  # prefetch transfers queued, not started
LK_SIZE = 10


def link_state(demand_first: bool) -> np.ndarray:
    lk = np.zeros(LK_SIZE, np.int64)
    lk[LK_LAST_KIND] = -1
    lk[LK_DEMAND_FIRST] = 1 if demand_first else 0
    return lk


@njit(nogil=True, inline="always")
def queue_state(capacity):
    return np.empty((Q_ROWS, capacity), np.int64)


@njit(nogil=True)
def grow_queue(q, lk, head_i, tail_i):
    """Twice the room, the pending items laid out from index 0 (called when a queue is full)."""
    cap = q.shape[1]
    grown = np.empty((Q_ROWS, 2 * cap), np.int64)
    head = lk[head_i]
    n = lk[tail_i] - head
    for i in range(n):
        src = (head + i) % cap
        for r in range(Q_ROWS):
            grown[r, i] = q[r, src]
    lk[head_i] = 0
    lk[tail_i] = n
    return grown


@njit(nogil=True, inline="always")
def enqueue(q, lk, tail_i, key, issue, early, dur, kind, cur_t, ready_at, zc_done):
    """Queue one transfer. A load becomes its key's current transfer (the key reads as in flight
    until it starts); a zero-copy read only marks ``zc_done[key]`` unstarted (no residency)."""
    cap = q.shape[1]
    i = lk[tail_i] % cap
    tid = lk[LK_TID]
    lk[LK_TID] = tid + 1
    q[Q_KEY, i] = key
    q[Q_ISSUE, i] = issue
    q[Q_EARLY, i] = early
    q[Q_DUR, i] = dur
    q[Q_TID, i] = tid
    q[Q_KIND, i] = kind
    lk[tail_i] += 1
    if kind == PREFETCH:
        lk[LK_PF_PENDING] += 1
    # fifo: nothing can start ahead of it, so its end is known now (section 3's ready_at);
    # demand-first: unknown until the link starts it
    known = predicted_end(lk, issue, early, dur) if lk[LK_DEMAND_FIRST] == 0 else UNSTARTED
    if kind == ZERO_COPY:
        zc_done[key] = known
    else:
        cur_t[key] = tid
        ready_at[key] = known
    return tid


@njit(nogil=True, inline="always")
def predicted_end(lk, g, early, dur):
    """When a demand transfer issued now at ``g`` would end: behind the running transfer and
    every pending demand transfer (demand-first), or every pending transfer (fifo). Exact:
    nothing can start ahead of it later."""
    start = g
    if lk[LK_FREE] > start:
        start = lk[LK_FREE]
    if lk[LK_TAIL] > start:
        start = lk[LK_TAIL]
    if early > start:
        start = early
    return start + dur


@njit(nogil=True, inline="always")
def note_demand_issue(lk, end):
    if end > lk[LK_TAIL]:
        lk[LK_TAIL] = end


@njit(nogil=True, inline="always")
def _pick(dq, pq, lk):
    """``(queue, decision time)`` of the link's next start: 0 demand, 1 prefetch, -1 none."""
    nd = lk[LK_DTAIL] - lk[LK_DHEAD]
    npf = lk[LK_PTAIL] - lk[LK_PHEAD]
    if nd == 0 and npf == 0:
        return -1, 0
    big = UNSTARTED
    di = dq[Q_ISSUE, lk[LK_DHEAD] % dq.shape[1]] if nd > 0 else big
    pi = pq[Q_ISSUE, lk[LK_PHEAD] % pq.shape[1]] if npf > 0 else big
    first = di if di < pi else pi
    t = lk[LK_FREE] if lk[LK_FREE] > first else first
    if di <= t:
        return 0, t
    return 1, t


@njit(nogil=True, inline="always")
def _start(q, lk, head_i, t, cur_t, ready_at, zc_done):
    """Start the head of a queue at decision time ``t``; returns ``(key, tid, end)``."""
    i = lk[head_i] % q.shape[1]
    lk[head_i] += 1
    start = t if t > q[Q_EARLY, i] else q[Q_EARLY, i]
    end = start + q[Q_DUR, i]
    lk[LK_FREE] = end
    lk[LK_LAST_KIND] = q[Q_KIND, i]
    if q[Q_KIND, i] == PREFETCH:
        lk[LK_PF_PENDING] -= 1
    key = q[Q_KEY, i]
    tid = q[Q_TID, i]
    if q[Q_KIND, i] == ZERO_COPY:
        zc_done[key] = end
    elif cur_t[key] == tid:
        ready_at[key] = end
    return key, tid, end


@njit(nogil=True, inline="always")
def advance_before(dq, pq, lk, g, cur_t, ready_at, zc_done):
    """Every start the link makes at a time before ``g``."""
    while True:
        which, t = _pick(dq, pq, lk)
        if which < 0 or t >= g:
            return
        if which == 0:
            _start(dq, lk, LK_DHEAD, t, cur_t, ready_at, zc_done)
        else:
            _start(pq, lk, LK_PHEAD, t, cur_t, ready_at, zc_done)


@njit(nogil=True, inline="always")
def wait_for(dq, pq, lk, watch, key, cur_t, ready_at, zc_done):
    """Starts until ``watch[key]`` (``ready_at`` for a load, ``zc_done`` for a zero-copy read)
    is known: the transfer has begun and that is its end."""
    while watch[key] == UNSTARTED:
        which, t = _pick(dq, pq, lk)
        if which < 0:
            raise ValueError("internal: a key waits for a transfer that is not queued")
        if which == 0:
            _start(dq, lk, LK_DHEAD, t, cur_t, ready_at, zc_done)
        else:
            _start(pq, lk, LK_PHEAD, t, cur_t, ready_at, zc_done)


@njit(nogil=True, inline="always")
def inflight_prefetches(dq, pq, lk, g):
    """Prefetch transfers not ended at ``g``: the queued ones, and the running transfer if it is
    one (the link is serial, so at most one started transfer is still running at ``g``)."""
    n = lk[LK_PF_PENDING]
    if lk[LK_LAST_KIND] == PREFETCH and lk[LK_FREE] > g:
        n += 1
    return n


# ---- host memory: an LRU list over keys (SPEC section 7, memory tiers) ----

HS_HEAD = 0  # least recent key, -1 when empty
HS_TAIL = 1  # most recent key
HS_USED = 2  # bytes held
HS_CAP = 3  # host_bytes
HS_NVME_FREE = 4  # when the NVMe link next idles
HS_SIZE = 5


def host_state(num_keys: int, host_bytes: int):
    """``(links, scalars)``: ``links`` rows 0 prev, 1 next, 2 present flag, 3 when the key's
    host copy is ready (the end of its NVMe read; 0 for the keys held at time 0)."""
    links = np.full((4, num_keys), -1, np.int64)
    links[2, :] = 0
    links[3, :] = 0
    hs = np.zeros(HS_SIZE, np.int64)
    hs[HS_HEAD] = -1
    hs[HS_TAIL] = -1
    hs[HS_CAP] = host_bytes
    return links, hs


@njit(nogil=True, inline="always")
def _host_append(links, hs, key, nbytes):
    links[0, key] = hs[HS_TAIL]
    links[1, key] = -1
    if hs[HS_TAIL] >= 0:
        links[1, hs[HS_TAIL]] = key
    else:
        hs[HS_HEAD] = key
    hs[HS_TAIL] = key
    links[2, key] = 1
    hs[HS_USED] += nbytes


@njit(nogil=True, inline="always")
def _host_unlink(links, hs, key):
    prev = links[0, key]
    nxt = links[1, key]
    if prev >= 0:
        links[1, prev] = nxt
    else:
        hs[HS_HEAD] = nxt
    if nxt >= 0:
        links[0, nxt] = prev
    else:
        hs[HS_TAIL] = prev
    links[2, key] = 0


@njit(nogil=True)
def host_fill(links, hs, key_bytes, num_experts):
    """Time 0: the lowest-numbered keys that fit, recency in key order."""
    num_keys = links.shape[1]
    for k in range(num_keys):
        nb = key_bytes[k // num_experts]
        if hs[HS_USED] + nb > hs[HS_CAP]:
            break
        _host_append(links, hs, k, nb)


@njit(nogil=True, inline="always")
def host_lookup(links, hs, key, g, key_bytes, num_experts, nvme_ns, counts):
    """The host copy of ``key`` for a transfer or CPU run issued at ``g``: returns when it is
    ready (``g`` on a host hit, else the end of its NVMe read). ``counts[0]`` host hits,
    ``counts[1]`` NVMe loads. A key is held from its lookup on: a later lookup while its read
    is under way is a host hit that waits for the read to end."""
    nb = key_bytes[key // num_experts]
    if links[2, key]:
        counts[0] += 1
        _host_unlink(links, hs, key)
        hs[HS_USED] -= nb
        _host_append(links, hs, key, nb)
        return g if g > links[3, key] else links[3, key]
    counts[1] += 1
    start = g if g > hs[HS_NVME_FREE] else hs[HS_NVME_FREE]
    done = start + nvme_ns[key // num_experts]
    hs[HS_NVME_FREE] = done
    while hs[HS_USED] + nb > hs[HS_CAP] and hs[HS_HEAD] >= 0:
        old = hs[HS_HEAD]
        _host_unlink(links, hs, old)
        hs[HS_USED] -= key_bytes[old // num_experts]
    _host_append(links, hs, key, nb)
    links[3, key] = done
    return done
