"""fastsim report: aggregation recomputed independently, Markdown rows, figures, seed figures, bad input."""
from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastsim.cli.main import main
from fastsim.report import write_report
from fastsim.report.plots import have_matplotlib, pareto_front
from fastsim.report.seed import load_published

# A hand-made results table: two strategies x two batch sizes, three runs each, on the seed's
# Switch profile, plus one failed run.
LAT = {  # (strategy, cache, batch) -> total_time_s per run
    ("on-demand", "working-set", 1): [2.0, 2.2, 2.4],
    ("on-demand", "working-set", 4): [1.0, 1.5, 3.5],
    ("oracle", "128 slots", 1): [0.5, 0.25, 1.0],
    ("oracle", "128 slots", 4): [0.4, 0.8, 0.6],
}
HITS = {("oracle", "128 slots", 1): [0.5, 0.6, 0.7], ("oracle", "128 slots", 4): [0.1, 0.2, 0.3]}
EXPERT = 28_000_000


def _table(failed_run: bool = True) -> pa.Table:
    cols: dict[str, list] = {k: [] for k in (
        "config_id", "run", "seed", "trace", "strategy", "model", "hardware", "batch_size", "cache_request",
        "cache_slots", "eviction", "max_prefetch_loads", "param_lookahead", "model_num_layers",
        "model_num_experts", "model_top_k", "model_expert_bytes", "total_time_s", "hit_rate",
        "peak_cache_bytes", "peak_resident", "speedup", "error", "misses", "accesses", "tokens",
    )}
    for cid, ((strategy, cache, batch), lat) in enumerate(LAT.items()):
        base = LAT[("on-demand", "working-set", batch)]
        for run, t in enumerate(lat):
            slots = batch if cache == "working-set" else 128
            cols["config_id"].append(cid)
            cols["run"].append(run)
            cols["seed"].append(run)
            cols["trace"].append("t")
            cols["strategy"].append(strategy)
            cols["model"].append("seed-switch")
            cols["hardware"].append("rtx3090-seed")
            cols["batch_size"].append(batch)
            cols["cache_request"].append(cache)
            cols["cache_slots"].append(slots)
            cols["eviction"].append("lru")
            cols["max_prefetch_loads"].append(None)
            cols["param_lookahead"].append(8 if strategy == "oracle" else None)
            cols["model_num_layers"].append(12)
            cols["model_num_experts"].append(128)
            cols["model_top_k"].append(1)
            cols["model_expert_bytes"].append(EXPERT)
            cols["total_time_s"].append(t)
            cols["hit_rate"].append(HITS.get((strategy, cache, batch), [0.0] * 3)[run])
            cols["peak_cache_bytes"].append(slots * EXPERT)
            cols["peak_resident"].append(slots)
            cols["speedup"].append(base[run] / t)
            cols["error"].append(None)
            cols["misses"].append(100)
            cols["accesses"].append(120)
            cols["tokens"].append(10)
    if failed_run:  # a fourth run of the first configuration that raised: left out of every figure
        for k in cols:
            cols[k].append(cols[k][0])
        cols["run"][-1] = 3
        cols["total_time_s"][-1] = None
        cols["speedup"][-1] = None
        cols["error"][-1] = "boom"
    return pa.table(cols)


def _row(text: str, *cells: str) -> str:
    """The Markdown table line whose leading cells are ``cells``."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if parts[: len(cells)] == list(cells):
            return line
    raise AssertionError(f"no row starting {cells!r}")


def _cells(line: str) -> list[str]:
    return [p.strip() for p in line.strip().strip("|").split("|")]


def _ms(v: float) -> str:
    return f"{v:,.1f}"


def test_report_numbers_match_independent_statistics(tmp_path):
    path = tmp_path / "results.parquet"
    pq.write_table(_table(), path)
    result = write_report(path, tmp_path / "out", published=False, plots=False)
    text = result.markdown.read_text()
    for (strategy, cache, batch), lat in LAT.items():
        ms = [1000 * t for t in lat]
        mean, std = statistics.fmean(ms), statistics.stdev(ms)
        # p95 by linear interpolation between order statistics, written out by hand
        srt = sorted(ms)
        pos = 0.95 * (len(srt) - 1)
        lo = math.floor(pos)
        p95 = srt[lo] + (pos - lo) * (srt[min(lo + 1, len(srt) - 1)] - srt[lo])
        pos99 = 0.99 * (len(srt) - 1)
        lo99 = math.floor(pos99)
        p99 = srt[lo99] + (pos99 - lo99) * (srt[min(lo99 + 1, len(srt) - 1)] - srt[lo99])
        base = LAT[("on-demand", "working-set", batch)]
        speedup = statistics.fmean(b / t for b, t in zip(base, lat))
        hit = statistics.fmean(HITS.get((strategy, cache, batch), [0.0]))
        cache_text = f"working set ({batch})" if cache == "working-set" else "128 slots"
        cells = _cells(_row(text, strategy, cache_text, str(batch)))
        assert cells[3] == f"{_ms(mean)} ± {_ms(std)}"
        assert cells[4] == _ms(p95)
        assert cells[5] == _ms(p99)
        assert cells[6] == f"{100 * hit:.2f}%"
        slots = batch if cache == "working-set" else 128
        assert cells[7] == f"{slots * EXPERT / 1e6:,.0f}"
        assert cells[8] == f"{speedup:.2f}×"
        runs = "3 (1 failed)" if (strategy, cache, batch) == ("on-demand", "working-set", 1) else "3"
        assert cells[9] == runs


def test_report_without_matplotlib_says_so(tmp_path, monkeypatch):
    import fastsim.report.plots as plots

    monkeypatch.setattr(plots, "have_matplotlib", lambda: False)
    path = tmp_path / "results.parquet"
    pq.write_table(_table(), path)
    result = write_report(path, published=False)
    assert result.figures == []
    assert "matplotlib is not installed" in result.markdown.read_text()
    assert not (tmp_path / "figures").exists()


@pytest.mark.skipif(not have_matplotlib(), reason="the plot extra (matplotlib) is not installed")
def test_report_figures_exist_and_are_linked(tmp_path):
    path = tmp_path / "results.parquet"
    pq.write_table(_table(), path)
    result = write_report(path, published=False)
    text = result.markdown.read_text()
    names = {p.name for p in result.figures}
    assert any(n.startswith("batch-") for n in names)
    assert any(n.startswith("pareto-") for n in names)
    for p in result.figures:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{p.name})" in text


@pytest.mark.skipif(not have_matplotlib(), reason="the plot extra (matplotlib) is not installed")
def test_heat_map_for_a_two_parameter_grid(tmp_path):
    import fastsim
    from fastsim.trace.generate import generate_trace

    trace = generate_trace("switch-base-128", 60, 2, seed=3)
    cfgs = [dict(strategy="top-k", k=k, decay_factor=d, cache_slots=64) for k in (4, 8) for d in (0.9, 0.99)]
    table = fastsim.replay_many(trace, cfgs, baseline=True)
    result = write_report(table, tmp_path, published=False)
    heat = [p for p in result.figures if p.name.startswith("heat-")]
    assert len(heat) == 1 and "decay-factor" in heat[0].name
    # the four configurations are told apart by their parameters
    text = result.markdown.read_text()
    for k in (4, 8):
        for d in (0.9, 0.99):
            _row(text, f"top-k (k={k}, decay_factor={d})")


def test_pareto_front_by_hand():
    pts = [(10.0, 1.0), (20.0, 3.0), (15.0, 0.5), (40.0, 2.0), (50.0, 4.0), (20.0, 2.5)]
    assert pareto_front(pts) == [0, 1, 4]


SEED_CSV_SWITCH = """strategy,strategy_name,batch_size,inference_latency_ms_mean,inference_latency_ms_std,memory_usage_mb_mean,cache_hit_rate_mean,total_experts_loaded_mean,cache_misses_mean
A,OnDemand,1,2281.472,0.0,28.0,0.0,6142.0,6142.0
B,Oracle,1,143.939,0.0,3584.0,0.998,138.0,11.0
"""


def test_seed_comparison_uses_content_not_file_name(tmp_path):
    pub = tmp_path / "published"
    pub.mkdir()
    (pub / "qwen-published.csv").write_text(SEED_CSV_SWITCH)  # a Switch table under a Qwen name
    found = load_published(pub)
    assert list(found) == ["switch"]
    assert found["switch"].speedup("oracle", 1) == pytest.approx(2281.472 / 143.939)

    path = tmp_path / "results.parquet"
    pq.write_table(_table(), path)
    text = write_report(path, tmp_path / "out", published=pub, plots=False).markdown.read_text()
    assert "Beside the seed: Switch Transformer" in text
    cells = _cells(_row(text, "oracle", "1", "143.9 ± 0.0"))
    ours = [1000 * t for t in LAT[("oracle", "128 slots", 1)]]
    assert cells[3] == f"{_ms(statistics.fmean(ours))} ± {_ms(statistics.stdev(ours))}"
    assert cells[8] == f"{2281.472 / 143.939:.2f}×"
    # the cache/prediction split: on-demand at 128 slots is missing here, so only the total shows
    line = _row(text, "`seed-switch` on `rtx3090-seed`", "128 slots", "oracle")
    total = statistics.fmean([2.0, 2.2, 2.4]) / statistics.fmean(LAT[("oracle", "128 slots", 1)])
    assert _cells(line)[3] == f"{total:.2f}×"
    assert "128 of the 1,536 keys" in text


def test_report_of_a_real_sweep(tmp_path):
    import fastsim

    spec = {
        "name": "tiny", "seed": 1, "runs": 2, "batch_sizes": [1, 2],
        "traces": [{"name": "s", "model": "switch-base-128", "tokens": 40, "sequences": 4}],
        "caches": ["16 slots"],
        "strategies": {"on-demand": {}, "oracle": {}},
    }
    table = fastsim.sweep(spec, out=tmp_path)
    result = write_report(tmp_path / "results.parquet", published=False, plots=False)
    text = result.markdown.read_text()
    assert text.startswith("# Sweep report: tiny")
    lat = {}
    for r in table.to_pylist():
        lat.setdefault((r["strategy"], r["cache_request"], r["batch_size"]), []).append(1000 * r["total_time_s"])
    for (strategy, cache, batch), ms in lat.items():
        cache_text = "16 slots" if cache != "working-set" else None
        if cache_text is None:
            line = next(
                l for l in text.splitlines()
                if l.startswith(f"| {strategy} | working set (") and _cells(l)[2] == str(batch)
            )
        else:
            line = _row(text, strategy, cache_text, str(batch))
        assert _cells(line)[3] == f"{_ms(np.mean(ms))} ± {_ms(statistics.stdev(ms))}"


@pytest.mark.parametrize("kind", ["not-parquet", "missing-column", "empty", "missing-file"])
def test_bad_table_exits_2_and_writes_nothing(tmp_path, capsys, kind):
    path = tmp_path / "results.parquet"
    if kind == "not-parquet":
        path.write_text("strategy,latency\non-demand,1\n")
    elif kind == "missing-column":
        pq.write_table(_table().drop_columns(["hit_rate"]), path)
    elif kind == "empty":
        pq.write_table(_table().slice(0, 0), path)
    out = tmp_path / "out"
    assert main(["report", str(path), "--out", str(out), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastsim: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    if kind == "missing-column":
        assert "'hit_rate'" in err
    assert not out.exists() or not any(out.iterdir())


def test_cli_writes_report_and_leaves_no_temporary_files(tmp_path, capsys):
    path = tmp_path / "results.parquet"
    pq.write_table(_table(), path)
    assert main(["report", str(path), "--no-published", "--no-plots"]) == 0
    assert (tmp_path / "report.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _flagged(table: pa.Table, reproduces: str | None) -> pa.Table:
    """The hand-made table on the real Switch profiles, with or without the reproduction flag."""
    table = table.set_column(table.schema.get_field_index("model"), "model",
                             pa.array(["switch-base-128"] * table.num_rows))
    table = table.set_column(table.schema.get_field_index("hardware"), "hardware",
                             pa.array(["rtx3090"] * table.num_rows))
    if reproduces is not None:
        table = table.replace_schema_metadata({b"fastsim.reproduces": reproduces.encode()})
    return table


def test_reproduction_flag_decides_the_seed_comparison(tmp_path):
    pub = tmp_path / "published"
    pub.mkdir()
    (pub / "switch.csv").write_text(SEED_CSV_SWITCH)
    # real profile names: no seed model to guess from, so only the flag brings the comparison
    pq.write_table(_flagged(_table(), "seed-switch"), tmp_path / "flagged.parquet")
    pq.write_table(_flagged(_table(), None), tmp_path / "plain.parquet")
    flagged = write_report(tmp_path / "flagged.parquet", tmp_path / "a", published=pub, plots=False).markdown.read_text()
    plain = write_report(tmp_path / "plain.parquet", tmp_path / "b", published=pub, plots=False).markdown.read_text()
    assert "Beside the seed: Switch Transformer" in flagged
    assert "`switch-base-128` / `rtx3090`" in flagged
    assert "Beside the seed" not in plain
    # a flag naming the Qwen experiment finds no Qwen table here: no comparison, and no Switch one
    pq.write_table(_flagged(_table(), "seed-qwen"), tmp_path / "qwen.parquet")
    other = write_report(tmp_path / "qwen.parquet", tmp_path / "c", published=pub, plots=False).markdown.read_text()
    assert "Beside the seed" not in other


# on-demand and oracle over a cache ladder at batch 1 (one run each): total_time_s
LADDER = {
    ("on-demand", "working-set"): 4.0,
    ("on-demand", "128 slots"): 3.0, ("oracle", "128 slots"): 5.0,   # loses to both
    ("on-demand", "256 slots"): 2.5, ("oracle", "256 slots"): 3.2,   # beats the baseline only
    ("on-demand", "512 slots"): 2.0, ("oracle", "512 slots"): 1.6,   # beats both
}


def _ladder_table() -> pa.Table:
    rows = []
    for cid, ((strategy, cache), t) in enumerate(LADDER.items()):
        slots = 1 if cache == "working-set" else int(cache.split()[0])
        rows.append({
            "config_id": cid, "run": 0, "seed": 0, "trace": "t", "strategy": strategy, "model": "switch-base-128",
            "hardware": "rtx3090", "batch_size": 1, "cache_request": cache, "cache_slots": slots, "eviction": "lru",
            "max_prefetch_loads": None, "model_num_layers": 12, "model_num_experts": 128, "model_top_k": 1,
            "model_expert_bytes": EXPERT, "total_time_s": t, "hit_rate": 0.5, "peak_cache_bytes": slots * EXPERT,
            "speedup": LADDER[("on-demand", "working-set")] / t, "error": None, "misses": 10, "accesses": 20,
            "tokens": 5,
        })
    return pa.Table.from_pylist(rows).replace_schema_metadata({b"fastsim.reproduces": b"seed-switch"})


def test_cache_ladder_names_where_each_strategy_wins(tmp_path):
    pub = tmp_path / "published"
    pub.mkdir()
    (pub / "switch.csv").write_text(SEED_CSV_SWITCH)
    text = write_report(_ladder_table(), tmp_path, published=pub, plots=False).markdown.read_text()
    base_row, same_row = [l for l in text.splitlines() if l.startswith("| `switch-base-128` on `rtx3090` | oracle | ")][:2]
    assert _cells(base_row)[2:] == [f"{4.0 / 5.0:.2f}×", f"{4.0 / 3.2:.2f}×", f"{4.0 / 1.6:.2f}×", "256 slots"]
    assert _cells(same_row)[2:] == [f"{3.0 / 5.0:.2f}×", f"{2.5 / 3.2:.2f}×", f"{2.0 / 1.6:.2f}×", "512 slots"]
    assert "oracle from 256 slots" in text and "Beats on-demand at the same cache: oracle from 512 slots" in text


# --- cache organisation: configuration identity and the eviction-policy section ------------------

# (strategy, eviction, partition, slots) -> per run (hit rate, tokens/s); None: every run failed
EVICT = {
    ("on-demand", "lru", "global", 8): [(0.30, 10.0), (0.34, 12.0)],
    ("on-demand", "lru", "global", 16): [(0.50, 20.0), (0.54, 22.0)],
    ("on-demand", "lru", "per-layer", 8): [(0.28, 9.0), (0.30, 9.0)],
    ("on-demand", "lru", "per-layer", 16): [(0.40, 15.0), (0.42, 17.0)],
    ("on-demand", "lfru", "global", 8): [(0.55, 23.0), (0.57, 25.0)],
    ("on-demand", "lfru", "global", 16): [(0.60, 26.0), (0.64, 28.0)],
    ("on-demand", "lfru", "per-layer", 8): None,
    ("on-demand", "lfru", "per-layer", 16): [(0.45, 18.0), (0.47, 20.0)],
    ("oracle", "lru", "global", 8): [(0.20, 5.0), (0.22, 5.0)],
    ("oracle", "lru", "global", 16): [(0.50, 9.0), (0.50, 11.0)],
    ("oracle", "lfru", "global", 8): [(0.40, 7.0), (0.44, 7.0)],
    ("oracle", "lfru", "global", 16): [(0.45, 8.0), (0.45, 8.0)],
}
WS_ERROR = ("layer 1's partition of 3 slots (8 slots, per-layer) is smaller than the working set: step 0, "
            "layer 1 needs 4 slots at once")


def _evict_table(extra: dict | None = None) -> pa.Table:
    rows = []
    items = list(EVICT.items()) + list((extra or {}).items())
    for cid, ((strategy, ev, part, slots, *more), runs) in enumerate(items):
        ev_params, pins = (json.loads(more[0]), more[1]) if more else ({}, "none")
        for run in range(2):
            hit, tps = runs[run] if runs else (None, None)
            rows.append({
                "config_id": cid, "run": run, "seed": run, "trace": "t",
                "trace_source": '{"generator": "fastsim.generate", "preset": "p", "router_scores": true}',
                "strategy": strategy, "model": "m", "hardware": "h", "batch_size": 1,
                "cache_request": f"{slots} slots", "cache_slots": None if runs is None else slots,
                "eviction": ev, "eviction_params": json.dumps(ev_params), "cache_partition": part,
                "pin_request": pins, "max_prefetch_loads": None, "model_num_layers": 2, "model_num_experts": 8,
                "model_top_k": 2, "model_expert_bytes": 1000,
                "total_time_s": None if runs is None else 100.0 / tps, "tokens": 100, "tokens_per_s": tps,
                "hit_rate": hit, "peak_cache_bytes": None if runs is None else slots * 1000,
                "speedup": None if runs is None else 1.0, "error": WS_ERROR if runs is None else None,
                "misses": 1, "accesses": 2,
            })
    return pa.Table.from_pylist(rows)


def _mean_of(key, i):
    return statistics.fmean(r[i] for r in EVICT[key])


def _section(text: str) -> str:
    return text.split("## Eviction policies", 1)[1].split("\n## ", 1)[0]


def test_partitions_and_failed_caches_are_told_apart_in_results(tmp_path):
    text = write_report(_evict_table(), tmp_path, published=False, plots=False).markdown.read_text()
    results = text.split("## Results:", 1)[1]
    header = next(l for l in results.splitlines() if l.startswith("| strategy"))
    assert _cells(header)[:4] == ["strategy", "cache", "eviction", "partition"]
    for part in ("global", "per-layer"):
        line = _row(results, "on-demand", "8 slots", "lru", part)
        assert _cells(line)[8] == f"{100 * _mean_of(('on-demand', 'lru', part, 8), 0):.2f}%"
    # a configuration whose runs all failed keeps its cache size
    assert _cells(_row(results, "on-demand", "8 slots", "lfru", "per-layer"))[-1] == "0 (2 failed)"
    assert "None slots" not in text


def test_eviction_params_and_pins_are_columns_when_they_vary(tmp_path):
    extra = {
        ("on-demand", "score-aware", "global", 8, '{"alpha": 0.3}', "none"): [(0.1, 1.0), (0.1, 1.0)],
        ("on-demand", "score-aware", "global", 8, '{"alpha": 0.5}', "none"): [(0.2, 1.0), (0.2, 1.0)],
        ("on-demand", "score-aware", "global", 8, '{"alpha": 0.5}', "top 4 over 0.5 of the trace"): [(0.3, 1.0), (0.3, 1.0)],
    }
    text = write_report(_evict_table(extra), tmp_path, published=False, plots=False).markdown.read_text()
    results = text.split("## Results:", 1)[1]
    assert "| pins |" in results.splitlines()[2]
    for label, pins, hit in (("score-aware (alpha=0.3)", "none", 0.1), ("score-aware (alpha=0.5)", "none", 0.2),
                             ("score-aware (alpha=0.5)", "top 4 over 0.5 of the trace", 0.3)):
        assert _cells(_row(results, "on-demand", "8 slots", label, "global", pins))[9] == f"{100 * hit:.2f}%"
    assert "oracle placement" in results  # a count of pins is chosen on the replayed trace


def test_eviction_section_numbers(tmp_path):
    text = write_report(_evict_table(), tmp_path, published=False, plots=False).markdown.read_text()
    assert "[Eviction policies](#eviction-policies)" in text
    sec = _section(text)
    od = sec.split("### `t`, `m` on `h`, on-demand, batch 1", 1)[1].split("###", 1)[0]
    hit_tab, tps_tab = od.split("**Tokens/s**", 1)
    # best per cache in bold, computed here: lfru global at both caches
    for slots in (8, 16):
        best = max((k for k in EVICT if k[0] == "on-demand" and k[3] == slots and EVICT[k]),
                   key=lambda k: _mean_of(k, 0))
        assert best[1:3] == ("lfru", "global")
    assert _cells(_row(hit_tab, "lfru", "global")) == [
        "lfru", "global", f"**{100 * _mean_of(('on-demand', 'lfru', 'global', 8), 0):.2f}%**",
        f"**{100 * _mean_of(('on-demand', 'lfru', 'global', 16), 0):.2f}%**"]
    assert _cells(_row(hit_tab, "lru", "global"))[2] == f"{100 * _mean_of(('on-demand', 'lru', 'global', 8), 0):.2f}%"
    assert _cells(_row(tps_tab, "lfru", "global"))[2] == f"**{_mean_of(('on-demand', 'lfru', 'global', 8), 1):.1f}**"
    # the failed configuration: a dash with a footnote saying why
    assert _cells(_row(hit_tab, "lfru", "per-layer"))[2] == "–¹"
    assert "¹ failed, below a layer's working set" in hit_tab
    # findings: the best and its margin over lru global
    margin8 = _mean_of(("on-demand", "lfru", "global", 8), 0) - _mean_of(("on-demand", "lru", "global", 8), 0)
    margin16 = _mean_of(("on-demand", "lfru", "global", 16), 0) - _mean_of(("on-demand", "lru", "global", 16), 0)
    lo, hi = sorted((margin8, margin16))
    assert "highest hit rate: lfru global at all 2 caches" in sec
    assert f"{100 * lo:+.2f} pp to {100 * hi:+.2f} pp over lru global" in sec
    # per-layer against global: the configurations where both partitions ran
    diffs = [_mean_of(("on-demand", ev, "per-layer", c), 0) - _mean_of(("on-demand", ev, "global", c), 0)
             for ev, c in (("lru", 8), ("lru", 16), ("lfru", 16))]
    assert f"mean over 3 (policy, cache) pairs at 2 cache sizes where both ran: {100 * statistics.fmean(diffs):+.2f} pp" in sec
    # LFRU at C against LRU at 2C, counted here
    pairs = [(st, p) for st in ("on-demand", "oracle") for p in ("global", "per-layer")
             if EVICT.get((st, "lfru", p, 8)) and EVICT.get((st, "lru", p, 16))]
    wins = [(st, p) for st, p in pairs if _mean_of((st, "lfru", p, 8), 0) > _mean_of((st, "lru", p, 16), 0)]
    assert len(pairs) == 2 and len(wins) == 1
    assert f"over the {len(pairs)} pairs" in sec
    assert f"LFRU has the higher hit rate in **{len(wins)}** (on-demand 1 of 1, oracle 0 of 1)" in sec
    line = _row(sec, "`t`", "oracle", "global", "8 slots")
    assert _cells(line)[4:8] == [f"{100 * _mean_of(('oracle', 'lfru', 'global', 8), 0):.2f}%", "16 slots",
                                 f"{100 * _mean_of(('oracle', 'lru', 'global', 16), 0):.2f}%",
                                 f"{100 * (_mean_of(('oracle', 'lfru', 'global', 8), 0) - _mean_of(('oracle', 'lru', 'global', 16), 0)):+.2f} pp"]
    assert _cells(line)[-1] == "LRU 2C"
    # what it rests on
    assert "generated by fastsim's presets" in sec and "not recorded routing logs" in sec
    assert "`router_scores = true`" not in sec  # no score-aware policy here: nothing to say about scores


def test_one_eviction_policy_has_no_eviction_section(tmp_path):
    text = write_report(_table(), tmp_path, published=False, plots=False).markdown.read_text()
    assert "Eviction policies" not in text


@pytest.mark.skipif(not have_matplotlib(), reason="the plot extra (matplotlib) is not installed")
def test_eviction_figure_per_trace(tmp_path):
    result = write_report(_evict_table(), tmp_path, published=False)
    figs = [p for p in result.figures if p.name.startswith("eviction-")]
    assert [p.name for p in figs] == ["eviction-t-m-h-b1.png"]
    assert figs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](figures/eviction-t-m-h-b1.png)" in result.markdown.read_text()


@pytest.mark.parametrize("name", ["seed-switch", "seed-qwen"])
def test_committed_seed_reports_are_unchanged(tmp_path, monkeypatch, name):
    """The committed seed reports (tables without partition, pin or eviction-parameter columns)
    come out byte for byte; figures are stubbed (their names are what the text links)."""
    from pathlib import Path

    import fastsim.report.plots as plots

    root = Path(__file__).resolve().parent.parent / "results" / name
    if not (root / "results.parquet").is_file():
        pytest.skip(f"results/{name} is not in this checkout")
    monkeypatch.setattr(plots, "have_matplotlib", lambda: True)
    for fn in ("batch_figure", "pareto_figure", "heatmap_figure", "seed_figure"):
        monkeypatch.setattr(plots, fn, lambda *a, **k: next(v for v in a if isinstance(v, Path)))
    result = write_report(root / "results.parquet", tmp_path)
    assert result.markdown.read_text() == (root / "report.md").read_text()
