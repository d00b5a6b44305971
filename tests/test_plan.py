"""``fastsim plan``: its answers equal what individual replays and bounds say, its rows record what
made them, and its command line writes the page, the plot and the table or fails in one line."""
from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.errors import ConfigError
from fastsim.plan.grid import build_grid, cache_ladder, gpu_slots
from fastsim.profiles import hardware_profile, model_profile
from fastsim.replay import schedule_for
from fastsim.trace.generate import generate_trace

# a mixtral-shaped model with four layers: real expert and link sizes, a trace that replays fast
MODEL = dict(
    name="tiny-mixtral", num_layers=4, num_experts=8, top_k=2, expert_bytes=352_321_536,
    dense_bytes_per_layer=83_968_000, expert_flops_per_token=352_321_536.0, dense_flops_per_token=83_951_616.0,
)
HARDWARE = "rtx3090"
GRID = dict(strategies=["on-demand", "top-k:k=2"], evictions=["lru", "fifo"], partitions=["global", "per-layer"],
            sizes=4)
GB = 1e9


@pytest.fixture(scope="module")
def trace():
    return generate_trace((4, 8, 2), 300, sequences=3, seed=7)


@pytest.fixture(scope="module")
def plan(trace):
    return fastsim.plan(trace, MODEL, HARDWARE, target_tokens_per_s=1.0, budget_gb=5.0, trace_name="tiny", **GRID)


@pytest.fixture(scope="module")
def direct(trace, plan):
    """``{(strategy, eviction, partition, slots): metrics}`` from one fastsim.replay each."""
    out = {}
    for s in plan.grid.strategies:
        for ev in GRID["evictions"]:
            for part in GRID["partitions"]:
                for c in plan.grid.sizes:
                    if part == "per-layer" and c < plan.grid.per_layer_min:
                        continue
                    r = fastsim.replay(trace, s.name, MODEL, HARDWARE, cache_slots=c, eviction=ev,
                                       cache_partition=part, **dict(s.params))
                    out[(s.label, ev, part, c)] = r.metrics
    return out


def _targets(direct):
    speeds = sorted({m["tokens_per_s"] for m in direct.values()})
    return [speeds[0], speeds[len(speeds) // 2], speeds[-1], speeds[-1] * 1.01]


def test_every_row_equals_its_own_replay(plan, direct):
    assert len(plan.replays) == len(direct) and not plan.failures
    for row in plan.replays:
        want = direct[(row["strategy_label"], row["eviction"], row["cache_partition"], row["cache_slots"])]
        assert row["tokens_per_s"] == want["tokens_per_s"]
        assert row["total_time_s"] == want["total_time_s"]
        assert row["hits"] == want["hits"]


def test_smallest_cache_meeting_the_target_is_what_replays_say(plan, direct):
    for target in _targets(direct):
        answer = dataclasses.replace(plan, target_tokens_per_s=target).smallest
        for s in plan.grid.strategies:
            meeting = sorted(c for (label, _, _, c), m in direct.items()
                             if label == s.label and m["tokens_per_s"] >= target)
            got = answer[s.label]
            if not meeting:
                assert got is None
                continue
            assert got["cache_slots"] == meeting[0]
            fastest = max(m["tokens_per_s"] for (label, _, _, c), m in direct.items()
                          if label == s.label and c == meeting[0])
            assert got["tokens_per_s"] == fastest >= target


def test_best_under_the_budget_is_the_fastest_row_within_it(plan, direct):
    sizes = plan.grid.sizes
    budgets = [plan.grid.gb(c) for c in sizes] + [plan.grid.gb(sizes[0]) * 0.99, 1e6]
    for budget in budgets:
        best = dataclasses.replace(plan, budget_gb=budget).best
        within = [m["tokens_per_s"] for (_, _, _, c), m in direct.items() if c * MODEL["expert_bytes"] <= budget * GB]
        if not within:
            assert best is None
            continue
        assert best["tokens_per_s"] == max(within)
        assert best["cache_slots"] * MODEL["expert_bytes"] <= budget * GB
    fastest = max(m["tokens_per_s"] for m in direct.values())
    assert dataclasses.replace(plan, budget_gb=None).best["tokens_per_s"] == fastest


def test_no_replay_is_faster_than_the_bound(plan, trace):
    assert {(b["cache_partition"], b["cache_slots"]) for b in plan.bounds} == {
        (r["cache_partition"], r["cache_slots"]) for r in plan.replays}
    for row in plan.replays:
        b = plan.bound_at(row["cache_partition"], row["cache_slots"])
        assert row["total_time_s"] >= b["total_time_s"]
        assert row["tokens_per_s"] <= b["tokens_per_s"]
    b = plan.bounds[-1]
    want = fastsim.bound(trace, MODEL, HARDWARE, cache_slots=b["cache_slots"], cache_partition=b["cache_partition"],
                         horizon=plan.meta["horizon"])
    assert b["total_time_s"] == want.total_time_s


def test_bound_answer_is_the_smallest_bounded_cache_allowing_the_target(plan):
    for target in sorted({b["tokens_per_s"] for b in plan.bounds}):
        answer = dataclasses.replace(plan, target_tokens_per_s=target).bound_smallest
        for part, row in answer.items():
            allowed = [b["cache_slots"] for b in plan.bounds
                       if b["cache_partition"] == part and b["tokens_per_s"] >= target]
            assert (row is None and not allowed) or row["cache_slots"] == min(allowed)


def test_rows_record_what_made_them(plan, trace):
    grid = plan.grid
    assert grid.sizes[0] == grid.working_set == 2 and grid.sizes[-1] == 4 * 8
    assert grid.per_layer_min == 8 and grid.per_layer_min in grid.sizes
    for row in plan.replays:
        assert row["trace"] == "tiny" and row["trace_fingerprint"] == trace.fingerprint()
        assert (row["model"], row["hardware"], row["batch_size"]) == ("tiny-mixtral", HARDWARE, 1)
        assert row["cache_gb"] == row["cache_slots"] * MODEL["expert_bytes"] / GB
        assert row["param_k"] == (2 if row["strategy"] == "top-k" else None)
        assert row["eviction"] in GRID["evictions"] and row["cache_partition"] in GRID["partitions"]
        assert row["cache_partition"] == "global" or row["cache_slots"] >= grid.per_layer_min


def test_page_names_the_trace_model_and_hardware_and_answers(plan):
    page = plan.to_markdown("plan.png")
    for word in ("tiny", plan.meta["trace_fingerprint"], "tiny-mixtral", HARDWARE, "![", "recommend_strategy",
                 "Target 1 tokens/s", "Best configuration within 5 GB", "bound (global)"):
        assert word in page
    assert page.count("\n| ") == len(plan.grid.sizes) + 1  # the curve table: header and one line per size


def test_ladder_stops_at_what_the_gpu_holds():
    model = model_profile("mixtral-8x7b")
    trace = generate_trace("mixtral-8x7b", 40, sequences=2, seed=1)
    hw = hardware_profile("rtx3090")
    grid = build_grid(trace, schedule_for(trace, 1, False), model, hw, sizes=5)
    room = gpu_slots(model, hw, 1, 20)
    assert grid.sizes[-1] == room < 256 and grid.sizes[0] == 2
    assert grid.configs(model, hw) and all(c["cache_partition"] == "global" for c in grid.configs(model, hw))
    assert cache_ladder(2, 10, 3) == [2, 6, 10] and cache_ladder(2, 10, 1) == [10]
    with pytest.raises(ConfigError, match="working set"):
        build_grid(trace, schedule_for(trace, 1, False), model, hw, cache_slots=[1])


@pytest.fixture(scope="module")
def files(trace, tmp_path_factory):
    d = tmp_path_factory.mktemp("plan")
    trace.write(d / "tiny.parquet")
    lines = [f"[{MODEL['name']}]"] + [f"{k} = {v}" for k, v in MODEL.items() if k != "name"]
    (d / "tiny.toml").write_text("\n".join(lines) + "\n")
    return d


def test_cli_out_writes_page_plot_and_table(files, capsys):
    out = files / "out"
    code = main(["plan", "--trace", str(files / "tiny.parquet"), "--model", str(files / "tiny.toml"),
                 "--hardware", HARDWARE, "--target-tokens-per-s", "1", "--budget-gb", "5", "--out", str(out),
                 "--strategies", "on-demand,top-k:k=2", "--evictions", "lru,fifo", "--sizes", "4"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "Target 1 tokens/s" in text and "Best configuration within 5 GB" in text
    page = (out / "plan.md").read_text()
    assert "tiny.parquet" in page and "tiny-mixtral" in page and "(plan.png)" in page
    assert (out / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pq.read_table(out / "plan.parquet")
    strategies = table["strategy"].to_pylist()
    assert set(strategies) == {"on-demand", "top-k", "bound"}
    assert table.num_rows == 2 * 2 * (5 + 4) + (5 + 4)  # replays at 5 global and 4 per-layer sizes, then bounds


@pytest.mark.parametrize("flags, says", [
    (["--model", "no-such-model"], "no-such-model"),
    (["--budget-gb", "-1"], "--budget-gb"),
    (["--target-tokens-per-s", "0"], "--target-tokens-per-s"),
    (["--strategies", "top-k:depth=2"], "top-k:depth=2"),
    (["--evictions", "lru,nope"], "nope"),
    (["--cache-slots", "1"], "working set"),
    (["--trace", "missing.parquet"], "missing.parquet"),
])
def test_cli_bad_input_exits_2_with_one_line(files, capsys, flags, says):
    argv = ["plan", "--trace", str(files / "tiny.parquet"), "--model", str(files / "tiny.toml"), "--hardware", HARDWARE]
    code = main(argv + flags)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("fastsim: error:") and err.count("\n") == 1 and says in err
