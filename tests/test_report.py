"""fastsim report: aggregation recomputed independently, Markdown rows, figures, seed figures, bad input."""
from __future__ import annotations

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
