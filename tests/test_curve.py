"""One-pass cache-size curves equal one replay per size exactly (every metric), on drawn traces,
global and per-layer caches, batch sizes 1-8; the fallback and the command line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.cli.main import main
from fastsim.curve import COLD, cache_curve, stack_distances
from fastsim.replay import schedule_for

from hypothesis_budget import examples
from timeline_helpers import hardware_profiles, model_profiles, traces


@examples(0.5)
@given(data=st.data())
def test_one_pass_equals_per_size_replays(data):
    trace = data.draw(traces(max_tokens=40, max_experts=12, max_layers=4, max_k=3, max_sequences=4))
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    model = data.draw(model_profiles(L, E, K))
    hw = data.draw(hardware_profiles())
    batch = data.draw(st.integers(1, 8))
    partition = data.draw(st.sampled_from(["global", "per-layer"]))
    sched = schedule_for(trace, batch, False)
    if partition == "per-layer":
        ws = max([0] + [len(sched.R(s, l)[0]) for s in range(sched.num_steps) for l in range(L)])
        least = max(1, ws) * L
    else:
        least = max(1, sched.max_working_set)
    sizes = sorted(set(data.draw(st.lists(st.integers(least, least + L * E + 3), min_size=1, max_size=8))))
    curve = cache_curve(trace, sizes, model=model, hardware=hw, batch_size=batch, cache_partition=partition)
    assert curve.method == "stack"
    for c, row in zip(sizes, curve.rows):
        want = fastsim.replay(trace, "on-demand", model, hw, cache_slots=c, batch_size=batch,
                              cache_partition=partition).metrics
        assert row == {"cache_slots": c, **want}


def test_stack_distance_by_hand():
    # one layer, E = 4, batch 1, top-1: keys 0 1 0 2 1 0
    experts = np.array([0, 1, 0, 2, 1, 0]).reshape(6, 1, 1)
    trace = fastsim.Trace.from_arrays(experts, 4)
    sched = schedule_for(trace, 1, False)
    dist, first = stack_distances(sched.r_ptr, sched.r_experts, 1, 4, False)
    # 0: cold; 1: cold; 0: {1} used since -> 2; 2: cold; 1: {0, 2} -> 3; 0: {2, 1} -> 3
    assert dist.tolist() == [COLD, COLD, 2, COLD, 3, 3]
    assert first.tolist() == [0, 1, 3, -1]


def test_keys_of_one_position_measure_before_any_moves():
    # batch 2, top-1: sequence 0 routes 0 1 1, sequence 1 routes 2 0, so the steps' R are
    # {0, 2}, {0, 1}, {1}
    experts = np.array([0, 1, 1, 2, 0]).reshape(5, 1, 1)
    trace = fastsim.Trace.from_arrays(experts, 3, sequence_lengths=[3, 2])
    sched = schedule_for(trace, 2, False)
    dist, _ = stack_distances(sched.r_ptr, sched.r_experts, 1, 3, False)
    # step 1: 0 was used before 2 in step 0, so one key (2) is more recent: distance 2; 1 is new.
    # step 2: 1's last use was step 1, after 0 in demand order: nothing more recent, distance 1
    assert dist.tolist() == [COLD, COLD, 2, COLD, 1]


def test_other_configurations_replay_each_size():
    trace = fastsim.Trace.from_arrays(np.random.default_rng(3).integers(0, 6, (30, 2, 1)), 6)
    model = dict(name="m", num_layers=2, num_experts=6, top_k=1, expert_bytes=1000, dense_bytes_per_layer=0,
                 expert_flops_per_token=10.0, dense_flops_per_token=5.0)
    curve = cache_curve(trace, [2, 5, 9], model=model, eviction="belady")
    assert curve.method == "replay"
    for c, row in zip([2, 5, 9], curve.rows):
        assert row["hits"] == fastsim.replay(trace, "on-demand", model, cache_slots=c, eviction="belady").metrics["hits"]
    with pytest.raises(fastsim.ConfigError, match="one-pass curve"):
        cache_curve(trace, [4], model=model, eviction="belady", method="stack")
    with pytest.raises(fastsim.ConfigError, match="working set"):
        cache_curve(trace, [0, 4], model=model)


def test_command_line(tmp_path, capsys):
    trace = fastsim.Trace.from_arrays(np.random.default_rng(5).integers(0, 8, (50, 2, 2)) * 0
                                      + np.array([0, 1]), 8, model="m")
    path = tmp_path / "t.parquet"
    trace.write(path)
    model = tmp_path / "m.toml"
    model.write_text('[m]\nnum_layers = 2\nnum_experts = 8\ntop_k = 2\nexpert_bytes = 1000\n'
                     'dense_bytes_per_layer = 0\nexpert_flops_per_token = 10.0\ndense_flops_per_token = 5.0\n')
    out = tmp_path / "curve.csv"
    assert main(["curve", str(path), "--model", str(model), "--cache-range", "2:10:4", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "stack" and [r["cache_slots"] for r in doc["rows"]] == [2, 6, 10]
    assert out.read_text().splitlines()[0].startswith('"cache_slots"')
    assert main(["curve", str(path), "--model", str(model), "--cache-slots", "2,x"]) == 2
    assert "--cache-slots" in capsys.readouterr().err
    assert main(["curve", str(path), "--model", str(model), "--cache-slots", "4", "--out", str(tmp_path / "a.txt")]) == 2
    assert not (tmp_path / "a.txt").exists()
