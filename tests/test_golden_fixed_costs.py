"""docs/model.md, "Fixed costs": the hardware profile's ``layer_overhead_s``,
``expert_efficiency`` and ``dense_efficiency`` worked by hand through both implementations.

The trace and model are those of ``tests/test_golden_terms.py``; the hardware adds a 3.3 ns
per-layer overhead, experts at half the device's rates and dense work at 80%. Each figure moves
at least one rounded duration, and applying an efficiency to only one of the two rates, to the
wrong term, or dropping the overhead gives other durations (the table in docs/model.md).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.profiles import hardware_profile, model_profile
from fastsim.reference import durations as reference_durations
from fastsim.reference import replay_reference
from fastsim.timeline import durations as kernel_durations
from test_golden_terms import EXPERTS, GPU, LENGTHS, MODEL

FIXED_GPU = dict(GPU, name="fixed-cost-gpu", layer_overhead_s=3.3e-9, expert_efficiency=0.5, dense_efficiency=0.8)

# load = 11.1 + 41.5 = 52.6 -> 53 (no fixed cost touches the link)
# expert(n) = 2.1 + max(8300 / 500 = 16.6, n * 6250 / 500 = 12.5 n): 18.7 -> 19, 27.1 -> 27
# dense(b) = (2.1 + 3.3) + max(4400 / 800 = 5.5, b * 3200 / 800 = 4 b): 10.9 -> 11, 13.4 -> 13
LOAD_NS, EXPERT_NS, DENSE_NS = 53, [0, 19, 27], [0, 11, 13]


def _trace():
    return fastsim.Trace.from_arrays(EXPERTS, 4, LENGTHS)


def test_kernel_tables():
    load_ns, expert_ns, dense_ns = kernel_durations.cost_tables(model_profile(MODEL), hardware_profile(FIXED_GPU), 2)
    assert (int(load_ns), expert_ns.tolist(), dense_ns.tolist()) == (LOAD_NS, EXPERT_NS, DENSE_NS)
    load_l, expert_l, dense_l = kernel_durations.layer_cost_tables(model_profile(MODEL), hardware_profile(FIXED_GPU), 2)
    assert load_l.tolist() == [LOAD_NS] * 2
    assert expert_l.tolist() == [EXPERT_NS] * 2
    assert dense_l.tolist() == DENSE_NS


def test_reference_durations():
    m, h = model_profile(MODEL), hardware_profile(FIXED_GPU)
    assert reference_durations.load_ns(m, h) == LOAD_NS
    assert [reference_durations.expert_ns(m, h, n) for n in (1, 2)] == EXPERT_NS[1:]
    assert [reference_durations.dense_ns(m, h, b) for b in (1, 2)] == DENSE_NS[1:]


@pytest.mark.parametrize(
    "change, expert_ns, dense_ns",
    [
        # each figure alone: the others stay at section 2's durations (10, 15 and 7, 9)
        (dict(layer_overhead_s=3.3e-9), [10, 15], [10, 12]),  # 5.4 + 4.4, 5.4 + 6.4
        (dict(expert_efficiency=0.5), [19, 27], [7, 9]),
        (dict(dense_efficiency=0.8), [10, 15], [8, 10]),  # 2.1 + 5.5, 2.1 + 8.0
        # 1.0 and 0.0 are section 2 exactly
        (dict(layer_overhead_s=0.0, expert_efficiency=1.0, dense_efficiency=1.0), [10, 15], [7, 9]),
    ],
)
def test_each_figure_moves_its_own_term(change, expert_ns, dense_ns):
    m, h = model_profile(MODEL), hardware_profile(dict(GPU, **change))
    _, kernel_expert, kernel_dense = kernel_durations.cost_tables(m, h, 2)
    assert kernel_expert.tolist()[1:] == expert_ns
    assert kernel_dense.tolist()[1:] == dense_ns
    assert [reference_durations.expert_ns(m, h, n) for n in (1, 2)] == expert_ns
    assert [reference_durations.dense_ns(m, h, b) for b in (1, 2)] == dense_ns


@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference], ids=["kernel", "reference"])
def test_on_demand(impl):
    """Cache 3 (the demand-only kernel path). Step 0: key 0 over [0, 53), now 53 + 13 + 27 = 93;
    key 5 over [93, 146), now 146 + 40 = 186. Step 1: key 0 hits, key 2 over [186, 239), now
    239 + 13 + 19 + 19 = 290; key 5 hits, now 330. Step 2: key 3 evicts key 0 (least recent),
    over [330, 383), now 383 + 11 + 19 = 413; key 5 hits, now 443."""
    r = impl(_trace(), "on-demand", model=MODEL, hardware=FIXED_GPU, cache_slots=3, eviction="lru",
             batch_size=2, per_step=True, record=True)
    m = r.metrics
    assert r.outcomes.tolist() == [2, 2, 0, 2, 0, 2, 0]
    assert (m["accesses"], m["hits"], m["late"], m["misses"]) == (7, 3, 0, 4)
    np.testing.assert_array_equal(r.step_time_s, np.array([186, 144, 113]) / 1e9)
    np.testing.assert_array_equal(r.step_stall_s, np.array([106, 53, 53]) / 1e9)
    assert m["stall_s"] == 212 / 1e9
    assert m["total_time_s"] == 443 / 1e9


@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference], ids=["kernel", "reference"])
def test_oracle(impl):
    """Cache 4, oracle lookahead 1 (the general kernel path). (0, 0): key 0 over [0, 53), key 2
    prefetched over [53, 106), now 53 + 13 + 27 = 93. (0, 1): key 5 over [106, 159), now 159 + 40
    = 199. (1, 0): hits; key 3 prefetched over [199, 252); now 199 + 13 + 38 = 250. (1, 1): now
    250 + 40 = 290. (2, 0): key 3 ready at 252, a hit; now 290 + 30 = 320. (2, 1): now 350."""
    r = impl(_trace(), "oracle", model=MODEL, hardware=FIXED_GPU, cache_slots=4, eviction="lru",
             batch_size=2, lookahead=1, per_step=True, record=True)
    m = r.metrics
    assert r.outcomes.tolist() == [2, 2, 0, 0, 0, 0, 0]
    assert (m["demand_loads"], m["prefetch_loads"], m["prefetch_useful"]) == (2, 2, 2)
    np.testing.assert_array_equal(r.step_time_s, np.array([199, 91, 60]) / 1e9)
    np.testing.assert_array_equal(r.step_stall_s, np.array([119, 0, 0]) / 1e9)
    assert m["total_time_s"] == 350 / 1e9


_rate = st.floats(1e6, 1e15)
_fraction = st.floats(1e-3, 1.0)


@given(
    expert_bytes=st.integers(1, 10**10), dense_bytes=st.integers(0, 10**10),
    expert_flops=st.floats(1.0, 1e12), dense_flops=st.floats(0.0, 1e12),
    mem=_rate, flops=_rate, launch=st.floats(0.0, 1e-3),
    overhead=st.none() | st.floats(0.0, 1e-3), expert_eff=st.none() | _fraction,
    dense_eff=st.none() | _fraction, n=st.integers(1, 512),
)
def test_kernel_and_reference_agree(expert_bytes, dense_bytes, expert_flops, dense_flops, mem, flops,
                                    launch, overhead, expert_eff, dense_eff, n):
    """The two duration modules, written apart, round every profile to the same nanoseconds."""
    m = model_profile(dict(MODEL, expert_bytes=expert_bytes, dense_bytes_per_layer=dense_bytes,
                           expert_flops_per_token=expert_flops, dense_flops_per_token=dense_flops))
    h = hardware_profile(dict(GPU, mem_bytes_per_s=mem, flops_per_s=flops, launch_s=launch,
                              layer_overhead_s=overhead, expert_efficiency=expert_eff, dense_efficiency=dense_eff))
    assert kernel_durations.to_ns(kernel_durations.expert_seconds(m, h, n)) == reference_durations.expert_ns(m, h, n)
    assert kernel_durations.to_ns(kernel_durations.dense_seconds(m, h, n)) == reference_durations.dense_ns(m, h, n)
