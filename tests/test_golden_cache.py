"""A hand-worked byte-budget case on the general core, against both implementations: one large
key's load evicts two small ones, so occupancy falls and ``peak_resident`` is not the final
occupancy (docs/model.md, "Cache organisation": byte budgets).

Two layers, two experts, top-1, batch 1. Layer 0's experts are 1000 bytes, layer 1's 2000; the
cache holds 2000 bytes. Link 10 GB/s: loads take 100 ns (layer 0) and 200 ns (layer 1);
``expert_ns(1) = 10``, ``dense_ns(1) = 5``. The test strategy wanting nothing runs the general core.

- step 0: layer 0 demands key 0 (miss, [0, 100)): compute 100 + 5 + 10 = 115; layer 1 has no
  demand: 115 + 5 = 120. Occupancy 1, 1.
- step 1: layer 0 demands key 1 (miss; 1000 + 1000 bytes fit): [120, 220), compute 220 + 15 =
  235; layer 1: 240. Occupancy 2, 2.
- step 2: layer 0 has no demand: 245. Layer 1 demands key 2 (2000 bytes): it needs 2000 free, so
  LRU evicts key 0, then key 1; load [245, 445), compute 445 + 15 = 460. Occupancy 2, 1.

Totals: 3 misses, 4000 bytes loaded, stall 100 + 100 + 200 = 400 ns, total 460 ns, per-step time
[120, 120, 220] and stall [100, 100, 200]; occupancy samples 1, 1, 2, 2, 2, 1: mean 1.5, peak 2
keys, and peak bytes 2000 (keys 0 and 1, or key 2 alone).
"""
import numpy as np
import pytest

import fastsim
from fastsim.profiles import ModelProfile
from fastsim.reference import replay_reference

from timeline_helpers import fixed_keys_strategy, hardware

TRACE = fastsim.Trace.from_arrays(np.array([[[0], [-1]], [[1], [-1]], [[-1], [0]]]), 2, [3])
MODEL = ModelProfile(
    name="mixed", num_layers=2, num_experts=2, top_k=1, expert_bytes=(1000, 2000), dense_bytes_per_layer=0,
    expert_flops_per_token=10.0, dense_flops_per_token=5.0,
)


@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference], ids=["kernel", "reference"])
def test_large_key_evicts_two_small_ones(impl):
    fixed_keys_strategy()
    r = impl(TRACE, "test-fixed-keys", model=MODEL, hardware=hardware(1e10, 0.0), cache_bytes=2000,
             per_step=True, record=True, seed=0, count=0)
    m = r.metrics
    assert (m["accesses"], m["hits"], m["late"], m["misses"]) == (3, 0, 0, 3)
    assert (m["demand_loads"], m["prefetch_loads"], m["h2d_bytes"]) == (3, 0, 4000)
    assert m["stall_s"] == 400e-9 and m["total_time_s"] == 460e-9
    np.testing.assert_array_equal(np.round(r.step_time_s * 1e9), [120, 120, 220])
    np.testing.assert_array_equal(np.round(r.step_stall_s * 1e9), [100, 100, 200])
    assert m["mean_resident"] == 1.5
    assert (m["peak_resident"], m["peak_cache_bytes"]) == (2, 2000)
    assert r.outcomes.tolist() == [2, 2, 2]
