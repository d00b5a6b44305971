"""Sweeps give strategies the schedule arrays they read: router scores (``hybrimoe``) and the
requests that finish at each step (``moe-infinity``, ``fine-moe``), as a direct replay builds
them. The sweep's workers hold a schedule, not the routing, so what a row's strategy reads must
be in the schedule the parent saves."""
from __future__ import annotations

import numpy as np
import pytest

import fastsim
from fastsim.strategies import get_strategy

STRATEGIES = ("hybrimoe", "moe-infinity", "fine-moe")


@pytest.fixture(scope="module")
def trace():
    rng = np.random.default_rng(5)
    lengths = [7, 3, 9, 5]
    experts = np.stack([rng.permutation(8)[:2] for _ in range(sum(lengths) * 3)]).reshape(-1, 3, 2)
    scores = rng.random(experts.shape).astype(np.float32)
    return fastsim.Trace.from_arrays(experts.astype(np.int16), 8, lengths, scores=scores, model="mixtral-8x7b")


def test_the_strategies_read_scores_or_requests():
    # the premise: each of them needs an array a plain schedule lacks
    assert all(get_strategy(s).needs_scores or get_strategy(s).needs_requests for s in STRATEGIES)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_sweep_rows_equal_direct_replays(tmp_path, trace, batch_size):
    # a 3-layer slice of Mixtral: give its shape as a mapping
    model = {**fastsim.profiles.model_profile("mixtral-8x7b").as_dict(), "name": "mixtral-3", "num_layers": 3}
    configs = [dict(strategy=s, model=model, hardware="h100-pcie", cache_slots=9, eviction=e, batch_size=batch_size)
               for s in STRATEGIES for e in ("lru",)]
    table = fastsim.replay_many(trace, configs).to_pylist()
    assert [row["error"] for row in table] == [None] * len(configs)
    for cfg, row in zip(configs, table):
        direct = fastsim.replay(trace, **cfg).metrics
        assert row["hits"] == direct["hits"] and row["total_time_s"] == direct["total_time_s"], cfg
