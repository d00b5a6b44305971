"""Peer test: on-demand replay against libCacheSim's LRU and Belady.

With top-1 routing and batch size 1 every ``(step, layer)`` demands at most one key, the compute
step waits for that key's load, so nothing is ever late or in flight at a demand: the on-demand
timeline reduces to a plain cache over the flattened key stream (``key = layer * E + expert`` in
``(token, layer)`` order, ``-1`` entries dropped). Its hits must equal those of an independent
cache simulator with the same number of unit-sized slots.

Belady ties: fastsim breaks equal next uses by the lowest key; libCacheSim's priority queue breaks
them its own way. In this stream every position holds one key, so two resident keys can only tie
when neither is used again. Which dead key goes first cannot change any later hit: both runs keep
the same set of live keys (by induction, a miss evicts a dead key in both runs when one exists,
otherwise the one live key with the farthest next use), and only live keys are ever requested
again. So the hit counts are asserted equal exactly.
"""
from __future__ import annotations

import libcachesim as lcs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.trace.generate import generate_trace

NEVER = np.iinfo(np.int64).max


def model_map(num_layers: int, num_experts: int) -> dict:
    return dict(
        name="m", num_layers=num_layers, num_experts=num_experts, top_k=1, expert_bytes=1000,
        dense_bytes_per_layer=100, expert_flops_per_token=1e3, dense_flops_per_token=1e3,
    )


HARDWARE = dict(
    name="h", h2d_bytes_per_s=1e9, transfer_latency_s=1e-6, mem_bytes_per_s=1e12, flops_per_s=1e12,
    memory_bytes=10**15, launch_s=1e-6,
)


def key_stream(experts: list, num_experts: int) -> list[int]:
    """Flatten ``experts[token][layer][0]`` in (token, layer) order, written with plain loops."""
    keys = []
    for row in experts:
        for layer, ids in enumerate(row):
            if ids[0] >= 0:
                keys.append(layer * num_experts + int(ids[0]))
    return keys


def next_accesses(keys: list[int]) -> list[int]:
    """Index of each request's next request for the same key; INT64_MAX when there is none."""
    seen: dict[int, int] = {}
    out = [NEVER] * len(keys)
    for i in range(len(keys) - 1, -1, -1):
        out[i] = seen.get(keys[i], NEVER)
        seen[keys[i]] = i
    return out


def libcachesim_hits(policy: str, keys: list[int], slots: int) -> int:
    """Hits of libCacheSim's ``policy`` fed one request at a time (unit sizes, ``slots`` bytes)."""
    # a small hash table: the default allocates 2**24 buckets per cache
    cache = (lcs.LRU if policy == "lru" else lcs.Belady)(slots, hashpower=12)
    nxt = next_accesses(keys)
    hits = 0
    for i, key in enumerate(keys):
        req = lcs.Request()
        req.obj_id = key
        req.obj_size = 1
        req.clock_time = i
        req.next_access_vtime = nxt[i]
        hits += bool(cache.get(req))
    return hits


def fastsim_metrics(trace, slots: int, eviction: str) -> dict:
    model = model_map(trace.num_layers, trace.num_experts)
    return fastsim.replay(
        trace, "on-demand", model=model, hardware=HARDWARE, cache_slots=slots, eviction=eviction, batch_size=1
    ).metrics


@st.composite
def top1_traces(draw):
    num_layers = draw(st.integers(1, 4))
    num_experts = draw(st.integers(1, 8))
    lengths = draw(st.lists(st.integers(0, 25), min_size=1, max_size=4))
    tokens = sum(lengths)
    # -1 (a lost entry) is drawn about as often as any one expert
    ids = draw(
        st.lists(st.integers(-1, num_experts - 1), min_size=tokens * num_layers, max_size=tokens * num_layers)
    )
    experts = np.asarray(ids, np.int16).reshape(tokens, num_layers, 1)
    trace = fastsim.Trace.from_arrays(experts, num_experts=num_experts, sequence_lengths=np.asarray(lengths))
    slots = draw(st.integers(1, num_layers * num_experts + 2))
    return trace, slots


@pytest.mark.parametrize("eviction", ["lru", "belady"])
@given(case=top1_traces())
def test_hits_match_libcachesim_on_drawn_traces(case, eviction):
    trace, slots = case
    keys = key_stream(trace.experts.tolist(), trace.num_experts)
    m = fastsim_metrics(trace, slots, eviction)
    assert m["accesses"] == len(keys)
    assert m["late"] == 0
    assert m["hits"] == libcachesim_hits(eviction, keys, slots)


@pytest.fixture(scope="module")
def generated():
    return generate_trace((6, 40, 1), tokens=3000, sequences=7, seed=3)


@pytest.mark.parametrize("eviction", ["lru", "belady"])
@pytest.mark.parametrize("slots", [1, 7, 60, 239, 240])
def test_hits_match_libcachesim_on_generated_trace(generated, eviction, slots):
    keys = key_stream(generated.experts.tolist(), generated.num_experts)
    expected = libcachesim_hits(eviction, keys, slots)
    m = fastsim_metrics(generated, slots, eviction)
    assert m["accesses"] == len(keys)
    assert m["hits"] == expected
    if slots == 1:
        # consecutive requests are different layers' keys, so one slot never hits
        assert expected == 0
    else:
        # the stream exercises the policy: some requests hit, some miss (all keys fit at 240)
        assert 0 < expected < len(keys)


@pytest.mark.parametrize("policy", ["lru", "belady"])
def test_bench_binary_trace_path_agrees(generated, policy, tmp_path):
    """The bench's oracleGeneral writer and process_trace path count the same hits."""
    from fastsim.bench import peers

    keys = key_stream(generated.experts.tolist(), generated.num_experts)
    stream = peers.key_stream(generated)
    assert stream.tolist() == keys
    path = tmp_path / "stream.oracleGeneral.bin"
    peers.write_oracle_general(path, stream)
    assert path.stat().st_size == 24 * len(keys)
    for slots in (7, 60):
        assert peers.libcachesim_hits(path, policy, slots, num_keys=240) == libcachesim_hits(policy, keys, slots)
        assert peers.libcachesim_hits(path, policy, slots) == libcachesim_hits(policy, keys, slots)
