"""Sweep specs, grid expansion, the driver's tables, error rows and replay_many."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.errors import ConfigError, SpecError
from fastsim.replay import METRICS
from fastsim.sweep import load_spec, run_grid, run_sweep
from fastsim.sweep.grid import expand
from fastsim.trace.generate import generate_trace

REPO = Path(__file__).resolve().parents[1]

BASE = """\
name = "t"
seed = 3
runs = 2
batch_sizes = [1, 2]
caches = ["working-set", 24]

[[traces]]
name = "gen"
model = "switch-base-128-decoder"
tokens = 300
sequences = 3

[strategies.on-demand]

[strategies.top-k]
k = [4, 8]
decay_factor = [0.9, 0.99]

[strategies.oracle]
lookahead = [3]
"""


def write_spec(tmp_path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def without_wall(table):
    return table.drop(["wall_s"])


# ------------------------------------------------------------------ spec validation


@pytest.mark.parametrize(
    "edit, needle, key",
    [
        (lambda t: t.replace('seed = 3', 'seed = 3\nnmae = "x"'), "nmae", "nmae"),
        (lambda t: t.replace("runs = 2", 'runs = "two"'), "runs =", "runs"),
        (lambda t: t.replace("[strategies.oracle]", "[strategies.no-such]"), "no-such", "strategies.no-such"),
        (lambda t: t.replace("k = [4, 8]", "kk = [4, 8]"), "kk =", "strategies.top-k.kk"),
        (lambda t: t.replace("k = [4, 8]", "k = [4, 0]"), "k = [4, 0]", "strategies.top-k.k[1]"),
        (lambda t: t.replace('caches = ["working-set", 24]', 'caches = ["working-set", "lots"]'), "lots", "caches[1]"),
        (lambda t: t.replace('caches = ["working-set", 24]', 'caches = [2.5]'), "2.5", "caches[0]"),
        (lambda t: t.replace("decay_factor = [0.9, 0.99]", "decay_factor = []"), "decay_factor", "strategies.top-k.decay_factor"),
        (lambda t: t.replace("batch_sizes = [1, 2]", "batch_sizes = [1, 0]"), "batch_sizes", "batch_sizes[1]"),
        (lambda t: t.replace("tokens = 300", "tokens = 300\nzipf_s = -1"), "zipf_s", "traces[0].zipf_s"),
        (lambda t: t.replace('name = "gen"', 'name = "gen"\nfile = "x.parquet"'), "tokens = 300", "traces[0].tokens"),
    ],
)
def test_spec_errors_name_key_and_line(tmp_path, edit, needle, key):
    text = edit(BASE)
    assert text != BASE
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"line {line_of(text, needle)}:" in message
    assert f" {key}:" in message


def test_toml_syntax_error_names_line(tmp_path):
    text = BASE.replace("runs = 2", "runs = = 2")
    with pytest.raises(SpecError, match=rf"line {line_of(text, 'runs = =')}"):
        load_spec(write_spec(tmp_path, text))


def test_missing_strategies_and_traces(tmp_path):
    with pytest.raises(SpecError, match="strategies"):
        load_spec({"traces": [{"model": "switch-base-128", "tokens": 10}]})
    with pytest.raises(SpecError, match="traces"):
        load_spec({"strategies": {"on-demand": {}}})


def test_cli_bad_spec_exits_2(tmp_path):
    path = write_spec(tmp_path, BASE.replace("[strategies.oracle]", "[strategies.nope]"))
    proc = subprocess.run(
        [sys.executable, "-m", "fastsim.cli.main", "sweep", str(path), "--out", str(tmp_path / "o"), "-q"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("fastsim: error:") and "strategies.nope" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "results.parquet").exists()


def test_smoke_spec_covers_every_strategy():
    spec = load_spec(REPO / "sweeps" / "smoke.toml")
    # the built-ins only: other tests register strategies of their own in this process
    assert {g.strategy for g in spec.grids} == {"on-demand", "oracle", "multi-look", "top-k", "intelligent"}
    assert spec.runs == 2 and len(spec.batch_sizes) == 2


# ------------------------------------------------------------------ expansion


def test_expansion_product_dedup_and_baselines():
    spec = load_spec(
        {
            "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 50}],
            "caches": [24],
            "strategies": {
                # two grids overlapping at k=8 (decay 0.999 is the default, so both name it)
                "top-k": [{"k": [4, 8]}, {"k": [8, 16], "decay_factor": [0.999, 0.5]}],
                "on-demand": {"caches": ["working-set", 24]},
            },
        }
    )
    model = fastsim.profiles.model_profile("switch-base-128-decoder")
    configs, baseline_of = expand(spec, {"g": (model,)})
    topk = [(c.param_dict()["k"], c.param_dict()["decay_factor"]) for c in configs if c.strategy == "top-k"]
    # grid 1: (4, .999), (8, .999); grid 2: (8, .999) again, (8, .5), (16, .999), (16, .5)
    assert topk == [(4, 0.999), (8, 0.999), (8, 0.5), (16, 0.999), (16, 0.5)]
    ondemand = [c.cache.label for c in configs if c.strategy == "on-demand"]
    # the working-set on-demand baseline comes first and is not repeated by the grid
    assert ondemand == ["working-set", "24 slots"]
    assert configs[0].strategy == "on-demand" and configs[0].cache.label == "working-set"
    assert all(b == 0 for b in baseline_of)


def test_dedup_gives_one_row(tmp_path):
    spec = {
        "runs": 1,
        "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 80}],
        "caches": [24],
        "strategies": {"top-k": [{"k": [4, 32]}, {"k": [32], "window": [10]}]},
    }
    table = fastsim.sweep(spec, out=tmp_path / "o")
    # baseline + k=4 + k=32 (window 10 is the default): three rows, not four
    assert table.num_rows == 3
    assert table["strategy"].to_pylist() == ["on-demand", "top-k", "top-k"]
    assert len(set(table["config_hash"].to_pylist())) == 3


# ------------------------------------------------------------------ results


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    path = write_spec(tmp, BASE)
    return path, run_sweep(path, n_jobs=1, out=tmp / "one")


def test_rows_match_replay(base_run):
    path, run = base_run
    table = run.table
    # 2 batch sizes x (on-demand 2 caches + top-k 4 x 2 caches + oracle 2 caches) x 2 runs
    assert table.num_rows == 2 * (2 + 8 + 2) * 2
    assert not run.failures
    assert table["error"].null_count == table.num_rows
    rows = table.to_pylist()
    assert [(r["config_id"], r["run"]) for r in rows] == sorted((r["config_id"], r["run"]) for r in rows)
    traces = {run_: generate_trace("switch-base-128-decoder", 300, 3, 3 + run_) for run_ in (0, 1)}
    for r in rows:
        trace = traces[r["run"]]
        assert r["seed"] == 3 + r["run"] and r["trace_fingerprint"] == trace.fingerprint()
        params = {k[len("param_"):]: v for k, v in r.items() if k.startswith("param_") and v is not None}
        cache = {"cache_slots": "working-set"} if r["cache_request"] == "working-set" else {"cache_slots": 24}
        ref = fastsim.replay(trace, r["strategy"], model="switch-base-128-decoder", batch_size=r["batch_size"], **cache, **params)
        for m in METRICS:
            assert r[m] == ref.metrics[m], (r["strategy"], m)
        base = fastsim.replay(trace, "on-demand", model="switch-base-128-decoder", batch_size=r["batch_size"], cache_slots="working-set")
        assert r["speedup"] == pytest.approx(base.metrics["total_time_s"] / ref.metrics["total_time_s"], rel=1e-12)
        assert r["model_expert_bytes"] == fastsim.profiles.model_profile("switch-base-128-decoder").expert_bytes
        assert r["hw_h2d_bytes_per_s"] == fastsim.profiles.hardware_profile("rtx3090").h2d_bytes_per_s
        assert r["fastsim_version"] == fastsim.__version__ and r["spec_hash"] == load_spec(path).spec_hash
    written = pq.read_table(run.out_dir / "results.parquet")
    assert written.equals(table)


def test_jobs_1_and_2_identical(base_run, tmp_path):
    path, one = base_run
    two = run_sweep(path, n_jobs=2, out=tmp_path / "two", chunk_size=3)
    assert len({t.pid for t in two.tasks}) >= 1 and all(t.pid != os.getpid() for t in two.tasks)
    assert two.worker_compilations == 0
    assert without_wall(two.table).equals(without_wall(one.table))


def test_error_rows_and_exit_1(tmp_path):
    # a 2-slot cache fits batch size 1 (top-1 routing) but not batch size 4
    text = """\
    runs = 1
    batch_sizes = [1, 4]
    caches = [2]
    [[traces]]
    name = "g"
    model = "switch-base-128-decoder"
    tokens = 120
    sequences = 4
    [strategies.top-k]
    k = [2]
    """
    path = write_spec(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "fastsim.cli.main", "sweep", str(path), "--out", str(tmp_path / "o"), "-q"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 1, proc.stderr
    table = pq.read_table(tmp_path / "o" / "results.parquet")
    rows = table.to_pylist()
    assert [(r["strategy"], r["batch_size"]) for r in rows] == [
        ("on-demand", 1), ("top-k", 1), ("on-demand", 4), ("top-k", 4)
    ]
    bad = rows[3]
    assert bad["error"] and "smaller than the working set" in bad["error"]
    assert bad["hits"] is None and bad["speedup"] is None and bad["cache_slots"] is None
    assert all(r["error"] is None for r in rows[:3])
    assert "1 configuration run(s) failed" in proc.stderr and "config 3, run 0 (top-k" in proc.stderr


def test_file_trace_runs_repeat(tmp_path):
    trace = generate_trace("switch-base-128-decoder", 100, 2, 5)
    trace.write(tmp_path / "t.parquet")
    spec = {
        "runs": 2,
        "traces": [{"file": "t.parquet"}],
        "strategies": {"on-demand": {}},
    }
    table = fastsim.sweep(load_spec(spec, base_dir=tmp_path), out=tmp_path / "o")
    rows = table.to_pylist()
    assert [r["run"] for r in rows] == [0, 1] and [r["seed"] for r in rows] == [None, None]
    assert rows[0]["trace"] == "t" and rows[0]["hits"] == rows[1]["hits"]
    assert rows[0]["config_hash"] != rows[1]["config_hash"]


# ------------------------------------------------------------------ replay_many


def test_replay_many_matches_replay():
    trace = generate_trace("switch-base-128-decoder", 200, 2, 11)
    configs = [
        {"strategy": "top-k", "k": 4, "cache_slots": 16},
        {"strategy": "top-k", "params": {"k": 8}, "cache_bytes": 30 * fastsim.profiles.model_profile("switch-base-128-decoder").expert_bytes, "batch_size": 2},
        {"strategy": "oracle", "lookahead": 2, "cache_slots": 16, "eviction": "belady"},
        {"strategy": "on-demand"},
    ]
    table = fastsim.replay_many(trace, configs, baseline=True)
    rows = table.to_pylist()
    assert [r["strategy"] for r in rows[:4]] == ["top-k", "top-k", "oracle", "on-demand"]
    for cfg, row in zip(configs, rows):
        kw = dict(cfg)
        kw.update(kw.pop("params", {}))
        ref = fastsim.replay(trace, **kw)
        assert {m: row[m] for m in METRICS} == ref.metrics
    # batch size 2 needs its own on-demand baseline, appended after the given configs
    assert rows[4]["strategy"] == "on-demand" and rows[4]["batch_size"] == 2
    assert rows[3]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(rows[4]["total_time_s"] / rows[1]["total_time_s"])


def test_replay_many_bad_config_raises():
    trace = generate_trace("switch-base-128-decoder", 20, 1, 0)
    with pytest.raises(ConfigError, match=r"configs\[1\].*no parameter 'kk'"):
        fastsim.replay_many(trace, [{"strategy": "on-demand"}, {"strategy": "top-k", "kk": 1, "cache_slots": 8}])
    with pytest.raises(ConfigError, match=r"configs\[0\].*cache"):
        fastsim.replay_many(trace, [{"strategy": "top-k"}])


def test_run_grid_workers_do_not_compile():
    trace = generate_trace("switch-base-128-decoder", 300, 2, 1)
    configs = [{"strategy": "top-k", "k": k, "cache_slots": 32} for k in (2, 4, 8, 16)]
    grid = run_grid(trace, configs, n_jobs=2, chunk_size=1)
    assert len(grid.tasks) == 4 and all(t.pid != os.getpid() for t in grid.tasks)
    assert grid.worker_compilations == 0
    single = run_grid(trace, configs, n_jobs=1)
    assert without_wall(grid.table).equals(without_wall(single.table))
    assert np.all(np.asarray(grid.table["hits"]) >= 0)


def test_generator_preset_passthrough(tmp_path):
    spec = {
        "runs": 1, "seed": 4,
        "traces": [{"preset": "switch-seed", "tokens": 60, "sequences": 2}],
        "strategies": {"on-demand": {}},
    }
    row = fastsim.sweep(spec, out=tmp_path / "o").to_pylist()[0]
    expected = generate_trace("switch-base-128", 60, 2, 4, preset="switch-seed")
    assert row["trace"] == "switch-seed-60" and row["model"] == "switch-base-128"
    assert row["trace_fingerprint"] == expected.fingerprint()
