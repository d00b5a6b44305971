"""The per-partition heap the heap-ordered policies (belady, lfu) keep in one int64 array:
after any sequence of inserts, deletes and priority changes, every partition's heap holds exactly
its members, each parent ranks before its children (larger priority, then lower key), and each
key knows its position."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from fastsim.eviction.base import H_HEAP, H_OFF, H_POS, H_PRIO, H_SIZE, heap_delete, heap_insert, heap_set, heap_state

NUM_KEYS = 40
HALF = NUM_KEYS // 2  # two partitions of 20 keys: deep enough for a removal to need a sift up


def check(st_, members):
    for part, keys in members.items():
        off, size = int(st_[H_OFF, part]), int(st_[H_SIZE, part])
        heap = [int(k) for k in st_[H_HEAP, off:off + size]]
        assert sorted(heap) == sorted(keys)
        for i, k in enumerate(heap):
            assert st_[H_POS, k] == i
            if i:
                parent = heap[(i - 1) // 4]
                pp, pk = st_[H_PRIO, parent], st_[H_PRIO, k]
                assert pp > pk or (pp == pk and parent < k), (heap, i)


@given(ops=st.lists(st.tuples(st.sampled_from(["insert", "insert", "delete", "set"]), st.integers(0, NUM_KEYS - 1),
                              st.integers(-20, 20)), max_size=200))
def test_heap_order_survives_any_sequence(ops):
    part_off = np.array([0, HALF, NUM_KEYS], np.int64)
    st_ = heap_state(part_off, NUM_KEYS, 0)
    members = {0: set(), 1: set()}
    for op, key, prio in ops:
        part = 0 if key < HALF else 1
        if op == "insert" and key not in members[part]:
            st_[H_PRIO, key] = prio
            heap_insert(st_, key, part)
            members[part].add(key)
        elif op == "delete" and key in members[part]:
            heap_delete(st_, key, part)
            members[part].discard(key)
        elif op == "set" and key in members[part]:
            heap_set(st_, key, part, prio)
        check(st_, members)


def test_a_removal_that_needs_a_sift_up():
    # inserted best first, each key stays where it lands: [100 | 50 90 90 90 | 40 40 40 40 (under 50)
    # | 85 (under the first 90)]. Removing a 40 moves the last key, 85, under 50: it must rise.
    prios = [100, 50, 90, 90, 90, 40, 40, 40, 40, 85]
    part_off = np.array([0, NUM_KEYS], np.int64)
    st_ = heap_state(part_off, NUM_KEYS, 0)
    for key, prio in enumerate(prios):
        st_[H_PRIO, key] = prio
        heap_insert(st_, key, 0)
    assert st_[H_HEAP, :10].tolist() == list(range(10))
    heap_delete(st_, 5, 0)
    check(st_, {0: set(range(10)) - {5}})
    assert st_[H_HEAP, 1] == 9  # 85 rose above 50
