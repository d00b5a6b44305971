"""Recorded batching in sweeps (docs/sweeps.md, ``batchings``; docs/model.md, "Recorded
batching"): a recorded trace swept through ``fastsim.replay_many`` and ``fastsim.sweep`` gives, per
row, what ``fastsim.replay`` gives with that row's batching; rows record the batching in a
``batching`` column, replay again from it, and hash as before wherever they batch continuously."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.errors import ConfigError, SpecError
from fastsim.profiles import hardware_profile, model_profile
from fastsim.sweep.grid import make_config, row_hash
from fastsim.sweep.schedules import schedule_dir_name
from fastsim.sweep.spec import CacheRequest

MODEL = "switch-base-128[0,1]"  # derived: 2 layers of 128 experts, top-1
RECORDED = {"batching": "recorded"}
PASSES = [6, 0, 9, 4, 11, 7]  # recorded forward passes, an empty one among them
#: (strategy, eviction, extra arguments): a few entry points, each compiled once
CONFIGS = [
    ("on-demand", "lru", {"cache_slots": "working-set"}),
    ("on-demand", "belady", {"cache_slots": 40}),
    ("top-k", "lru", {"cache_slots": 40, "k": 4}),
]
METRICS = ("total_time_s", "stall_s", "hits", "misses", "steps", "tokens")


def recorded_trace(metadata=RECORDED, prompts=None) -> fastsim.Trace:
    """Skewed routing over 128 experts, one sequence per recorded pass."""
    rng = np.random.default_rng(7)
    tokens = sum(PASSES)
    experts = np.minimum(rng.zipf(1.6, size=(tokens, 2, 1)) - 1, 127)
    return fastsim.Trace.from_arrays(experts, 128, PASSES, model=MODEL, metadata=metadata, prompt_tokens=prompts)


def _mapping(strategy, eviction, extra, batching) -> dict:
    out = {"strategy": strategy, "eviction": eviction, "hardware": "rtx3090", **extra}
    if batching is not None:
        out["batching"] = batching
    return out


def _direct(trace, row: dict) -> dict:
    """``fastsim.replay`` of a results row, with the row's batching."""
    extra = {"k": int(row["param_k"])} if row["strategy"] == "top-k" else {}
    slots = row["cache_request"].split()[0]
    result = fastsim.replay(trace, row["strategy"], hardware="rtx3090", eviction=row["eviction"],
                            cache_slots=slots if slots == "working-set" else int(slots), batching=row["batching"],
                            **extra)
    return result.metrics


def _assert_rows_replay(trace, table) -> None:
    rows = table.to_pylist()
    assert rows and all(r["error"] is None for r in rows)
    for row in rows:
        want = _direct(trace, row)
        assert {m: row[m] for m in METRICS} == {m: want[m] for m in METRICS}, row["config_hash"]


# ------------------------------------------------------------------------- replay_many


@pytest.mark.parametrize("batching", [None, "continuous", "recorded"])
def test_replay_many_rows_equal_replay(batching):
    trace = recorded_trace()
    table = fastsim.replay_many(trace, [_mapping(s, e, x, batching) for s, e, x in CONFIGS])
    # None is the trace's default: its metadata says recorded
    assert table["batching"].to_pylist() == [batching or "recorded"] * len(CONFIGS)
    _assert_rows_replay(trace, table)


def test_the_two_batchings_differ_on_a_recorded_trace():
    trace = recorded_trace()
    table = fastsim.replay_many(trace, [_mapping("on-demand", "lru", {}, b) for b in ("continuous", "recorded")])
    steps = table["steps"].to_pylist()
    assert steps == [sum(PASSES), len([p for p in PASSES if p])]
    assert len(set(table["config_hash"].to_pylist())) == 2


def test_replay_many_with_prefill_on_recorded_passes():
    """Prefill bookkeeping travels with the recorded schedule (the worker's memo keys)."""
    trace = recorded_trace(prompts=[3, 0, 4, 1, 5, 2])
    given = {"strategy": "on-demand", "hardware": "rtx3090", "timeline": "layered", "prefill": True}
    table = fastsim.replay_many(trace, [given])
    row = table.to_pylist()[0]
    assert row["error"] is None and row["batching"] == "recorded"
    want = fastsim.replay(trace, "on-demand", hardware="rtx3090", cache_slots="working-set",
                          timeline="layered", prefill=True).metrics
    assert {m: row[m] for m in ("total_time_s", "ttft_s", "hits")} == {
        m: want[m] for m in ("total_time_s", "ttft_s", "hits")}


def test_a_bad_batching_in_replay_many_names_the_configuration():
    with pytest.raises(ConfigError, match=r"configs\[0\]: batching"):
        fastsim.replay_many(recorded_trace(), [{"strategy": "on-demand", "batching": "bogus"}])


def test_recorded_rows_at_a_larger_batch_fail_with_the_reason():
    table = fastsim.replay_many(recorded_trace(), [{"strategy": "on-demand", "hardware": "rtx3090", "batch_size": 4}])
    assert "batch_size = 4" in table["error"].to_pylist()[0]


# ------------------------------------------------------------------------------ sweeps


def _spec(trace_file, batchings=None) -> dict:
    spec = {
        "name": "recorded", "hardware": "rtx3090", "traces": [{"name": "passes", "file": str(trace_file)}],
        "caches": ["working-set", 40], "evictions": ["lru", "belady"],
        "strategies": {"on-demand": {}, "top-k": {"k": 4, "caches": [40], "evictions": ["lru"]}},
    }
    if batchings is not None:
        spec["batchings"] = batchings
    return spec


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A recorded trace file swept under both batchings: ``(trace, folder, table)``."""
    folder = tmp_path_factory.mktemp("recorded")
    trace = recorded_trace()
    trace.write(folder / "passes.parquet")
    table = fastsim.sweep({**_spec(folder / "passes.parquet", ["continuous", "recorded"]), "bound": True},
                          out=folder / "out")
    return trace, folder / "out", table


def test_sweep_rows_equal_replay_under_both_batchings(swept):
    trace, _, table = swept
    assert table["batching"].to_pylist().count("recorded") == table.num_rows // 2
    assert set(table["batching"].to_pylist()) == {"continuous", "recorded"}
    _assert_rows_replay(trace, table)


def test_sweep_without_the_axis_takes_the_traces_default(swept, tmp_path):
    trace, out, both = swept
    table = fastsim.sweep(_spec(out.parent / "passes.parquet"), out=tmp_path / "out")
    assert set(table["batching"].to_pylist()) == {"recorded"}
    # the same rows, hashes included, as the recorded half of the sweep with both
    recorded = [r for r in both.to_pylist() if r["batching"] == "recorded"]
    assert table["config_hash"].to_pylist() == [r["config_hash"] for r in recorded]
    assert table["total_time_s"].to_pylist() == [r["total_time_s"] for r in recorded]


def test_bound_columns_cover_both_batchings(swept):
    """``bound = true`` bounds a recorded row by the bound of the recorded passes (docs/bounds.md,
    "Recorded batching"), and its headroom is measured against on-demand of the same batching."""
    trace, _, table = swept
    rows = table.to_pylist()
    for row in rows:
        slots = row["cache_request"].split()[0]
        want = fastsim.bound(trace, hardware="rtx3090", cache_slots=slots if slots == "working-set" else int(slots),
                             batching=row["batching"])
        assert row["bound_total_time_s"] == want.total_time_s, row["config_hash"]
        assert row["bound_total_time_s"] <= row["total_time_s"] + 1e-12
        od = [o for o in rows if o["strategy"] == "on-demand" and o["batching"] == row["batching"]
              and o["cache_request"] == row["cache_request"] and o["eviction"] == row["eviction"]]
        assert len(od) == 1
        head = od[0]["total_time_s"] - row["bound_total_time_s"]
        if head > 0:
            assert row["headroom_share"] == pytest.approx((od[0]["total_time_s"] - row["total_time_s"]) / head)
    by_batching = {(r["batching"], r["cache_request"]): r["bound_total_time_s"] for r in rows}
    assert by_batching[("recorded", "40 slots")] != by_batching[("continuous", "40 slots")]


def test_recorded_schedules_are_saved_apart(swept):
    _, out, _ = swept
    names = sorted(p.name for p in (out / ".schedules").iterdir())
    assert any("-b1-rec" in n for n in names) and any("-b1-rec" not in n for n in names)


def test_replay_row_reproduces_rows_of_both_batchings(swept):
    _, out, table = swept
    for n in range(table.num_rows):
        again = fastsim.replay_row(out / "results.parquet", n)
        assert again.reproduces, (n, again.differences)
        assert again.config_hash_matches
        assert again.result.config["batching"] == table["batching"][n].as_py()


def test_replay_row_of_a_table_without_the_column_replays_continuously(swept):
    """Older tables have no batching column: their sweeps batched continuously."""
    trace, out, table = swept
    old = pq.read_table(out / "results.parquet")
    n = old["batching"].to_pylist().index("continuous")
    old = old.drop_columns(["batching"])
    again = fastsim.replay_row(old, n, trace=trace)
    assert again.reproduces and again.config_hash_matches
    assert again.result.config["batching"] == "continuous"


def test_a_bogus_batching_is_a_spec_error_naming_batchings(tmp_path):
    with pytest.raises(SpecError, match="batchings"):
        fastsim.sweep(_spec(tmp_path / "none.parquet", ["bogus"]), out=tmp_path / "out")
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "bad"\nbatchings = ["continuous", "bogus"]\n'
                    '[[traces]]\nname = "g"\nmodel = "switch-base-128"\ntokens = 40\nsequences = 2\n'
                    '[strategies.on-demand]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2


# -------------------------------------------------------------------------------- hashes


def _config(**over):
    return make_config("t", model_profile(MODEL), hardware_profile("rtx3090"), 1, "top-k",
                       {"k": 4}, CacheRequest("slots", 40), "lru", **over)


def test_continuous_rows_hash_as_before():
    """A configuration without batching hashes as fastsim always hashed it; so does one that
    names continuous batching. Only recorded batching adds a key."""
    before = row_hash(_config(), "fp", 0, None)
    assert row_hash(_config(batching="continuous"), "fp", 0, None) == before
    assert "batching" not in _config(batching="continuous").identity()
    assert row_hash(_config(batching="recorded"), "fp", 0, None) != before
    assert _config(batching="recorded").identity()["batching"] == "recorded"


def test_continuous_schedule_folders_keep_their_names():
    assert schedule_dir_name("fp", 4, True) == schedule_dir_name("fp", 4, True, batching="continuous") == "fp-b4-nu"
    assert schedule_dir_name("fp", 1, True, batching="recorded") == "fp-b1-rec-nu"


def test_make_config_rejects_an_unknown_batching():
    with pytest.raises(ConfigError, match="batching"):
        _config(batching="bogus")


def test_a_recorded_trace_plans_with_its_recorded_batching():
    """``fastsim plan`` replays through the sweep machinery at batch size 1."""
    plan = fastsim.plan(recorded_trace(), hardware="rtx3090", strategies=["on-demand"], evictions=["lru"],
                        partitions=["global"], sizes=2)
    replays = [r for r in plan.table.to_pylist() if r["strategy"] == "on-demand"]
    assert replays and all(r["error"] is None and r["batching"] == "recorded" for r in replays)
    assert {r["steps"] for r in replays} == {len([p for p in PASSES if p])}
