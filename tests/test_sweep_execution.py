"""Sweeps and replay_many with the execution options (SPEC section 7): spec axes and their errors,
rows equal to direct ``fastsim.replay`` calls, resuming with the new columns, and prefill."""
from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.errors import ConfigError, SpecError
from fastsim.profiles import model_profile
from fastsim.replay_execution import EXECUTION_METRICS
from fastsim.sweep import run_sweep
from fastsim.sweep.grid import expand
from fastsim.sweep.results import ALL_METRICS
from fastsim.sweep.spec import load_spec
from fastsim.timeline.budget import DEFAULT_RESERVE_BYTES
from fastsim.timeline.options import ExecutionOptions
from fastsim.trace.generate import generate_trace

MODEL = "switch-base-128-decoder"  # 6 layers x 128 experts, top-1


@pytest.fixture(scope="module")
def prompted(tmp_path_factory):
    """A trace file with prompt marks (prefill needs them), and one without."""
    tmp = tmp_path_factory.mktemp("exec")
    trace = generate_trace(MODEL, 240, 4, 3)
    prompts = np.array([5, 0, 12, 60])[: trace.sequence_lengths.shape[0]]
    marked = fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths,
                                       prompt_tokens=np.minimum(prompts, trace.sequence_lengths), model=MODEL)
    path = tmp / "prompted.parquet"
    marked.write(path)
    plain = tmp / "plain.parquet"
    trace.write(plain)
    return path, plain


def _spec(**axes) -> dict:
    doc = {"traces": [{"name": "g", "model": MODEL, "tokens": 40}], "strategies": {"on-demand": {}}}
    doc.update(axes)
    return doc


# ------------------------------------------------------------------------------------- spec


def test_spec_axes_expand_every_valid_combination():
    spec = load_spec(_spec(caches=[24], timelines=["simple", "layered"], miss_executions=["load", "cpu"],
                           max_uploads_per_layer=["none", 1], prefill=False, baseline=False))
    configs, _ = expand(spec, {"g": (model_profile(MODEL),)})
    got = [(c.execution.timeline, c.execution.miss_execution, c.execution.max_uploads_per_layer) for c in configs]
    # (load, 1) is no combination: a cap on uploads needs misses that run elsewhere
    assert got == [("simple", "load", None), ("simple", "cpu", None), ("simple", "cpu", 1),
                   ("layered", "load", None), ("layered", "cpu", None), ("layered", "cpu", 1)]
    assert all(c.reserve_bytes is None and c.context_tokens is None for c in configs)


def test_defaults_leave_configurations_and_hashes_as_they_were():
    """A spec without execution keys gives SPEC section 3's configurations; naming the defaults
    explicitly gives the same configurations (one row each)."""
    plain = load_spec(_spec(caches=[24]))
    explicit = load_spec(_spec(caches=[24], timelines="simple", links=["fifo"], overflows="error", prefill=[False],
                               miss_executions="load", max_inflight_prefetches="none", max_uploads_per_layer="none"))
    shapes = {"g": (model_profile(MODEL),)}
    a, _ = expand(plain, shapes)
    b, _ = expand(explicit, shapes)
    assert a == b and all(c.execution == ExecutionOptions() for c in a)
    assert all("execution" not in c.identity() for c in a)


def test_auto_cache_takes_reserve_and_context_only_for_itself():
    spec = load_spec(_spec(caches=[24, "auto"], reserve_bytes=["1GiB", 0], context_tokens=[100], baseline=False))
    configs, _ = expand(spec, {"g": (model_profile(MODEL),)})
    got = [(c.cache.label, c.reserve_bytes, c.context_tokens) for c in configs]
    assert got == [("24 slots", None, None), ("auto", 2**30, 100), ("auto", 0, 100)]
    default = load_spec(_spec(caches="auto", baseline=False))
    (cfg,), _ = expand(default, {"g": (model_profile(MODEL),)})
    assert (cfg.reserve_bytes, cfg.context_tokens) == (DEFAULT_RESERVE_BYTES, None)


def test_grid_axes_replace_the_top_level_ones():
    spec = load_spec({**_spec(caches=[24], links="demand-first", baseline=False),
                      "strategies": {"on-demand": {}, "top-k": {"k": 2, "links": ["fifo"], "overflows": ["exceed"]}}})
    configs, _ = expand(spec, {"g": (model_profile(MODEL),)})
    assert [(c.strategy, c.execution.link, c.execution.overflow) for c in configs] == [
        ("on-demand", "demand-first", "error"), ("top-k", "fifo", "exceed")]


BAD_SPECS = [
    ('timelines = ["simple", "fast"]', 1, "timelines[1]: timeline must be one of 'simple', 'layered', got 'fast'"),
    ('links = "lifo"', 1, "links: link must be one of 'fifo', 'demand-first'"),
    ("max_inflight_prefetches = [0]", 1, "max_inflight_prefetches[0]: max_inflight_prefetches must be at least 1"),
    ('max_inflight_prefetches = "many"', 1, "expected an integer or 'none' (no cap), got str 'many'"),
    ('miss_executions = ["gpu"]', 1, "miss_executions[0]: miss_execution must be one of 'load', 'cpu', 'zero-copy'"),
    ("max_uploads_per_layer = [-1]", 1, "max_uploads_per_layer[0]: max_uploads_per_layer must be at least 0"),
    ("max_uploads_per_layer = [2]", 1, "max_uploads_per_layer: max_uploads_per_layer caps uploads when the other "
                                       "misses run elsewhere: it needs miss_executions to hold 'cpu' or 'zero-copy'"),
    ('max_uploads_per_layer = [2]\nmiss_executions = ["load", "cpu"]', 1,
     "miss_executions holds 'load', which takes no max_uploads_per_layer: add 'none'"),
    ('overflows = "spill"', 1, "overflows: overflow must be one of 'error', 'exceed'"),
    ('prefill = "yes"', 1, "prefill: expected true or false, got str 'yes'"),
    ("prefill = []", 1, "prefill: the list is empty"),
    ('reserve_bytes = "2 slots"', 1, "reserve_bytes: expected a number of bytes or a size like '2GiB'"),
    ("context_tokens = [-3]", 1, "context_tokens[0]: expected an integer number of tokens >= 0, got int -3"),
    ('caches = ["autox"]', 1, "caches[0]: cannot read 'autox': expected 'working-set', 'auto'"),
]


@pytest.mark.parametrize("line, number, says", BAD_SPECS)
def test_bad_execution_spec_names_key_and_line(tmp_path, line, number, says):
    path = tmp_path / "s.toml"
    path.write_text(f'{line}\n\n[[traces]]\nmodel = "{MODEL}"\ntokens = 40\n\n[strategies.on-demand]\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert text.startswith(f"{path}, line {number}: "), text
    assert says in text, text


def test_bad_grid_axis_names_the_grid_key(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(f'[[traces]]\nmodel = "{MODEL}"\ntokens = 40\n\n[strategies.top-k]\nk = 2\n'
                    'miss_executions = ["zero-copy"]\nmax_uploads_per_layer = [1, "two"]\n')
    with pytest.raises(SpecError, match=r"line 8: strategies.top-k.max_uploads_per_layer\[1\]: expected an integer"):
        load_spec(path)


def test_prefill_on_a_trace_without_prompts_is_a_spec_error(tmp_path, prompted):
    _, plain = prompted
    doc = {"traces": [{"file": str(plain)}], "caches": [24], "prefill": [False, True], "strategies": {"on-demand": {}}}
    with pytest.raises(SpecError, match="traces\\[0\\]: prefill = true replays each prompt as one step, and this "
                                        "trace has no prompt marks"):
        run_sweep(doc, out=tmp_path / "o")
    assert not (tmp_path / "o" / "results.parquet").exists()


# ------------------------------------------------------------------------- rows and replays


def _replay_kwargs(row: dict) -> dict:
    kw = {"strategy": row["strategy"], "model": MODEL, "batch_size": row["batch_size"], "eviction": row["eviction"]}
    if row["param_k"] is not None:
        kw["k"] = row["param_k"]
    cache = row["cache_request"]
    if cache == "auto":
        kw.update(cache_bytes="auto", reserve_bytes=row["reserve_bytes"], context_tokens=row["context_tokens"])
    elif cache == "working-set":
        kw["cache_slots"] = "working-set"
    else:
        kw["cache_slots"] = int(cache.split()[0])
    for name in ("timeline", "link", "max_inflight_prefetches", "miss_execution", "max_uploads_per_layer",
                 "overflow", "prefill"):
        kw[name] = row[name]
    return kw


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_sweep_rows_equal_direct_replays_and_resume(tmp_path, prompted):
    path, _ = prompted
    doc = {
        "traces": [{"file": str(path)}], "batch_sizes": [2], "caches": [96, "auto"], "context_tokens": [50],
        "timelines": ["simple", "layered"], "links": ["fifo", "demand-first"], "miss_executions": ["load", "cpu"],
        "max_uploads_per_layer": ["none", 1], "prefill": [False, True],
        "strategies": {"on-demand": {}, "top-k": {"k": 2, "caches": [96], "max_inflight_prefetches": [2],
                                                   "overflows": ["exceed"], "miss_executions": ["load"],
                                                   "max_uploads_per_layer": ["none"]}},
    }
    out = tmp_path / "sweep"
    first = run_sweep(doc, out=out)
    assert not first.failures, first.failures[:3]
    assert first.worker_compilations == 0  # the parent warmed every entry point the rows ran
    table = first.table
    rows = table.to_pylist()
    trace = fastsim.read_trace(path)
    assert {r["timeline"] for r in rows} == {"simple", "layered"} and {r["prefill"] for r in rows} == {False, True}
    for row in rows:
        ref = fastsim.replay(trace, **_replay_kwargs(row))
        assert row["cache_slots"] == ref.config["cache_slots"]
        for m in ALL_METRICS:
            want = ref.metrics.get(m)  # absent: the row ran SPEC section 3's timeline
            assert _same(row[m], want), (m, row["config_id"], row[m], want)
        defaults = all(row[n] == d for n, d in (("timeline", "simple"), ("link", "fifo"), ("miss_execution", "load"),
                                                ("overflow", "error"), ("prefill", False)))
        defaults = defaults and row["max_inflight_prefetches"] is None and row["max_uploads_per_layer"] is None
        defaults = defaults and row["cache_request"] != "auto"  # an auto cache runs SPEC section 7's timeline
        assert all((row[m] is None) == defaults for m in EXECUTION_METRICS)
        if row["cache_request"] == "auto":
            assert (row["reserve_bytes"], row["context_tokens"]) == (DEFAULT_RESERVE_BYTES, 50)
        else:
            assert row["reserve_bytes"] is None and row["context_tokens"] is None
    # prefill rows replay the prompts as steps: fewer steps, and TTFT measured
    pre = [r for r in rows if r["prefill"]]
    assert all(r["ttft_s"] > 0 and r["prefill_accesses"] > 0 for r in pre)
    # speedups: each row's baseline ran under the same execution options
    by_hash = {r["config_hash"]: r for r in rows}
    for r in rows:
        base = by_hash[r["baseline_hash"]]
        assert all(base[n] == r[n] for n in ("timeline", "link", "miss_execution", "max_uploads_per_layer", "prefill"))

    # resume: drop some shards and strip the execution metric columns from another (as a shard
    # written before they existed reads), then resume
    shards = sorted((out / "shards").glob("shard-*.parquet"))
    assert len(shards) >= 2
    shards[0].unlink()
    old = pq.read_table(shards[1])
    pq.write_table(old.select([c for c in old.column_names if c not in EXECUTION_METRICS]), shards[1])
    resumed = run_sweep(doc, out=out, resume=True)
    assert 0 < resumed.skipped < len(rows)
    again = resumed.table.to_pylist()
    stripped = set(pq.read_table(shards[1]).column("config_hash").to_pylist())
    for a, b in zip(rows, again):
        for k in a:
            if k == "wall_s" or (k in EXECUTION_METRICS and a["config_hash"] in stripped):
                continue
            assert _same(a[k], b[k]), (k, a["config_id"])
    assert pq.read_table(out / "results.parquet").num_rows == len(rows)


# ---------------------------------------------------------------------------------- replay_many


def test_replay_many_takes_the_options(prompted):
    path, _ = prompted
    trace = fastsim.read_trace(path)
    configs = [
        {"strategy": "on-demand", "cache_slots": 96, "batch_size": 2, "timeline": "layered", "prefill": True},
        {"strategy": "on-demand", "cache_bytes": "auto", "reserve_bytes": 10**9, "context_tokens": 7,
         "miss_execution": "zero-copy", "max_uploads_per_layer": 0},
        {"strategy": "on-demand", "cache_slots": 24, "link": "demand-first", "overflow": "exceed"},
    ]
    table = fastsim.replay_many(trace, configs)
    for row, kw in zip(table.to_pylist(), configs):
        ref = fastsim.replay(trace, model=MODEL, **kw)
        assert row["error"] is None
        assert {m: row[m] for m in ref.metrics} == ref.metrics
    assert table.column("zero_copy_executions").to_pylist()[1] > 0
    assert table.column("reserve_bytes").to_pylist() == [None, 10**9, None]


@pytest.mark.parametrize("config, says", [
    ({"timeline": "fast"}, "configs[0]: timeline must be one of 'simple', 'layered', got 'fast'"),
    ({"max_uploads_per_layer": 1}, "configs[0]: max_uploads_per_layer caps uploads when the other misses run "
                                   "elsewhere: it needs miss_execution='cpu' or 'zero-copy'"),
    ({"max_inflight_prefetches": 0}, "configs[0]: max_inflight_prefetches must be at least 1, got 0"),
    ({"prefill": True}, "configs[0]: prefill=True replays each prompt as one step, and this trace has no prompt marks"),
    ({"cache_slots": None, "cache_bytes": "auto", "reserve_bytes": -1}, "configs[0]: reserve_bytes: expected a number "
                                                                        "of bytes >= 0, got -1"),
    ({"cache_slots": None, "cache_bytes": "all"}, "configs[0]: cache_bytes must be an integer >= 0 or 'auto'"),
])
def test_replay_many_bad_options_raise_naming_the_index(prompted, config, says):
    _, plain = prompted
    with pytest.raises(ConfigError) as info:
        fastsim.replay_many(fastsim.read_trace(plain), [{"strategy": "on-demand", "cache_slots": 24, **config}])
    assert says in str(info.value)


def test_hashes_hold_only_the_profile_figures_a_row_reads():
    """CPU figures join the hash of rows that run misses on the CPU; the auto budget's model
    figures of rows with an auto cache; a profile gaining them leaves other rows' hashes."""
    from fastsim.profiles import hardware_profile
    from fastsim.sweep.axes import parse_cache
    from fastsim.sweep.grid import make_config, row_hash

    hw = hardware_profile("rtx3090").as_dict()
    bare = hardware_profile({k: v for k, v in hw.items() if not k.startswith("cpu_")} | {"name": "x"})
    full = hardware_profile(hw | {"name": "x"})
    model = model_profile(MODEL)

    def h(hardware, cache="24 slots", **opts):
        cfg = make_config("t", model, hardware, 1, "on-demand", {}, parse_cache(cache), "lru",
                          execution=ExecutionOptions(**opts))
        return row_hash(cfg, "fp", 0, None)

    assert h(bare) == h(full)
    assert h(bare, timeline="layered") == h(full, timeline="layered")
    assert h(bare, miss_execution="cpu") != h(full, miss_execution="cpu")
    assert h(full, cache="auto") != h(full)
    assert "dense_bytes_total" not in make_config("t", model, full, 1, "on-demand", {}, parse_cache("24 slots"),
                                                  "lru").identity()["model"]
