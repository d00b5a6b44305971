"""The reference's cache organisation (SPEC section 6, docs/model.md "Cache organisation") on
small cases worked out by hand: every eviction policy, partitions, pins, byte budgets.

Unless a case says otherwise: top-1, batch 1, 1000-byte experts over a 10 GB/s link (load 100
ns), ``expert_ns(n) = 10 n``, ``dense_ns(b) = 5 b``. Keys are ``layer * E + expert``; outcomes are
0 hit, 1 late, 2 miss in schedule order.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastsim
from fastsim.profiles import ModelProfile
from fastsim.reference import ReferenceSchedule, replay_reference
from fastsim.reference.eviction import (
    ActivationAwareReference, EvictionContext, EvictionReference, ScoreAwareReference,
    register_reference_eviction,
)

GPU = dict(
    name="test-gpu", h2d_bytes_per_s=1e10, transfer_latency_s=0.0, mem_bytes_per_s=1e18,
    flops_per_s=1e9, memory_bytes=10**15, launch_s=0.0,
)


def model(L, E, K=1, expert_bytes=1000, **over):
    d = dict(
        name="test-model", num_layers=L, num_experts=E, top_k=K, expert_bytes=expert_bytes,
        dense_bytes_per_layer=0, expert_flops_per_token=10.0, dense_flops_per_token=5.0,
    )
    d.update(over)
    if isinstance(expert_bytes, list):  # a per-layer list, built directly (no parsing needed)
        return ModelProfile(**d)
    return d


def trace(rows, E, lengths=None, scores=None):
    """``rows[t][l]`` = the expert of token ``t`` at layer ``l`` (top-1), or a list (top-K)."""
    a = np.array([[r if isinstance(r, list) else [r] for r in row] for row in rows], np.int64)
    return fastsim.Trace.from_arrays(a, E, lengths, scores=scores)


def stream(keys, E=4):
    """One sequence, one layer: the token stream ``keys``."""
    return trace([[k] for k in keys], E)


def run(tr, L, E, strategy="on-demand", gpu=GPU, mprof=None, **kw):
    kw.setdefault("record", True)
    return replay_reference(tr, strategy, model=mprof or model(L, E, tr.top_k), hardware=gpu, **kw)


def evictions(r, step=None):
    return [e[3] for e in r.events if e[0] == "evict" and (step is None or e[1] == step)]


def scripted(wants):
    """A strategy reference that wants ``wants[(s, l)]`` at each position."""

    class Scripted:
        def __init__(self, L, E, K, schedule):
            pass

        def observe(self, s, l, R, n):
            return list(wants.get((s, l), []))

    return Scripted


# --- policies ---------------------------------------------------------------------------------

def test_fifo_ignores_hits_where_lru_does_not():
    # stream 0 1 0 2 0, C = 2.
    # LRU: 0 m, 1 m, 0 h (0 most recent), 2 m evicts 1, 0 h.
    # FIFO: 0 m, 1 m, 0 h (changes nothing), 2 m evicts 0 (loaded first), 0 m evicts 1.
    lru = run(stream([0, 1, 0, 2, 0]), 1, 4, cache_slots=2, eviction="lru")
    fifo = run(stream([0, 1, 0, 2, 0]), 1, 4, cache_slots=2, eviction="fifo")
    assert lru.outcomes.tolist() == [2, 2, 0, 2, 0] and evictions(lru) == [1]
    assert fifo.outcomes.tolist() == [2, 2, 0, 2, 2] and evictions(fifo) == [0, 1]
    assert fifo.metrics["demand_loads"] == 4 and fifo.metrics["h2d_bytes"] == 4000


def test_lfu_counts_demand_accesses():
    # stream 0 0 1 2 1 3, C = 2. LFU counts: 0 -> 1 (demand load), 0 hit -> 2, 1 -> 1;
    # 2 misses: {0: 2, 1: 1} evicts 1; 1 misses: {0: 2, 2: 1} evicts 2; 3: {0: 2, 1: 1} evicts 1.
    # LRU instead: 2 evicts 0 (ticks 0:2, 1:3), 1 hits, 3 evicts 2 (2:4 < 1:5).
    lfu = run(stream([0, 0, 1, 2, 1, 3]), 1, 4, cache_slots=2, eviction="lfu")
    lru = run(stream([0, 0, 1, 2, 1, 3]), 1, 4, cache_slots=2, eviction="lru")
    assert lfu.outcomes.tolist() == [2, 0, 2, 2, 2, 2] and evictions(lfu) == [1, 2, 1]
    assert lru.outcomes.tolist() == [2, 0, 2, 2, 0, 2] and evictions(lru) == [0, 2]


def test_lfu_ties_go_to_the_least_recent():
    # stream 0 1 1 0 2, C = 2: counts 0 -> 2 (ticks 1, 4), 1 -> 2 (ticks 2, 3): a tie, 1 is less
    # recent (3 < 4), so 2 evicts 1.
    r = run(stream([0, 1, 1, 0, 2]), 1, 4, cache_slots=2, eviction="lfu")
    assert evictions(r) == [1]


def test_lfu_prefetched_key_starts_at_zero():
    # tokens 0, 2; C = 2; dense_ns(1) = 100; at (0, 0) the strategy wants [1]. Step 0: 0 misses
    # [0, 100) (count 1, tick 1), 1 is prefetched [100, 200) (count 0) and refreshed (tick 2);
    # the step ends at 100 + 100 + 10 = 210. Step 1: 2 misses with {0, 1} resident and settled.
    # LFU evicts 1 (0 < 1); LRU evicts 0 (tick 1 < 2).
    want = scripted({(0, 0): [1]})
    slow = model(1, 4, dense_flops_per_token=100.0)
    lfu = run(stream([0, 2]), 1, 4, want, mprof=slow, cache_slots=2, eviction="lfu")
    lru = run(stream([0, 2]), 1, 4, want, mprof=slow, cache_slots=2, eviction="lru")
    assert evictions(lfu) == [1] and evictions(lru) == [0]
    assert lfu.metrics["prefetch_loads"] == 1 and lfu.metrics["prefetch_wasted"] == 1


def test_lfru_frequency_over_age_exactly():
    # stream 0 0 0 1 2 3 4 5, C = 2. freq / (tick_now - last + 1):
    # tick 5 (key 2): 0 -> 3/(5-3+1) = 1, 1 -> 1/(5-4+1) = 1/2: evicts 1 (LRU would evict 0)
    # tick 6 (key 3): 0 -> 3/4, 2 -> 1/2: evicts 2
    # tick 7 (key 4): 0 -> 3/5, 3 -> 1/2: evicts 3
    # tick 8 (key 5): 0 -> 3/6 = 1/2, 4 -> 1/2: an exact tie, 0 is less recent: evicts 0
    r = run(stream([0, 0, 0, 1, 2, 3, 4, 5], E=6), 1, 6, cache_slots=2, eviction="lfru")
    assert r.outcomes.tolist() == [2, 0, 0, 2, 2, 2, 2, 2]
    assert evictions(r) == [1, 2, 3, 0]


def test_belady_farthest_next_use_ties_to_lowest_key():
    # stream 0 1 2 0 3 1, C = 2 (position = step). Key 2 at position 2: next uses 0 -> 3,
    # 1 -> 5: evicts 1 (the farthest). Key 0 hits. Key 3 at 4: 0 and 2 never again: a tie, the
    # lowest key 0 goes. Key 1 at 5: 2 and 3 never again: 2 goes.
    r = run(stream([0, 1, 2, 0, 3, 1]), 1, 4, cache_slots=2, eviction="belady")
    assert r.outcomes.tolist() == [2, 2, 2, 0, 2, 2]
    assert evictions(r) == [1, 0, 2]


def test_activation_aware_forgets_finished_requests():
    # L = 1 (d = 1, weight 1.0): priority = act + 1.0. A = [0, 0, 0], B = [1, 2, 1, 3], C = 2.
    # A: 0 misses, hits, hits (act[0] = 3); after step 2 A ends: act[0] = 0.
    # step 3: act[1] = 1, 1 misses. step 4: act[2] = 1, 2 misses: 0 -> 1.0, 1 -> 2.0: evicts 0
    # (LFU would evict 1: counts 0 -> 3, 1 -> 1). step 5: act[1] = 2, hit.
    # step 6: act[3] = 1, 3 misses: 1 -> 3.0, 2 -> 2.0: evicts 2.
    tr = trace([[0], [0], [0], [1], [2], [1], [3]], 4, [3, 4])
    r = run(tr, 1, 4, cache_slots=2, eviction="activation-aware")
    assert r.outcomes.tolist() == [2, 0, 0, 2, 2, 0, 2] and evictions(r) == [0, 2]
    lfu = run(tr, 1, 4, cache_slots=2, eviction="lfu")
    assert evictions(lfu) == [1, 2, 1]  # 0 keeps count 3: 2, 1 and 3 each evict the other key


def test_activation_aware_layer_distance():
    # L = 2, E = 4 (layer-1 expert e is key 4 + e), C = 3, tokens (0, 0), (1, 1), (2, 1).
    # weight = 1 - (d - 1) / 2: 1.0 for the other layer (d = 1), 0.5 for the current one (d = 2).
    # s0: key 0 misses (act 1), key 4 misses (act 1). s1 l0: key 1 misses (act 1): full.
    # s1 l1 (current layer 1): key 5 misses: 0 -> 1.0 * 2 = 2, 4 -> 0.5 * 2 = 1, 1 -> 2: evicts 4
    # (LRU would evict 0, tick 1).
    # s2 l0: act[2] = 1, key 2 misses: 0 -> 0.5 * 2 = 1, 1 -> 1, 5 -> 1.0 * 2 = 2: tie 0/1, the
    # least recent is 0 (tick 1 < 3): evicts 0. s2 l1: key 5 hits.
    tr = trace([[0, 0], [1, 1], [2, 1]], 4)
    r = run(tr, 2, 4, cache_slots=3, eviction="activation-aware")
    assert r.outcomes.tolist() == [2, 2, 2, 2, 2, 0] and evictions(r) == [4, 0]
    r3 = run(tr, 2, 4, cache_slots=3, eviction="activation-aware", eviction_params={"smoothing": 3.0})
    assert evictions(r3) == [4, 0]  # 4 -> 0.5 * 4 = 2 < 4; then 0 and 1 tie at 0.5 * 4 = 2 < 4
    # LRU: key 5 evicts 0 (tick 1), key 2 evicts 4 (tick 2)
    assert evictions(run(tr, 2, 4, cache_slots=3, eviction="lru")) == [0, 4]


def test_activation_aware_counts_over_the_batch():
    # batch 2: A = [0], B = [0, 1]. Step 0 rows (A, B): act[0] = 2; A ends after step 0: act[0] = 1.
    # Step 1: act[1] = 1. L = 1: rank = act + smoothing.
    tr = trace([[0], [0], [1]], 4, [1, 2])
    sched = ReferenceSchedule(tr.experts.tolist(), tr.sequence_lengths, 1, 4, 2)
    assert sched.step_sequences == [[0, 1], [1]] and sched.finished == [[0], [1]]
    p = ActivationAwareReference(EvictionContext(1, 4, sched, tr.experts.tolist(), None), smoothing=0.5)
    p.on_position(0, 0)
    assert p.act[0] == 2
    p.after_step(0)
    p.on_position(1, 0)
    assert (p.act[0], p.act[1]) == (1, 1)
    assert (p.rank(0, 1, 0, 0), p.rank(3, 1, 0, 0)) == (1.5, 0.5)
    p.after_step(1)
    assert (p.act[0], p.act[1]) == (0, 0)


def test_score_aware_smallest_decayed_score():
    # L = 1, C = 2, alpha 0.5; tokens e0 (w 1.0), e1 (w 0.25), e2 (w 0.5).
    # s0: S0 = 0.5. s1: S0 = 0.25, S1 = 0.125. s2 (before demand): S0 = 0.125, S1 = 0.0625:
    # key 2 evicts 1 (LRU would evict 0).
    w = np.array([[[1.0]], [[0.25]], [[0.5]]], np.float32)
    tr = trace([[0], [1], [2]], 4, scores=w)
    r = run(tr, 1, 4, cache_slots=2, eviction="score-aware")
    assert evictions(r) == [1]
    assert evictions(run(tr, 1, 4, cache_slots=2, eviction="lru")) == [0]
    # alpha = 1: S = this position's score only, 0 for unselected: at s2 S0 = S1 = 0, a tie:
    # the least recent, 0, goes
    assert evictions(run(tr, 1, 4, cache_slots=2, eviction="score-aware", eviction_params={"alpha": 1.0})) == [0]


def test_score_aware_score_is_the_batch_mean():
    # batch 2, top-2, one step: rows t0 = [0, 1] weights [0.75, 0.25], t1 = [1, 0] weights
    # [0.5, 0.125]: score(0) = (0.75 + 0.125) / 2 = 0.4375, score(1) = (0.25 + 0.5) / 2 = 0.375,
    # expert 2 unselected. alpha 0.5: S0 = 0.21875, S1 = 0.1875, S2 = 0.
    w = np.array([[[0.75, 0.25]], [[0.5, 0.125]]], np.float32)
    tr = trace([[[0, 1]], [[1, 0]]], 3, [1, 1], scores=w)
    sched = ReferenceSchedule(tr.experts.tolist(), tr.sequence_lengths, 1, 3, 2)
    p = ScoreAwareReference(EvictionContext(1, 3, sched, tr.experts.tolist(), tr.scores.tolist()))
    p.on_position(0, 0)
    assert p.S == {0: 0.21875, 1: 0.1875, 2: 0.0}


def test_score_aware_needs_scores_and_policies_check_params():
    tr = stream([0, 1, 2])
    with pytest.raises(ValueError, match="scores"):
        run(tr, 1, 4, cache_slots=2, eviction="score-aware")
    with pytest.raises(ValueError, match="unknown eviction"):
        run(tr, 1, 4, cache_slots=2, eviction="nope")
    with pytest.raises(ValueError, match="smoothing"):
        run(tr, 1, 4, cache_slots=2, eviction="activation-aware", eviction_params={"smoothing": 0.0})
    with pytest.raises(ValueError, match="no parameter"):
        run(tr, 1, 4, cache_slots=2, eviction="lru", eviction_params={"alpha": 0.5})


def test_user_registered_policy():
    class MRU(EvictionReference):
        name = "test-mru"

        def order(self, key, s, l, tick):
            return (-self.recency[key], key)

    register_reference_eviction("test-mru", MRU)
    try:
        # stream 0 1 2 1, C = 2: 2 evicts the most recent, 1; then 1 evicts 2.
        r = run(stream([0, 1, 2, 1]), 1, 4, cache_slots=2, eviction="test-mru")
        assert evictions(r) == [1, 2]
        assert evictions(run(stream([0, 1, 2, 1]), 1, 4, cache_slots=2, eviction=MRU)) == [1, 2]
    finally:
        register_reference_eviction("test-mru", None)
    with pytest.raises(ValueError, match="built in"):
        register_reference_eviction("lru", MRU)


# --- partitions -------------------------------------------------------------------------------

def test_partitions_per_layer_and_list():
    # L = 2, E = 3 (layer-1 expert 0 = key 3), tokens (0, 0), (1, 0), (2, 0), (0, 0), C = 4.
    # global: 0 3 1 2 fill the 4 slots, all later accesses hit, nothing evicted.
    # per-layer [2, 2]: layer 0 holds two: 2 evicts 0 (LRU), then 0 evicts 1.
    # [3, 1]: layer 0 holds three: as global.
    tr = trace([[0, 0], [1, 0], [2, 0], [0, 0]], 3)
    g = run(tr, 2, 3, cache_slots=4)
    pl = run(tr, 2, 3, cache_slots=4, cache_partition="per-layer")
    ls = run(tr, 2, 3, cache_slots=4, cache_partition=[3, 1])
    assert g.outcomes.tolist() == [2, 2, 2, 0, 2, 0, 0, 0] and evictions(g) == []
    assert pl.outcomes.tolist() == [2, 2, 2, 0, 2, 0, 2, 0] and evictions(pl) == [0, 1]
    assert pl.config["partition_budgets"] == [2, 2]
    assert ls.outcomes.tolist() == g.outcomes.tolist() and evictions(ls) == []
    # per-layer remainders: C = 5 over 3 layers = [2, 2, 1]
    tr3 = trace([[0, 0, 0]], 3)
    assert run(tr3, 3, 3, cache_slots=5, cache_partition="per-layer").config["partition_budgets"] == [2, 2, 1]


def test_prefetch_evicts_in_its_own_partition():
    # L = 2, E = 2, C = 2; token (0, 0): keys 0 and 2. At (0, 0) the strategy wants [3].
    # s0 l0: 0 misses [0, 100); 3 prefetched [100, 200); compute ends 100 + 5 + 10 = 115.
    # s0 l1 (g = 115): 2 misses.
    #   global (full: 0, 3): the settled key outside R is 0 (ready 100): evicts 0.
    #   per-layer [1, 1]: layer 1 holds 3, in flight (200 > 115), the only candidate: evicts 3.
    # either way 2 loads behind 3 over [200, 300).
    tr = trace([[0, 0]], 2)
    want = scripted({(0, 0): [3]})
    g = run(tr, 2, 2, want, cache_slots=2, per_step=True)
    pl = run(tr, 2, 2, want, cache_slots=2, cache_partition="per-layer", per_step=True)
    assert evictions(g) == [0] and evictions(pl) == [3]
    assert pl.metrics["prefetch_wasted"] == 1 and g.metrics["prefetch_wasted"] == 1
    assert pl.metrics["total_time_s"] == g.metrics["total_time_s"] == 315e-9  # 300 + 5 + 10


def test_partition_errors():
    tr = trace([[[0, 1], [0, 1]]], 2)  # top-2, L = 2: each layer needs 2 at once
    with pytest.raises(ValueError, match="2 sizes for 3 layers|lists"):
        run(trace([[0, 0, 0]], 2), 3, 2, cache_slots=4, cache_partition=[2, 2])
    with pytest.raises(ValueError, match="sum"):
        run(tr, 2, 2, cache_slots=4, cache_partition=[2, 1])
    with pytest.raises(ValueError, match="step 0, layer 0 needs 2"):
        run(tr, 2, 2, cache_slots=4, cache_partition=[1, 3])
    with pytest.raises(ValueError, match="step 0, layer 1 needs 2"):
        run(tr, 2, 2, cache_slots=3, cache_partition="per-layer")  # [2, 1]


# --- pins -------------------------------------------------------------------------------------

def test_pinned_key_is_never_evicted_nor_loaded():
    # stream 0 1 2 0 1, C = 2, key 0 pinned: it always hits; 1 and 2 share the other slot:
    # 1 m, 2 m evicts 1, 0 h, 1 m evicts 2. Occupancy 1, 2, 2, 2, 2 (mean 1.8, peak 2 = 2000 B).
    # Time: each step 5 + 10 = 15 ns, plus 100 ns for each of the 3 misses: 375 ns.
    for pinned in ([0], 1):  # the count: 0 and 1 are demanded twice, a tie to the lowest key, 0
        r = run(stream([0, 1, 2, 0, 1]), 1, 4, cache_slots=2, eviction="fifo", pinned=pinned)
        assert r.config["pinned"] == [0]
        assert r.outcomes.tolist() == [0, 2, 2, 0, 2] and evictions(r) == [1, 2]
        m = r.metrics
        assert (m["demand_loads"], m["h2d_bytes"], m["mean_resident"], m["peak_resident"], m["peak_cache_bytes"]) == (3, 3000, 1.8, 2, 2000)
        assert m["total_time_s"] == 375e-9
        assert not [e for e in r.events if e[0] == "load" and e[3] == 0]


def test_pin_count_over_a_prefix():
    # stream 2 1 1 0 0 0 (6 tokens). Whole trace: 0 x3, 1 x2, 2 x1: N = 1 pins 0.
    # pin_profile 0.5: the first ceil(3.0) = 3 tokens (2, 1, 1): pins 1.
    # pin_profile 0.1: ceil(0.6) = 1 token (2): pins 2. N = 10: only the 3 demanded keys.
    tr = stream([2, 1, 1, 0, 0, 0])
    assert run(tr, 1, 4, cache_slots=3, pinned=1).config["pinned"] == [0]
    assert run(tr, 1, 4, cache_slots=3, pinned=1, pin_profile=0.5).config["pinned"] == [1]
    assert run(tr, 1, 4, cache_slots=3, pinned=1, pin_profile=0.1).config["pinned"] == [2]
    assert run(tr, 1, 4, cache_slots=3, pinned=10).config["pinned"] == [0, 1, 2]


def test_prefetch_of_a_pinned_key_finds_it_resident():
    # stream 1 2, C = 2, key 0 pinned; the strategy wants [0] then [3]. Step 0: 1 misses into
    # the free slot; the wanted 0 is resident (pinned): no load. Step 1: 2 misses, the only
    # victim is 1; the wanted 3 has none (0 pinned, 2 in R): processing stops.
    want = scripted({(0, 0): [0], (1, 0): [3]})
    r = run(stream([1, 2]), 1, 4, want, cache_slots=2, pinned=[0])
    assert r.metrics["prefetch_loads"] == 0 and evictions(r) == [1]


def test_pin_errors():
    tr = trace([[[0, 1]]], 4)  # top-2: R = {0, 1}
    with pytest.raises(ValueError, match="pinned"):
        run(tr, 1, 4, cache_slots=2, pinned=[0, 1, 2])  # 3 pinned in 2 slots
    with pytest.raises(ValueError, match="step 0, layer 0 needs 3"):
        run(tr, 1, 4, cache_slots=2, pinned=[3])  # R's 2 non-pinned + 1 pinned > 2
    assert run(tr, 1, 4, cache_slots=2, pinned=[0]).outcomes.tolist() == [0, 2]  # 1 + 1 fits
    tr2 = trace([[0, 0]], 2)
    with pytest.raises(ValueError, match="partition 1"):
        run(tr2, 2, 2, cache_slots=3, cache_partition="per-layer", pinned=[2, 3])  # [2, 1]: 2 on layer 1
    with pytest.raises(ValueError, match="outside"):
        run(tr2, 2, 2, cache_slots=4, pinned=[4])


# --- byte budgets -----------------------------------------------------------------------------

def test_byte_budget_per_layer_sizes():
    # L = 2, E = 2; layer 0 experts are 1000 B (load 100 ns), layer 1 3000 B (300 ns); memory
    # at 1e11 B/s: expert(layer 0, 1) = max(10, 10) = 10, expert(layer 1, 1) = max(30, 10) = 30.
    # cache_bytes 4000, LRU, tokens (0, 0), (1, 1), (0, 0): keys 0, 2 | 1, 3 | 0, 2.
    # s0 l0: 0 [0, 100), end 115. s0 l1: 2 fits (1000 + 3000), [115, 415), end 450.
    # s1 l0: 1 needs 1000 more: evicts 0 (tick 1 < 2), [450, 550), end 565.
    # s1 l1: 3 needs 3000: evicts 2 (tick 2 < 3), [565, 865), end 900.
    # s2 l0: 0 evicts 1 (tick 3 < 4), [900, 1000), end 1015.
    # s2 l1: 2 evicts 3, [1015, 1315), end 1350.
    # stall 100 + 300 + 100 + 300 + 100 + 300 = 1200; bytes 3 x 1000 + 3 x 3000 = 12000.
    gpu = dict(GPU, mem_bytes_per_s=1e11)
    m2 = model(2, 2, expert_bytes=[1000, 3000])
    tr = trace([[0, 0], [1, 1], [0, 0]], 2)
    r = run(tr, 2, 2, gpu=gpu, mprof=m2, cache_bytes=4000)
    assert r.config["cache_unit"] == "bytes"
    assert r.outcomes.tolist() == [2] * 6 and evictions(r) == [0, 2, 1, 3]
    m = r.metrics
    assert (m["h2d_bytes"], m["peak_cache_bytes"], m["peak_resident"]) == (12000, 4000, 2)
    assert (m["total_time_s"], m["stall_s"]) == (1350e-9, 1200e-9)
    # the same in slots (cache_slots=2): a key takes 1 slot, loads still move its bytes
    s = run(tr, 2, 2, gpu=gpu, mprof=m2, cache_slots=2)
    assert s.config["cache_unit"] == "slots" and evictions(s) == [0, 2, 1, 3]
    assert (s.metrics["h2d_bytes"], s.metrics["total_time_s"]) == (12000, 1350e-9)


def test_byte_budget_evicts_until_it_fits():
    # L = 2, E = 3; layer 0 1000 B (keys 0-2), layer 1 2000 B (keys 3-5); 4000 B, LRU.
    # tokens (0, 0), (1, 0), (2, 1): keys 0, 3 | 1, 3 | 2, 4. Ticks 0:1, 3:2, 1:3, 3:4, 2:5.
    # s2 l0: 2 needs 1000 (used 4000): evicts 0. s2 l1: 4 needs 2000 (used 4000): evicts 1
    # (tick 3; used 3000, still too full), then 3 (tick 4): used 1000 + 2000 = 3000.
    # samples: 1 (1000 B), 2 (3000), 3 (4000), 3, 3, 2 (3000): mean 14 / 6, peak 3, 4000 B.
    m2 = model(2, 3, expert_bytes=[1000, 2000])
    r = run(trace([[0, 0], [1, 0], [2, 1]], 3), 2, 3, mprof=m2, cache_bytes=4000)
    assert r.outcomes.tolist() == [2, 2, 2, 0, 2, 2] and evictions(r) == [0, 1, 3]
    m = r.metrics
    assert (m["h2d_bytes"], m["peak_resident"], m["peak_cache_bytes"]) == (7000, 3, 4000)
    assert m["mean_resident"] == 14 / 6


def test_byte_prefetch_victims_stay_evicted_when_it_cannot_fit():
    # L = 2, E = 3, layer 0 1000 B (load 100 ns), layer 1 3000 B (300 ns), 6000 B; dense 100 b.
    # tokens (0, -1), (0, -1). s0 l0: 0 misses [0, 100); wants [1, 3]: 1 [100, 200), 3 [200, 500)
    # (used 5000); end 100 + 100 + 10 = 210. s0 l1 (R empty): end 310.
    # s1 l0 (g = 310): 0 hits; wants [4] (3000 B, used 5000): the only eligible victim is 1
    # (settled; 3 is in flight, 0 in R): evicts 1, used 4000, still too full, none left: stop.
    m2 = model(2, 3, expert_bytes=[1000, 3000], dense_flops_per_token=100.0)
    want = scripted({(0, 0): [1, 3], (1, 0): [4]})
    r = run(trace([[0, -1], [0, -1]], 3), 2, 3, want, mprof=m2, cache_bytes=6000)
    assert r.outcomes.tolist() == [2, 0] and evictions(r) == [1]
    m = r.metrics
    assert (m["prefetch_loads"], m["prefetch_wasted"], m["h2d_bytes"]) == (2, 2, 5000)
    assert [w.tolist() for w in r.wanted] == [[1, 3], [], [4], []]


def test_byte_prefetch_belady_skip_after_a_victim():
    # L = 2, E = 3, layer 0 1000 B, layer 1 3000 B, 6000 B. tokens (0, 0), (0, -1), (2, -1),
    # (-1, 0), (-1, 1): keys 0, 3 | 0 | 2 | 3 | 4. At (0, 0) the strategy wants [1, 2], at (1, 0) [4].
    # s0 l0: 0 [0, 100), prefetches 1 [100, 200), 2 [200, 300); end 115. s0 l1: 3 (3000 B)
    # [300, 600): 6000 B, full; end 615. s1 l0 (g = 615): 0 hits, and 1, 2, 3 are settled.
    # s1 l0: 4's next use is position 9 (step 4, layer 1). Belady: 1 (never) is farthest, not
    # needed before 4: evicted; still 5000 + 3000 > 6000; next 3 (position 7) is needed before 4:
    # 4 is skipped, 1 stays evicted.
    # s4 l1: 4 misses (used 5000): all of 0, 2, 3 never used again, ties to the lowest key:
    # evicts 0, then 2 (3000 + 3000 fits).
    m2 = model(2, 3, expert_bytes=[1000, 3000])
    tr = trace([[0, 0], [0, -1], [2, -1], [-1, 0], [-1, 1]], 3)
    want = scripted({(0, 0): [1, 2], (1, 0): [4]})
    r = run(tr, 2, 3, want, mprof=m2, cache_bytes=6000, eviction="belady")
    assert r.outcomes.tolist() == [2, 2, 0, 0, 0, 2] and evictions(r) == [1, 0, 2]
    assert (r.metrics["prefetch_loads"], r.metrics["prefetch_useful"], r.metrics["prefetch_wasted"]) == (2, 1, 1)
    # LRU at s1 l0 (ticks 0:5, 2:2, 1:3, 3:4): evicts 2, 1, then 3 until 4's 3000 B fit
    lru = run(tr, 2, 3, want, mprof=m2, cache_bytes=6000, eviction="lru")
    assert evictions(lru, step=1) == [2, 1, 3]


def test_equal_sizes_keep_the_slot_model():
    # a list of equal sizes and cache_bytes 2500: C = 2500 // 1000 = 2 slots, as SPEC section 3
    tr = stream([0, 1, 0, 2, 0])
    a = run(tr, 1, 4, mprof=model(1, 4, expert_bytes=[1000]), cache_bytes=2500)
    b = run(tr, 1, 4, cache_slots=2)
    assert a.config["cache_unit"] == "slots" and a.config["cache_slots"] == 2
    assert a.metrics == b.metrics and a.outcomes.tolist() == b.outcomes.tolist()


def test_byte_partitions_split_bytes():
    # per-layer over 5001 B and L = 2: [2501, 2500]; a 3000 B layer-1 key cannot fit in 2500
    m2 = model(2, 2, expert_bytes=[1000, 2000])
    r = run(trace([[0, 0]], 2), 2, 2, mprof=m2, cache_bytes=5001, cache_partition="per-layer")
    assert r.config["partition_budgets"] == [2501, 2500]
    m3 = model(2, 2, expert_bytes=[1000, 3000])
    with pytest.raises(ValueError, match="step 0, layer 1 needs 3000"):
        run(trace([[0, 0]], 2), 2, 2, mprof=m3, cache_bytes=5001, cache_partition="per-layer")


def test_defaults_unchanged():
    tr = trace([[0, 1], [1, 3], [0, 2], [3, -1]], 4, [2, 2])
    base = run(tr, 2, 4, "oracle", cache_slots=3, batch_size=2, lookahead=1)
    new = run(tr, 2, 4, "oracle", cache_slots=3, batch_size=2, lookahead=1, eviction="lru", eviction_params={},
              cache_partition="global", pinned=None, pin_profile=1.0)
    assert base.metrics == new.metrics and base.outcomes.tolist() == new.outcomes.tolist()
