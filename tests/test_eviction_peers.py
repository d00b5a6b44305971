"""Peer tests of the eviction policies against libCacheSim (issue: cache organisation).

At top-1, batch 1, on-demand, nothing is ever late or in flight at a demand (see
``test_peer_libcachesim.py``), so a replay is a plain cache over the flattened key stream:

- ``fifo`` and ``lfu`` hits equal libCacheSim's ``FIFO`` and ``LFU`` on that stream (libCacheSim's
  LFU counts an object's requests while cached, a miss's insertion as 1, and within a frequency
  evicts the one that reached it first, i.e. the least recent: fastsim's tie rule);
- a per-layer ``lru`` equals libCacheSim's ``LRU`` run on each layer's own stream with that
  layer's slots, summed over layers.

These run the general core (every policy but lru/belady, and any partition, leave the
demand-only path), so they also check it against an independent simulator.
"""
from __future__ import annotations

import libcachesim as lcs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim

from test_peer_libcachesim import HARDWARE, key_stream, model_map, top1_traces

PEERS = {"fifo": lcs.FIFO, "lfu": lcs.LFU, "lru": lcs.LRU}


def peer_hits(policy: str, keys: list[int], slots: int) -> int:
    if slots == 0:
        return 0
    cache = PEERS[policy](slots, hashpower=12)
    hits = 0
    for i, key in enumerate(keys):
        req = lcs.Request()
        req.obj_id = key
        req.obj_size = 1
        req.clock_time = i
        hits += bool(cache.get(req))
    return hits


def replay(trace, slots, eviction, **kw):
    return fastsim.replay(
        trace, "on-demand", model=model_map(trace.num_layers, trace.num_experts), hardware=HARDWARE,
        cache_slots=slots, eviction=eviction, batch_size=1, record=True, **kw,
    )


@pytest.mark.parametrize("eviction", ["fifo", "lfu"])
@given(case=top1_traces())
def test_hits_equal_libcachesim(case, eviction):
    trace, slots = case
    keys = key_stream(trace.experts.tolist(), trace.num_experts)
    r = replay(trace, slots, eviction)
    assert len(r.outcomes) == len(keys)
    assert int((r.outcomes == 0).sum()) == r.metrics["hits"] == peer_hits(eviction, keys, slots)


@given(case=top1_traces(), data=st.data())
def test_per_layer_lru_equals_libcachesim_per_layer(case, data):
    trace, _ = case
    L, E = trace.num_layers, trace.num_experts
    slots = data.draw(st.integers(L, L * E + L))  # per layer at least 1 (the working set)
    r = replay(trace, slots, "lru", cache_partition="per-layer")
    keys = key_stream(trace.experts.tolist(), E)
    share = [slots // L + (1 if l < slots % L else 0) for l in range(L)]
    expected = sum(peer_hits("lru", [k for k in keys if k // E == l], share[l]) for l in range(L))
    assert int((r.outcomes == 0).sum()) == r.metrics["hits"] == expected


@given(case=top1_traces(), data=st.data())
def test_listed_partition_lru_equals_libcachesim_per_layer(case, data):
    trace, _ = case
    L, E = trace.num_layers, trace.num_experts
    sizes = data.draw(st.lists(st.integers(1, E + 1), min_size=L, max_size=L))
    r = replay(trace, sum(sizes), "lru", cache_partition=sizes)
    keys = key_stream(trace.experts.tolist(), E)
    expected = sum(peer_hits("lru", [k for k in keys if k // E == l], sizes[l]) for l in range(L))
    assert r.metrics["hits"] == expected


def test_policies_differ_on_a_stream_made_to_separate_them():
    # one layer, 3 slots (found by search: LRU 4 hits, FIFO 6, LFU 5)
    keys = [0, 3, 3, 4, 0, 3, 2, 1, 4, 0, 2, 0]
    trace = fastsim.Trace.from_arrays(np.asarray(keys, np.int16).reshape(-1, 1, 1), num_experts=5)
    got = {ev: replay(trace, 3, ev).metrics["hits"] for ev in ("lru", "fifo", "lfu")}
    want = {ev: peer_hits(ev, keys, 3) for ev in ("lru", "fifo", "lfu")}
    assert got == want == {"lru": 4, "fifo": 6, "lfu": 5}
    assert len(set(got.values())) == 3  # the stream does tell the three apart
