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


# ------------------------------------------------------------------ cache organisation (SPEC section 6)
# switch-base-128-decoder: 6 layers x 128 experts, top-1 (keys 0..767)


def _top(line: str):
    return lambda t: t.replace('caches = ["working-set", 24]', 'caches = ["working-set", 24]\n' + line)


def _oracle(line: str):
    return lambda t: t.replace("lookahead = [3]", "lookahead = [3]\n" + line)


def _baseline(*lines: str):
    return lambda t: t + "\n[baseline]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "edit, needle, key, says",
    [
        (_top('evictions = ["lru", "no-such-policy"]'), "no-such-policy", "evictions[1]", "unknown eviction 'no-such-policy'"),
        (_top('evictions = [3]'), "evictions = [3]", "evictions[0]", "expected an eviction policy name"),
        (_top('evictions = [{name = "score-aware", alpha = 1.5}]'), "alpha = 1.5", "evictions[0].alpha",
         "eviction 'score-aware' parameter 'alpha' must lie in (0.0, 1.0]"),
        (_top('evictions = [{name = "score-aware", alpha = [0.5, 0]}]'), "alpha = [0.5, 0]", "evictions[0].alpha[1]", "must lie in"),
        (_top('evictions = [{name = "lfu", alpha = 0.5}]'), 'name = "lfu"', "evictions[0].alpha", "has no parameter 'alpha'"),
        (_top('evictions = [{alpha = 0.5}]'), "alpha = 0.5", "evictions[0]", "needs 'name'"),
        (_top('cache_partitions = ["global", [4, 4, 4]]'), "cache_partitions", "cache_partitions[1]", "needs 6 sizes"),
        (_top('cache_partitions = ["by-layer"]'), "by-layer", "cache_partitions[0]", "expected 'global', 'per-layer'"),
        (_top('cache_partitions = [4, 4, 4, 4, 4, 4]'), "cache_partitions", "cache_partitions", "cache_partitions = [[4, 4"),
        (_top('cache_partitions = [[4, -1, 4, 4, 4, 4]]'), "cache_partitions", "cache_partitions[0]", "integers >= 0"),
        (_top('cache_partitions = []'), "cache_partitions", "cache_partitions", "the list is empty"),
        (_top('pinned = [0, -2]'), "pinned = [0, -2]", "pinned[1]", "must be >= 0, got -2"),
        (_top('pinned = [1.5]'), "pinned = [1.5]", "pinned[0]", "expected a count"),
        (_top('pinned = [[3, 3]]'), "pinned = [[3, 3]]", "pinned[0]", "listed twice"),
        (_top('pinned = [[0, 768]]'), "pinned = [[0, 768]]", "pinned[0]", "pinned key 768 is out of range"),
        (_top('pin_profiles = [1.0, 0.0]'), "pin_profiles", "pin_profiles[1]", "fraction in (0, 1]"),
        (_top('pin_profiles = [1.5]'), "pin_profiles", "pin_profiles[0]", "fraction in (0, 1]"),
        (_top('pin_profiles = [-0.5]'), "pin_profiles", "pin_profiles[0]", "fraction in (0, 1]"),
        (_top('pin_profiles = [true]'), "pin_profiles", "pin_profiles[0]", "fraction in (0, 1]"),
        (_oracle('cache_partitions = [[1, 2]]'), "cache_partitions = [[1, 2]]", "strategies.oracle.cache_partitions[0]", "needs 6 sizes"),
        (_oracle('evictions = ["lru", "nope"]'), 'evictions = ["lru", "nope"]', "strategies.oracle.evictions[1]", "unknown eviction"),
        (_oracle('pinned = [-1]'), "pinned = [-1]", "strategies.oracle.pinned[0]", ">= 0"),
        (_oracle('pin_profiles = [2]'), "pin_profiles = [2]", "strategies.oracle.pin_profiles[0]", "(0, 1]"),
        (_baseline('eviction = "nope"'), 'eviction = "nope"', "baseline.eviction", "unknown eviction"),
        (_baseline('eviction = "score-aware"', "eviction_params = {alpha = 2.0}"), "eviction_params", "baseline.eviction_params.alpha", "must lie in"),
        (_baseline('eviction_params = {alpha = 0.5}'), "eviction_params", "baseline.eviction_params.alpha", "eviction 'lru' has no parameter"),
        (_baseline('cache_partition = [1]'), "cache_partition", "baseline.cache_partition", "needs 6 sizes"),
        (_baseline('pinned = -1'), "pinned = -1", "baseline.pinned", ">= 0"),
        (_baseline('pinned = 2', 'pin_profile = 0'), "pin_profile = 0", "baseline.pin_profile", "(0, 1]"),
    ],
)
def test_organisation_spec_errors(tmp_path, edit, needle, key, says):
    text = edit(BASE)
    assert text != BASE
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(tmp_path, text))
    message = str(info.value)
    assert f"line {line_of(text, needle)}:" in message, message
    assert f" {key}:" in message, message
    assert says in message, message


def test_organisation_axes_expand_and_dedupe():
    spec = load_spec(
        {
            "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 50}],
            "caches": [24],
            "evictions": [
                "lru", {"name": "score-aware"}, {"name": "score-aware", "alpha": 0.5},  # the same: 0.5 is the default
                {"name": "activation-aware", "smoothing": [0.5, 2]},
            ],
            "cache_partitions": ["global", "per-layer", [4, 4, 4, 4, 4, 4]],
            "pinned": [0, 8, [3, 1]],
            "pin_profiles": [1.0, 0.25],
            "strategies": {
                "top-k": {"k": [4]},
                "on-demand": {"evictions": ["fifo"], "pinned": [[5]], "cache_partitions": ["per-layer"]},
            },
            "baseline": {"eviction": "lfu", "cache_partition": "per-layer", "pinned": 2, "pin_profile": 0.5},
        }
    )
    assert [e.label for e in spec.evictions] == [
        "lru", "score-aware(alpha=0.5)", "activation-aware(smoothing=0.5)", "activation-aware(smoothing=2)"
    ]
    assert spec.cache_partitions == ("global", "per-layer", (4, 4, 4, 4, 4, 4))
    assert spec.pinned == (None, 8, (1, 3))
    model = fastsim.profiles.model_profile("switch-base-128-decoder")
    configs, baseline_of = expand(spec, {"g": (model,)})
    topk = [c for c in configs if c.strategy == "top-k"]
    # 4 evictions x 3 partitions x 4 pin requests: a count of 0 is no pins, and only a count
    # is chosen on a profile, so (none, 8 over 1.0, 8 over 0.25, keys [1, 3])
    assert len(topk) == 48 == len(set(topk))
    assert {(c.pinned, c.pin_profile) for c in topk} == {(None, 1.0), (8, 1.0), (8, 0.25), ((1, 3), 1.0)}
    assert {c.eviction_params for c in topk} == {(), (("alpha", 0.5),), (("smoothing", 0.5),), (("smoothing", 2.0),)}
    grid = [c for c in configs if c.strategy == "on-demand" and c.eviction == "fifo"]
    assert [(c.cache_partition, c.pinned, c.pin_profile) for c in grid] == [("per-layer", (5,), 1.0)]
    base = configs[baseline_of[configs.index(topk[0])]]
    assert (base.strategy, base.eviction, base.cache_partition, base.pinned, base.pin_profile) == (
        "on-demand", "lfu", "per-layer", 2, 0.5
    )
    assert {baseline_of[configs.index(c)] for c in topk} == {configs.index(base)}
    # labels (used in failure listings) name what differs from SPEC section 3
    label = next(c for c in topk if c.pinned == 8 and c.pin_profile == 0.25 and isinstance(c.cache_partition, tuple)).label()
    assert "partition [4, 4, 4, 4, 4, 4]" in label and "pinned top 8 over 0.25 of the trace" in label


def test_default_organisation_keeps_config_hashes():
    from fastsim.sweep.grid import row_hash

    plain = {
        "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 50}],
        "caches": [24, "working-set"],
        "evictions": ["lru", "belady"],
        "strategies": {"top-k": {"k": [4, 8]}, "on-demand": {}},
    }
    explicit = {
        **plain, "cache_partitions": ["global"], "pinned": [0, []], "pin_profiles": [0.5, 1.0],
        "baseline": {"eviction": "lru", "cache_partition": "global", "pinned": 0, "pin_profile": 1.0},
    }
    model = fastsim.profiles.model_profile("switch-base-128-decoder")
    a, _ = expand(load_spec(plain), {"g": (model,)})
    b, _ = expand(load_spec(explicit), {"g": (model,)})
    assert a == b
    assert [row_hash(c, "fp", 0, 1) for c in a] == [row_hash(c, "fp", 0, 1) for c in b]
    # the identity of a section-3 configuration has exactly the keys it had before section 6
    for c in a:
        assert set(c.identity()) == {
            "trace", "model", "hardware", "batch_size", "strategy", "params", "cache", "eviction", "max_prefetch_loads"
        }


def test_committed_seed_switch_hashes_unchanged():
    """The committed results stay valid: the spec expands to the same rows and config hashes."""
    from fastsim.sweep import driver
    from fastsim.sweep.grid import row_hash

    table = pq.read_table(REPO / "results" / "seed-switch" / "results.parquet")
    spec = load_spec(REPO / "sweeps" / "seed-switch.toml")
    models_for = {t.name: driver._models_for(spec, t, None) for t in spec.traces}
    configs, _ = expand(spec, models_for)
    got = {}
    for t in spec.traces:
        for run in range(spec.runs):
            seed = t.run_seed(spec.seed, run)
            fp = driver._generate(t, seed).fingerprint()
            for i, c in enumerate(configs):
                got[(i, run)] = row_hash(c, fp, run, seed)
    want = {(r["config_id"], r["run"]): r["config_hash"] for r in table.select(["config_id", "run", "config_hash"]).to_pylist()}
    assert got == want


def _scored_trace(tmp_path):
    trace = generate_trace("switch-base-128-decoder", 240, 3, 21)
    rng = np.random.default_rng(0)
    scored = fastsim.Trace.from_arrays(
        trace.experts, trace.num_experts, trace.sequence_lengths,
        scores=rng.uniform(0.05, 1.0, trace.experts.shape).astype(np.float32), model="switch-base-128-decoder",
    )
    scored.write(tmp_path / "scored.parquet")
    return scored


ORG_SPEC = {
    "runs": 1,
    "batch_sizes": [1, 3],
    "caches": [24],
    "traces": [{"file": "scored.parquet"}],
    "evictions": ["lru", "belady", {"name": "activation-aware", "smoothing": 2.0}, {"name": "score-aware", "alpha": 0.3}],
    "cache_partitions": ["global", "per-layer", [2, 2, 4, 4, 6, 6]],
    "pinned": [0, 4, [0, 129, 300]],
    "pin_profiles": [1.0, 0.5],
    "strategies": {"on-demand": {}, "top-k": {"k": [2]}},
}


def _reference(trace, row):
    """``fastsim.replay`` with the arguments a row records: metrics, or the error message."""
    import json

    partition = row["cache_partition"]
    request = row["pin_request"]
    if request == "none":
        pinned = None
    elif request.startswith("keys "):
        pinned = json.loads(request[len("keys "):])
    else:
        pinned = int(request.split()[1])
    kw = {"cache_slots": "working-set"} if row["cache_request"] == "working-set" else {"cache_slots": row["cache_slots"] or 24}
    if row["strategy"] == "top-k":
        kw["k"] = row["param_k"]
    try:
        return fastsim.replay(
            trace, row["strategy"], batch_size=row["batch_size"], eviction=row["eviction"],
            eviction_params=json.loads(row["eviction_params"]) or None,
            cache_partition=json.loads(partition) if partition.startswith("[") else partition,
            pinned=pinned, pin_profile=row["pin_profile"], **kw,
        )
    except ConfigError as exc:
        return str(exc)


@pytest.fixture(scope="module")
def org_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("org")
    trace = _scored_trace(tmp)
    spec = load_spec(ORG_SPEC, base_dir=tmp)
    return trace, spec, run_sweep(spec, n_jobs=1, out=tmp / "one"), tmp


def test_organisation_sweep_rows_equal_replay(org_run):
    import json

    trace, spec, run, _ = org_run
    table = run.table
    # 4 evictions x 3 partitions x 4 pin requests x 2 strategies x 2 batch sizes, + 2 baselines
    assert table.num_rows == 4 * 3 * 4 * 2 * 2 + 2
    rows = table.to_pylist()
    failed = 0
    for r in rows:
        ref = _reference(trace, r)
        if isinstance(ref, str):
            failed += 1
            assert r["error"] == ref, r
            assert all(r[m] is None for m in METRICS)
            continue
        assert r["error"] is None, r
        assert {m: r[m] for m in METRICS} == ref.metrics, r
        assert r["cache_slots"] == ref.config["cache_slots"]
        assert r["pinned"] == len(ref.config.get("pinned", []))
        if r["cache_partition"] != "global":
            assert ref.config["cache_partition"] in (r["cache_partition"], "list")
    # some configurations do not fit (a 2-slot partition at batch 3), most do
    assert 0 < failed < len(rows) // 2
    # every row records what made it
    by = {(r["eviction"], r["eviction_params"]) for r in rows}
    assert by == {("lru", "{}"), ("belady", "{}"), ("activation-aware", '{"smoothing": 2}'), ("score-aware", '{"alpha": 0.3}')}
    assert {r["cache_partition"] for r in rows} == {"global", "per-layer", "[2, 2, 4, 4, 6, 6]"}
    assert {(r["pin_request"], r["pin_profile"]) for r in rows} == {
        ("none", 1.0), ("top 4 over 1 of the trace", 1.0), ("top 4 over 0.5 of the trace", 0.5), ("keys [0, 129, 300]", 1.0)
    }
    assert {r["pinned"] for r in rows if r["pin_request"] != "none"} == {3, 4}
    assert all(r["pinned"] == 0 for r in rows if r["pin_request"] == "none")
    assert len({r["config_hash"] for r in rows}) == len(rows)
    # the saved schedules carry what the policies read, so workers never see the routing
    saved = sorted(p.name for p in (run.out_dir / ".schedules").iterdir())
    assert len(saved) == 2 and all("-nu" in n and "-sc" in n and n.endswith("-rq") for n in saved)
    assert json.loads(pq.read_table(run.out_dir / "results.parquet").schema.metadata[b"fastsim.spec"])["pinned"]


def test_organisation_sweep_workers_compile_nothing(org_run):
    _, spec, one, tmp = org_run
    two = run_sweep(spec, n_jobs=2, out=tmp / "two", chunk_size=16)
    assert two.worker_compilations == 0
    assert without_wall(two.table).equals(without_wall(one.table))


def test_score_aware_needs_scores_spec_error(tmp_path):
    spec = {
        "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 40}],
        "evictions": ["lru", "score-aware"],
        "strategies": {"on-demand": {}},
    }
    with pytest.raises(SpecError, match=r"traces\[0\]: eviction 'score-aware' reads router scores, and this trace has none"):
        run_sweep(spec, out=tmp_path / "o")
    assert not (tmp_path / "o" / "results.parquet").exists()


def test_file_trace_shape_checked_before_running(tmp_path):
    generate_trace("switch-base-128-decoder", 30, 1, 0).write(tmp_path / "t.parquet")
    spec = load_spec(
        {"traces": [{"file": "t.parquet"}], "cache_partitions": [[1, 2, 3]], "caches": [6], "strategies": {"on-demand": {}}},
        base_dir=tmp_path,
    )  # the file's model is only known once it is read
    with pytest.raises(SpecError, match=r"cache_partitions\[0\]: a cache partition list needs 6 sizes"):
        run_sweep(spec, out=tmp_path / "o")


def test_replay_many_organisation_matches_replay():
    trace = generate_trace("switch-base-128-decoder", 200, 2, 11)
    configs = [
        {"strategy": "top-k", "k": 2, "cache_slots": 24, "eviction": "belady", "cache_partition": "per-layer"},
        {"strategy": "on-demand", "cache_slots": 24, "cache_partition": [2, 2, 4, 4, 6, 6], "pinned": [1, 200]},
        {"strategy": "on-demand", "cache_slots": 24, "eviction": "activation-aware", "eviction_params": {"smoothing": 0.5},
         "pinned": np.int64(3), "pin_profile": 0.25},
        {"strategy": "top-k", "k": 2, "cache_slots": 24, "pinned": 0},
    ]
    table = fastsim.replay_many(trace, configs)
    rows = table.to_pylist()
    for cfg, row in zip(configs, rows):
        ref = fastsim.replay(trace, **cfg)
        assert {m: row[m] for m in METRICS} == ref.metrics
        assert row["pinned"] == len(ref.config.get("pinned", []))
    assert [r["cache_partition"] for r in rows] == ["per-layer", "[2, 2, 4, 4, 6, 6]", "global", "global"]
    assert [r["pin_request"] for r in rows] == ["none", "keys [1, 200]", "top 3 over 0.25 of the trace", "none"]
    assert rows[2]["eviction_params"] == '{"smoothing": 0.5}' and rows[2]["pin_profile"] == 0.25


@pytest.mark.parametrize(
    "config, says",
    [
        ({"eviction": "no-such"}, r"configs\[1\]: unknown eviction 'no-such'"),
        ({"eviction": "lfu", "eviction_params": {"alpha": 1}}, r"configs\[1\]: eviction 'lfu' has no parameter 'alpha'"),
        ({"eviction": "score-aware", "eviction_params": {"alpha": 0}}, r"configs\[1\]: eviction 'score-aware' parameter 'alpha' must lie"),
        ({"cache_partition": [4, 4]}, r"configs\[1\]: a cache partition list needs 6 sizes"),
        ({"cache_partition": "layers"}, r"configs\[1\]: cache_partition: expected 'global', 'per-layer'"),
        ({"pinned": -1}, r"configs\[1\]: pinned: a pinned count must be >= 0"),
        ({"pinned": [900]}, r"configs\[1\]: pinned key 900 is out of range"),
        ({"pinned": 4, "pin_profile": 0}, r"configs\[1\]: pin_profile: pin_profile must be a fraction in \(0, 1\]"),
        ({"pinned": 4, "pin_profile": 1.01}, r"configs\[1\]: pin_profile: pin_profile must be a fraction"),
        ({"eviction": "score-aware"}, r"configs\[1\]: eviction 'score-aware' reads router scores"),
    ],
)
def test_replay_many_bad_organisation_raises(config, says):
    trace = generate_trace("switch-base-128-decoder", 20, 1, 0)
    with pytest.raises(ConfigError, match=says):
        fastsim.replay_many(trace, [{"strategy": "on-demand"}, {"strategy": "on-demand", "cache_slots": 24, **config}])


def test_worker_counts_the_entry_points_it_uses():
    """A user policy's entry point cannot come from the on-disk cache: the worker that first
    runs it compiles it, and its accounting says so (the demand-only path it does not use is not
    counted)."""
    from fastsim.eviction import get_eviction, register_eviction
    from fastsim.sweep import driver
    from fastsim.sweep.worker import run_task

    name = "test-sweep-lru-copy"
    try:
        get_eviction(name)
    except ConfigError:
        register_eviction(name, get_eviction("lru").hooks)
    trace = generate_trace("switch-base-128-decoder", 60, 1, 3)
    configs = [{"strategy": "on-demand", "cache_slots": 24, "eviction": name}]
    cfgs = [driver.config_from_mapping(trace, 0, configs[0], "t")]
    meta = driver._meta(trace, "t", 0, None)
    rows = [driver.Row(0, 0, None, cfgs[0], meta, "h0")]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (task,) = driver._tasks(driver._schedule_groups(trace, meta, rows, Path(tmp), {}), 1, None, ())
        first = run_task(task)
        again = run_task(task)
    assert first.rows[0].error is None
    assert (first.compiled, again.compiled) == (1, 0)
    assert first.rows[0].metrics == fastsim.replay(trace, "on-demand", cache_slots=24).metrics


def test_per_layer_expert_sizes_in_the_table():
    """A model with one expert size per layer and a byte budget: the table records the sizes."""
    model = fastsim.profiles.model_profile("switch-base-128-decoder").as_dict()
    model.update(name="mixed-sizes", expert_bytes=[1_000_000, 2_000_000] * 3)
    trace = generate_trace("switch-base-128-decoder", 100, 2, 1)
    configs = [{"strategy": "on-demand", "model": model, "cache_bytes": 40_000_000, "cache_partition": p} for p in ("global", "per-layer")]
    rows = fastsim.replay_many(trace, configs).to_pylist()
    for cfg, row in zip(configs, rows):
        assert row["error"] is None
        assert {m: row[m] for m in METRICS} == fastsim.replay(trace, **cfg).metrics
        assert row["model_expert_bytes"] is None and row["model_layer_bytes"] == "[1000000, 2000000, 1000000, 2000000, 1000000, 2000000]"
    uniform = fastsim.replay_many(trace, [{"strategy": "on-demand"}]).to_pylist()[0]
    assert uniform["model_layer_bytes"] is None and uniform["model_expert_bytes"] > 0
