"""Eviction orders of the demand-only timelines: an array-based LRU list and a Belady max-heap
(the LRU list also serves the ``lru`` and ``fifo`` policies; the policies' heaps are in
``fastsim.eviction.base``).

Both work on dense keys and plain arrays. The LRU list is doubly linked through ``prv``/``nxt``
with a sentinel node ``head`` (``nxt[head]`` is the least recent key, ``prv[head]`` the most
recent), so every operation is O(1) without branches. The Belady heap is 4-ary (shallower than a
binary heap, and a node's children share a cache line), ordered by next demand position, farther
first, ties to the lower key.
"""
from numba import njit

__all__ = ["lru_unlink", "lru_push_mru", "heap_push", "heap_up", "heap_down"]


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
def _before(key_next, a, b):
    """Whether ``a`` is evicted before ``b``: farther next use, then the lower key."""
    na = key_next[a]
    nb = key_next[b]
    return na > nb or (na == nb and a < b)


@njit(nogil=True)
def heap_up(heap, hpos, key_next, i):
    """Restore the order after ``heap[i]``'s next use moved farther (or it was just placed)."""
    key = heap[i]
    while i > 0:
        parent = (i - 1) >> 2
        pk = heap[parent]
        if not _before(key_next, key, pk):
            break
        heap[i] = pk
        hpos[pk] = i
        i = parent
    heap[i] = key
    hpos[key] = i


@njit(nogil=True)
def heap_down(heap, hpos, key_next, i, size):
    """Restore the order after ``heap[i]``'s next use moved nearer (or it was just placed)."""
    key = heap[i]
    while True:
        c = 4 * i + 1
        if c >= size:
            break
        best = c
        end = c + 4 if c + 4 < size else size
        for d in range(c + 1, end):
            if _before(key_next, heap[d], heap[best]):
                best = d
        bk = heap[best]
        if not _before(key_next, bk, key):
            break
        heap[i] = bk
        hpos[bk] = i
        i = best
    heap[i] = key
    hpos[key] = i


@njit(nogil=True, inline="always")
def heap_push(heap, hpos, key_next, key, size):
    """Insert ``key``; returns the new size."""
    heap[size] = key
    heap_up(heap, hpos, key_next, size)
    return size + 1
