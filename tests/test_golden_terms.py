"""docs/model.md, "Worked examples for every term": every number derived there by hand.

The profile gives every duration a fractional nanosecond (two of them exact halves, rounded up
and not to even), a nonzero transfer latency and launch cost, an expert that is memory-bound at
one token and compute-bound at two, and a dense part that is memory-bound at ``b = 1`` and
compute-bound at ``b = 2``. The trace puts a prefetch's ``ready_at`` exactly on its demand's
``g`` (a hit); the second case adds 1 ns of transfer latency, which moves that ``ready_at`` 1 ns
past its ``g`` (late). Both implementations must give every count and nanosecond exactly.
"""
import numpy as np
import pytest

import fastsim
from fastsim.reference import replay_reference

# Round rates (1000 bytes or flops per ns, 200 bytes per ns over the link) so that every term is
# a short decimal number of nanoseconds; docs/model.md shows the arithmetic.
MODEL = dict(
    name="terms-model", num_layers=2, num_experts=4, top_k=1,
    expert_bytes=8300,  # 8.3 ns to read at 1e12 B/s, 41.5 ns over a 2e11 B/s link
    dense_bytes_per_layer=4400,  # 4.4 ns to read
    expert_flops_per_token=6250.0,  # 6.25 ns per token at 1e12 flop/s
    dense_flops_per_token=3200.0,  # 3.2 ns per token
)
GPU = dict(
    name="terms-gpu", h2d_bytes_per_s=2e11, transfer_latency_s=11.1e-9, mem_bytes_per_s=1e12,
    flops_per_s=1e12, memory_bytes=10**12, launch_s=2.1e-9,
)
GPU_LATE = dict(GPU, name="terms-gpu-late", transfer_latency_s=12.1e-9)  # every load 1 ns longer

# Sequence A (3 tokens) and B (2 tokens), top-1; B's second token is its last, so step 2 has
# b = 1. Layer 0: A 0, 0, 3 and B 0, 2; layer 1: expert 1 for every token.
EXPERTS = np.array(
    [
        [[0], [1]],  # A0
        [[0], [1]],  # A1
        [[3], [1]],  # A2
        [[0], [1]],  # B0
        [[2], [1]],  # B1
    ]
)
LENGTHS = [3, 2]

# load_ns, expert_ns[0..2], dense_ns[0..2] as docs/model.md derives them
COSTS = {"terms-gpu": (53, [0, 10, 15], [0, 7, 9]), "terms-gpu-late": (54, [0, 10, 15], [0, 7, 9])}

# (step, layer): R  ->  keys (l * 4 + e)
#   (0, 0) {0} n [2] -> 0      (0, 1) {1} n [2] -> 5
#   (1, 0) {0, 2} n [1, 1] -> 0, 2   (1, 1) {1} n [2] -> 5
#   (2, 0) {3} n [1] -> 3      (2, 1) {1} n [1] -> 5
WANTED = [[0, 2], [5], [3], [5], [], []]

CASES = {
    # key 3 is prefetched at g = 183 and ready at 236, the g of (2, 0): a hit
    "hit-at-g": dict(
        hardware=GPU,
        counts=(7, 5, 0, 2),
        loads=(2, 2, 2, 0),
        stall_ns=135,
        total_ns=270,
        step_time_ns=[183, 53, 34],
        step_stall_ns=[135, 0, 0],
        outcomes=[2, 2, 0, 0, 0, 0, 0],
    ),
    # the same with 54 ns loads: key 3 is prefetched at g = 186, ready at 240, demanded at 239
    "late-by-1ns": dict(
        hardware=GPU_LATE,
        counts=(7, 4, 1, 2),
        loads=(2, 2, 2, 0),
        stall_ns=139,
        total_ns=274,
        step_time_ns=[186, 53, 35],
        step_stall_ns=[138, 0, 1],
        outcomes=[2, 2, 0, 0, 0, 1, 0],
    ),
}


def _trace():
    return fastsim.Trace.from_arrays(EXPERTS, 4, LENGTHS)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference], ids=["kernel", "reference"])
def test_every_term(impl, case):
    want = CASES[case]
    r = impl(
        _trace(), "oracle", model=MODEL, hardware=want["hardware"], cache_slots=4, eviction="lru",
        batch_size=2, lookahead=1, per_step=True, record=True,
    )
    m = r.metrics
    # outcomes first: a wrong hit/late decision shows here most plainly
    assert r.outcomes.tolist() == want["outcomes"]
    assert (m["accesses"], m["hits"], m["late"], m["misses"]) == want["counts"]
    assert (m["demand_loads"], m["prefetch_loads"], m["prefetch_useful"], m["prefetch_wasted"]) == want["loads"]
    assert m["h2d_bytes"] == 4 * 8300
    assert m["hit_rate"] == want["counts"][1] / 7
    np.testing.assert_array_equal(r.step_time_s, np.array(want["step_time_ns"]) / 1e9)
    np.testing.assert_array_equal(r.step_stall_s, np.array(want["step_stall_ns"]) / 1e9)
    assert m["stall_s"] == want["stall_ns"] / 1e9
    assert m["total_time_s"] == want["total_ns"] / 1e9
    assert (m["tokens"], m["steps"]) == (5, 3)
    assert m["tokens_per_s"] == pytest.approx(5 / (want["total_ns"] / 1e9), rel=1e-12)
    # occupancy samples 2, 3, 4, 4, 4, 4
    assert m["mean_resident"] == 3.5
    assert (m["peak_resident"], m["peak_cache_bytes"]) == (4, 4 * 8300)
    assert [[int(k) for k in w] for w in r.wanted] == WANTED


@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference], ids=["kernel", "reference"])
def test_every_term_on_demand(impl):
    """The same trace and profile without prefetching (the demand-only kernel path), a cache of
    3 so that (2, 0) evicts key 0: every miss waits its own 53 ns load."""
    r = impl(
        _trace(), "on-demand", model=MODEL, hardware=GPU, cache_slots=3, eviction="lru", batch_size=2,
        per_step=True, record=True,
    )
    m = r.metrics
    assert r.outcomes.tolist() == [2, 2, 0, 2, 0, 2, 0]
    assert (m["accesses"], m["hits"], m["late"], m["misses"]) == (7, 3, 0, 4)
    assert (m["demand_loads"], m["prefetch_loads"], m["prefetch_useful"], m["prefetch_wasted"]) == (4, 0, 0, 0)
    assert m["h2d_bytes"] == 4 * 8300
    assert m["hit_rate"] == 3 / 7
    np.testing.assert_array_equal(r.step_time_s, np.array([154, 106, 87]) / 1e9)
    np.testing.assert_array_equal(r.step_stall_s, np.array([106, 53, 53]) / 1e9)
    assert m["stall_s"] == 212 / 1e9
    assert m["total_time_s"] == 347 / 1e9
    assert (m["tokens"], m["steps"]) == (5, 3)
    assert m["tokens_per_s"] == pytest.approx(5 / 347e-9, rel=1e-12)
    # occupancy samples 1, 2, 3, 3, 3, 3
    assert m["mean_resident"] == 2.5
    assert (m["peak_resident"], m["peak_cache_bytes"]) == (3, 3 * 8300)


@pytest.mark.parametrize("gpu", [GPU, GPU_LATE], ids=lambda g: g["name"])
def test_cost_tables(gpu):
    """The kernel's duration tables hold the rounded values docs/model.md derives."""
    from fastsim.profiles import hardware_profile, model_profile
    from fastsim.timeline.durations import cost_tables

    load_ns, expert_ns, dense_ns = cost_tables(model_profile(MODEL), hardware_profile(gpu), 2)
    want_load, want_expert, want_dense = COSTS[gpu["name"]]
    assert int(load_ns) == want_load
    assert expert_ns.tolist() == want_expert
    assert dense_ns.tolist() == want_dense
