"""The worked example of docs/model.md: every count and nanosecond derived there by hand."""
import numpy as np
import pytest

import fastsim
from fastsim.reference import replay_reference

from timeline_helpers import hardware, model_for

# docs/model.md, "A worked example": two sequences of two tokens, two layers, top-1, batch 2
EXPERTS = np.array(
    [
        [[0], [1]],  # A0
        [[1], [3]],  # A1
        [[0], [2]],  # B0
        [[3], [-1]],  # B1 (its layer-1 entry was lost)
    ]
)
MODEL = model_for(2, 4, 1)  # expert_ns(n) = 10 n, dense_ns(b) = 5 b
GPU = hardware(1e10, 0.0)  # 1000-byte experts load in 100 ns


@pytest.mark.parametrize("impl", [fastsim.replay, replay_reference])
def test_worked_example(impl):
    trace = fastsim.Trace.from_arrays(EXPERTS, 4, [2, 2])
    r = impl(
        trace, "oracle", model=MODEL, hardware=GPU, cache_slots=5, eviction="lru", batch_size=2,
        lookahead=1, per_step=True, record=True,
    )
    m = r.metrics
    assert (m["accesses"], m["hits"], m["late"], m["misses"]) == (6, 2, 1, 3)
    assert (m["demand_loads"], m["prefetch_loads"], m["prefetch_useful"], m["prefetch_wasted"]) == (3, 3, 3, 0)
    assert m["h2d_bytes"] == 6000
    assert m["stall_s"] == 510e-9
    assert m["total_time_s"] == 620e-9
    assert (m["tokens"], m["steps"]) == (4, 2)
    assert m["tokens_per_s"] == pytest.approx(4 / 620e-9, rel=1e-12)
    assert m["mean_resident"] == 4.5
    assert (m["peak_resident"], m["peak_cache_bytes"]) == (5, 5000)
    np.testing.assert_array_equal(r.step_time_s, [530e-9, 90e-9])
    np.testing.assert_array_equal(r.step_stall_s, [470e-9, 40e-9])
    # outcomes in schedule order: key 0 | keys 5, 6 | keys 1, 3 | key 7
    assert r.outcomes.tolist() == [2, 2, 2, 0, 0, 1]
    assert [w.tolist() for w in r.wanted] == [[1, 3], [7], [], []]
