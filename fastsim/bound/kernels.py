"""The lower bound's kernels (``docs/bounds.md``): per-position compute, the fewest loads any
policy makes over a window of positions, and the chain of inequalities that turns them into a
lower bound on every position's compute start.

Everything works on plain arrays: the schedule's CSR demand sets with the pinned keys removed,
one partition per layer (``part_of_layer``), each partition's free slots (``cap``: its slots
minus its pinned keys) and each partition's shortest load (``part_load``).

The fewest loads over the positions ``a + 1 .. r`` (``W(a, r)`` in ``docs/bounds.md``) come from
Belady's rule applied to whole demand sets: a miss evicts the cached key, not demanded at this
position, whose next demand is farthest. Each window starts from the best cache any policy could
hold after position ``a``: ``R_a`` plus the keys demanded soonest after ``a``. A max-heap per
partition holds ``(next use, key)`` pairs; stale pairs are skipped when popped (lazy deletion), so
every entry of ``R`` costs one push.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel

__all__ = ["position_compute", "demand_without_pins", "window_loads", "chain_bound"]

NEVER = np.iinfo(np.int64).max


@kernel
def position_compute(r_ptr, r_counts, active, num_layers, expert_ns, dense_ns):
    """``c[p] = dense_ns(b) + sum over R of expert_ns(n_e)``: the compute of position ``p``,
    which no policy changes (SPEC section 3, step 4)."""
    positions = r_ptr.shape[0] - 1
    c = np.zeros(positions, np.int64)
    for p in range(positions):
        s = p // num_layers
        l = p - s * num_layers
        t = dense_ns[active[s]]
        for j in range(r_ptr[p], r_ptr[p + 1]):
            t += expert_ns[l, r_counts[j]]
        c[p] = t
    return c


@kernel
def demand_without_pins(r_ptr, r_experts, num_layers, num_experts, pinned):
    """The demand sets as keys, pinned keys dropped (they are always resident and never loaded),
    with each entry's next demand position (``NEVER`` when there is none): ``(ptr, keys, nxt)``."""
    positions = r_ptr.shape[0] - 1
    ptr = np.zeros(positions + 1, np.int64)
    keys = np.empty(r_experts.shape[0], np.int64)
    n = 0
    for p in range(positions):
        base = (p % num_layers) * num_experts
        for j in range(r_ptr[p], r_ptr[p + 1]):
            k = base + r_experts[j]
            if not pinned[k]:
                keys[n] = k
                n += 1
        ptr[p + 1] = n
    keys = keys[:n].copy()
    nxt = np.empty(n, np.int64)
    last = np.full(num_layers * num_experts, NEVER, np.int64)
    for p in range(positions - 1, -1, -1):
        for j in range(ptr[p + 1] - 1, ptr[p] - 1, -1):
            k = keys[j]
            nxt[j] = last[k]
            last[k] = p
    return ptr, keys, nxt


@kernel(inline="always")
def _higher(prio, key, i, j):
    """Whether heap slot ``i`` ranks above slot ``j``: farther next use, then the higher key."""
    return prio[i] > prio[j] or (prio[i] == prio[j] and key[i] > key[j])


@kernel(inline="always")
def _swap(prio, key, i, j):
    a = prio[i]
    prio[i] = prio[j]
    prio[j] = a
    b = key[i]
    key[i] = key[j]
    key[j] = b


@kernel
def _push(prio, key, base, size, p, k):
    """Push ``(p, k)`` onto the heap stored at ``prio[base : base + size]``; returns the new size."""
    i = base + size
    prio[i] = p
    key[i] = k
    while i > base:
        parent = base + (i - base - 1) // 2
        if not _higher(prio, key, i, parent):
            break
        _swap(prio, key, i, parent)
        i = parent
    return size + 1


@kernel
def _pop(prio, key, base, size):
    """Remove the top of the heap at ``base``; returns the new size (the top is read before)."""
    size -= 1
    if size == 0:
        return 0
    prio[base] = prio[base + size]
    key[base] = key[base + size]
    i = base
    end = base + size
    while True:
        a = base + 2 * (i - base) + 1
        if a >= end:
            break
        b = a + 1
        top = a
        if b < end and _higher(prio, key, b, a):
            top = b
        if not _higher(prio, key, top, i):
            break
        _swap(prio, key, i, top)
        i = top
    return size


@kernel
def window_loads(a, end, ptr, keys, nxt, part_of_key, cap, part_load, heap_off, hprio, hkey, hsize,
                 size, in_cache, cur, seen, run, out):
    """``out[r - a - 1] = W(a, r)`` in nanoseconds for ``r = a + 1 .. end``: the least link time
    any policy spends on loads issued after position ``a`` that serve demands up to ``r``.

    ``a = -1`` starts from the empty cache (nothing but the pinned keys, already removed); a
    position ``a >= 0`` starts from the best cache after ``a``: ``R_a`` plus, per partition, the
    keys demanded soonest in ``a + 1 .. end`` while slots remain. ``run`` and ``run + 1`` are
    fresh stamps for ``in_cache``/``seen`` (so nothing is cleared between calls). Returns whether any load was
    needed (when none is, ``out`` is all zeros).
    """
    parts = cap.shape[0]
    for q in range(parts):
        hsize[q] = 0
        size[q] = 0
    if a >= 0:
        # a first pass only counts: most windows of a roomy cache need no load at all
        for j in range(ptr[a], ptr[a + 1]):
            seen[keys[j]] = run
            size[part_of_key[keys[j]]] += 1
        overflow = False
        for r in range(a + 1, end + 1):
            for j in range(ptr[r], ptr[r + 1]):
                k = keys[j]
                if seen[k] != run:
                    seen[k] = run
                    q = part_of_key[k]
                    size[q] += 1
                    if size[q] > cap[q]:
                        overflow = True
        if not overflow:
            for r in range(a + 1, end + 1):
                out[r - a - 1] = 0
            return False
        # the best cache after a: R_a, then the keys demanded soonest while slots remain
        run += 1
        for q in range(parts):
            size[q] = 0
        for j in range(ptr[a], ptr[a + 1]):
            k = keys[j]
            q = part_of_key[k]
            in_cache[k] = run
            seen[k] = run
            cur[k] = nxt[j]
            size[q] += 1
            hsize[q] = _push(hprio, hkey, heap_off[q], hsize[q], nxt[j], k)
        for r in range(a + 1, end + 1):
            for j in range(ptr[r], ptr[r + 1]):
                k = keys[j]
                if seen[k] == run:
                    continue
                seen[k] = run
                q = part_of_key[k]
                if size[q] < cap[q]:
                    in_cache[k] = run
                    cur[k] = r
                    size[q] += 1
                    hsize[q] = _push(hprio, hkey, heap_off[q], hsize[q], r, k)
    total = 0
    for r in range(a + 1, end + 1):
        lo = ptr[r]
        hi = ptr[r + 1]
        for j in range(lo, hi):
            k = keys[j]
            if in_cache[k] == run:
                continue
            q = part_of_key[k]
            total += part_load[q]
            if size[q] >= cap[q]:
                # the farthest next use among cached keys outside R_r: keys of R_r already cached
                # rank r, below every key outside R_r, and the missing ones are not in the heap yet
                base = heap_off[q]
                while True:
                    victim = hkey[base]
                    valid = in_cache[victim] == run and cur[victim] == hprio[base]
                    hsize[q] = _pop(hprio, hkey, base, hsize[q])
                    if valid:
                        break
                in_cache[victim] = 0
                size[q] -= 1
            in_cache[k] = run
            size[q] += 1
        for j in range(lo, hi):
            k = keys[j]
            q = part_of_key[k]
            cur[k] = nxt[j]
            hsize[q] = _push(hprio, hkey, heap_off[q], hsize[q], nxt[j], k)
        out[r - a - 1] = total
    return total > 0


@kernel
def chain_bound(ptr, keys, nxt, c, part_of_key, cap, part_load, horizon):
    """The lower bound on every position's compute start, ``lb`` (``docs/bounds.md``, "The
    chain"), and on the total time: ``(total_ns, lb, prefix_ns)``.

    ``lb[p] >= lb[p - 1] + c[p - 1]`` (compute is serial); ``lb[p] >= W(-1, p)`` (the loads
    from the empty cache, ``prefix_ns``); ``lb[r] >= lb[a] + c[a] + W(a, r)`` for
    ``a < r <= a + horizon`` (loads issued after ``a`` start no earlier than its end).
    """
    positions = c.shape[0]
    lb = np.zeros(positions, np.int64)
    prefix = np.zeros(positions, np.int64)
    if positions == 0:
        return np.int64(0), lb, prefix
    num_keys = part_of_key.shape[0]
    parts = cap.shape[0]
    # heap room per partition: one push per entry of its keys, plus a full initial cache
    room = np.zeros(parts, np.int64)
    for j in range(keys.shape[0]):
        room[part_of_key[keys[j]]] += 1
    heap_off = np.zeros(parts + 1, np.int64)
    for q in range(parts):
        heap_off[q + 1] = heap_off[q] + room[q] + min(cap[q], num_keys) + 1
    hprio = np.empty(heap_off[parts], np.int64)
    hkey = np.empty(heap_off[parts], np.int64)
    hsize = np.zeros(parts, np.int64)
    size = np.zeros(parts, np.int64)
    in_cache = np.zeros(num_keys, np.int64)
    cur = np.zeros(num_keys, np.int64)
    seen = np.zeros(num_keys, np.int64)
    run = 1
    window_loads(-1, positions - 1, ptr, keys, nxt, part_of_key, cap, part_load, heap_off, hprio, hkey, hsize,
                 size, in_cache, cur, seen, run, prefix)
    for p in range(positions):
        lb[p] = prefix[p]
    span = min(horizon, positions - 1)
    out = np.zeros(max(span, 1), np.int64)
    for a in range(positions):
        if a > 0 and lb[a - 1] + c[a - 1] > lb[a]:
            lb[a] = lb[a - 1] + c[a - 1]
        end = min(positions - 1, a + span)
        if end <= a:
            continue
        run += 2
        if not window_loads(a, end, ptr, keys, nxt, part_of_key, cap, part_load, heap_off, hprio, hkey, hsize,
                            size, in_cache, cur, seen, run, out):
            continue
        start = lb[a] + c[a]
        for r in range(a + 1, end + 1):
            v = start + out[r - a - 1]
            if v > lb[r]:
                lb[r] = v
    return lb[positions - 1] + c[positions - 1], lb, prefix
