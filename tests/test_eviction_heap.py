"""The per-segment heap the heap-ordered policies (belady, score-aware, activation-aware) keep in
one int64 array: after any sequence of inserts, deletes, priority changes and victim searches,
every segment's heap holds exactly its members that are not parked, each parent ranks before its
children (larger priority, then larger second priority, then lower key), each key knows its
position, and each victim search returns what a plain scan of SPEC section 3's rule returns."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from fastsim.eviction.base import (
    C_PARKED, H_CTX, H_HEAP, H_MEMBER, H_OFF, H_PARK, H_POS, H_PRIO, H_PRIO2, H_SIZE, IN_HEAP, PARKED, heap_delete,
    heap_insert, heap_set, heap_state, heap_victim,
)

NUM_KEYS = 40
HALF = NUM_KEYS // 2  # two segments of 20 keys: deep enough for a removal to need a sift up


def rank(st_, k):
    return (-int(st_[H_PRIO, k]), -int(st_[H_PRIO2, k]), k)  # smallest leaves first


def check(st_, members):
    parked = [int(k) for k in st_[H_PARK, : int(st_[H_CTX, C_PARKED])]]
    assert len(set(parked)) == len(parked)
    for i, k in enumerate(parked):
        assert st_[H_MEMBER, k] == PARKED and st_[H_POS, k] == i
    for part, keys in members.items():
        off, size = int(st_[H_OFF, part]), int(st_[H_SIZE, part])
        heap = [int(k) for k in st_[H_HEAP, off:off + size]]
        assert sorted(heap + [k for k in parked if k in keys]) == sorted(keys)
        for i, k in enumerate(heap):
            assert st_[H_POS, k] == i and st_[H_MEMBER, k] == IN_HEAP
            if i:
                parent = heap[(i - 1) // 4]
                assert rank(st_, parent) < rank(st_, k), (heap, i)


def expected_victim(st_, keys, r_stamp, stamp, prot, call, ready, g, allow):
    ok = [k for k in keys if r_stamp[k] != stamp and prot[k] != call]
    settled = [k for k in ok if ready[k] <= g]
    pool = settled or (([k for k in ok if ready[k] > g]) if allow else [])
    return min(pool, key=lambda k: rank(st_, k)) if pool else -1


op = st.one_of(
    st.tuples(st.sampled_from(["insert", "insert", "delete", "set"]), st.integers(0, NUM_KEYS - 1),
              st.integers(-5, 5), st.integers(-3, 3)),
    # a victim search: (position stamp, call, time, demand?) and fresh eligibility marks
    st.tuples(st.just("victim"), st.integers(0, 1), st.tuples(st.integers(1, 3), st.integers(0, 2), st.integers(0, 4),
                                                              st.booleans()),
              st.integers(0, 2**31)),
)


@given(ops=st.lists(op, max_size=150))
def test_heap_order_and_victims_survive_any_sequence(ops):
    seg_off = np.array([0, HALF, NUM_KEYS], np.int64)
    st_ = heap_state(seg_off, NUM_KEYS + 1, 0)
    members = {0: set(), 1: set()}
    r_stamp = np.zeros(NUM_KEYS, np.int64)
    prot = np.zeros(NUM_KEYS, np.int64)
    ready = np.zeros(NUM_KEYS, np.int64)
    for item in ops:
        if item[0] == "victim":
            _, part, (stamp, call, g, demand), seed = item
            rng = np.random.default_rng(seed)
            call_seen = -1 if demand else call
            # the marks change only with the context, as in a replay: a new position, call or time
            if (stamp, call_seen, g) != (st_[H_CTX, 1], st_[H_CTX, 2], st_[H_CTX, 3]):
                r_stamp[:] = np.where(rng.random(NUM_KEYS) < 0.3, stamp, 0)
                prot[:] = np.where(rng.random(NUM_KEYS) < 0.3, call, -5)
                ready[:] = rng.integers(0, 6, NUM_KEYS)
            want = expected_victim(st_, members[part], r_stamp, stamp, prot, call_seen, ready, g, demand)
            got = heap_victim(st_, part, (r_stamp, stamp, prot, call_seen, ready, g), demand)
            assert got == want
        else:
            kind, key, prio, prio2 = item
            part = 0 if key < HALF else 1
            if kind == "insert" and key not in members[part]:
                st_[H_PRIO, key] = prio
                st_[H_PRIO2, key] = prio2
                heap_insert(st_, key, part)
                members[part].add(key)
            elif kind == "delete" and key in members[part]:
                heap_delete(st_, key)
                members[part].discard(key)
            elif kind == "set" and key in members[part]:
                heap_set(st_, key, prio, prio2)
        check(st_, members)


def test_a_removal_that_needs_a_sift_up():
    # inserted best first, each key stays where it lands: [100 | 50 90 90 90 | 40 40 40 40 (under 50)
    # | 85 (under the first 90)]. Removing a 40 moves the last key, 85, under 50: it must rise.
    prios = [100, 50, 90, 90, 90, 40, 40, 40, 40, 85]
    seg_off = np.array([0, NUM_KEYS], np.int64)
    st_ = heap_state(seg_off, NUM_KEYS + 1, 0)
    for key, prio in enumerate(prios):
        st_[H_PRIO, key] = prio
        heap_insert(st_, key, 0)
    assert st_[H_HEAP, :10].tolist() == list(range(10))
    heap_delete(st_, 5)
    check(st_, {0: set(range(10)) - {5}})
    assert st_[H_HEAP, 1] == 9  # 85 rose above 50


def test_a_parked_key_returns_when_its_context_ends():
    # key 0 leads the heap but is in the current R: the search parks it and returns key 1; the
    # next position's search finds it eligible again
    seg_off = np.array([0, NUM_KEYS], np.int64)
    st_ = heap_state(seg_off, NUM_KEYS + 1, 0)
    for key, prio in enumerate([9, 5, 1]):
        st_[H_PRIO, key] = prio
        heap_insert(st_, key, 0)
    r_stamp = np.zeros(NUM_KEYS, np.int64)
    prot = np.zeros(NUM_KEYS, np.int64)
    ready = np.zeros(NUM_KEYS, np.int64)
    r_stamp[0] = 1
    assert heap_victim(st_, 0, (r_stamp, 1, prot, -1, ready, 0), True) == 1
    assert st_[H_MEMBER, 0] == PARKED
    heap_set(st_, 0, 0, 0)  # its priority changes while parked: it returns at the new one
    assert heap_victim(st_, 0, (r_stamp, 2, prot, -1, ready, 0), True) == 1
    heap_set(st_, 1, -1, 0)
    assert heap_victim(st_, 0, (r_stamp, 3, prot, -1, ready, 0), True) == 2
    heap_delete(st_, 2)
    assert heap_victim(st_, 0, (r_stamp, 4, prot, -1, ready, 0), True) == 0
    check(st_, {0: {0, 1}})
