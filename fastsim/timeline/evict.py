"""Eviction orders of the demand-only timelines: an array-based LRU list and a Belady max-heap
(the LRU list also serves the ``lru`` and ``fifo`` policies; the policies' heaps are in
``fastsim.eviction.base``).

Both work on dense keys and plain arrays. The LRU list is doubly linked through ``prv``/``nxt``
with a sentinel node ``head`` (``nxt[head]`` is the least recent key, ``prv[head]`` the most
recent), so every operation is O(1) without branches. The Belady heap is 4-ary (shallower than a
binary heap, and a node's children share a cache line), ordered by next demand position, farther
first, ties to the lower key; each entry packs both into one integer (:func:`heap_entry`), so a
sift compares the heap's own values instead of looking up every key's next use.
"""
from numba import njit

__all__ = ["lru_unlink", "lru_push_mru", "heap_shape", "heap_entry", "heap_key", "heap_push", "heap_up", "heap_down"]


@njit(nogil=True, inline="always")
def lru_unlink(prv, nxt, key):
    a = prv[key]
    b = nxt[key]
    nxt[a] = b
    prv[b] = a


@njit(nogil=True, inline="always")
def lru_push_mru(prv, nxt, key, head):
    last = prv[head]
    nxt[last] = key
    prv[key] = last
    nxt[key] = head
    prv[head] = key


@njit(nogil=True, inline="always")
def heap_shape(num_keys, positions):
    """``(shift, mask, never)`` of the packed Belady heap: a key's entry is
    ``min(next use, never) << shift | (mask - key)``, so one integer comparison orders farther
    next use first, then the lower key, and the heap reads no other array."""
    shift = 1
    while (1 << shift) <= num_keys:
        shift += 1
    if positions >= (1 << (62 - shift)):
        raise ValueError("the trace has too many positions for the Belady heap's packed entries")
    return shift, (1 << shift) - 1, positions


@njit(nogil=True, inline="always")
def heap_entry(next_use, key, shift, mask, never):
    """The packed entry of ``key`` with its next use (:data:`~fastsim.timeline.schedule.NEVER`
    becomes ``never``, one past every position, which keeps the order)."""
    n = next_use if next_use < never else never
    return (n << shift) | (mask - key)


@njit(nogil=True, inline="always")
def heap_key(entry, mask):
    return mask - (entry & mask)


@njit(nogil=True, inline="always")
def heap_up(heap, hpos, i, mask):
    """Restore the order after ``heap[i]`` grew (its next use moved farther, or it was just placed)."""
    v = heap[i]
    while i > 0:
        parent = (i - 1) >> 2
        pv = heap[parent]
        if pv >= v:
            break
        heap[i] = pv
        hpos[heap_key(pv, mask)] = i
        i = parent
    heap[i] = v
    hpos[heap_key(v, mask)] = i


@njit(nogil=True, inline="always")
def heap_down(heap, hpos, i, size, mask):
    """Restore the order after ``heap[i]`` shrank (or was just placed at the root)."""
    v = heap[i]
    while True:
        c = 4 * i + 1
        if c >= size:
            break
        best = c
        bv = heap[c]
        end = c + 4 if c + 4 < size else size
        for d in range(c + 1, end):
            if heap[d] > bv:
                best = d
                bv = heap[d]
        if bv <= v:
            break
        heap[i] = bv
        hpos[heap_key(bv, mask)] = i
        i = best
    heap[i] = v
    hpos[heap_key(v, mask)] = i


@njit(nogil=True, inline="always")
def heap_push(heap, hpos, entry, size, mask):
    """Insert a packed entry; returns the new size."""
    heap[size] = entry
    heap_up(heap, hpos, size, mask)
    return size + 1
