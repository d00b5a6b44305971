"""``fastsim report`` with the execution options (SPEC section 7): TTFT / TPOT, decode hit rate
and CPU / zero-copy columns where the table has them, the execution column and the section whose
findings name the options they compare; tables without them report as before."""
from __future__ import annotations

import pyarrow as pa
import pytest

from fastsim.report import write_report
from fastsim.report.tables import summarise

# (strategy, execution options that differ, runs' total_time_s, ttft_s, tpot_s, cpu, zero-copy)
ROWS = [
    ("on-demand", {}, [2.0, 2.2], None, None, None, None),
    ("on-demand", {"timeline": "layered"}, [1.6, 1.8], None, [0.004, 0.006], [0, 0], [0, 0]),
    ("on-demand", {"miss_execution": "cpu"}, [2.5, 2.5], None, [0.008, 0.010], [40, 60], [0, 0]),
    ("on-demand", {"prefill": True}, [1.0, 1.2], [0.05, 0.07], [0.002, 0.002], [0, 0], [0, 0]),
]
DEFAULTS = {"timeline": "simple", "link": "fifo", "max_inflight_prefetches": None, "miss_execution": "load",
            "max_uploads_per_layer": None, "overflow": "error", "prefill": False}


def _table(with_execution: bool = True) -> pa.Table:
    cols: dict[str, list] = {k: [] for k in (
        "config_id", "run", "seed", "trace", "strategy", "model", "hardware", "batch_size", "cache_request",
        "cache_slots", "eviction", "total_time_s", "hit_rate", "peak_cache_bytes", "speedup", "error",
    )}
    if with_execution:
        for k in list(DEFAULTS) + ["ttft_s", "ttft_p99_s", "tpot_s", "tpot_p99_s", "decode_hit_rate",
                                   "cpu_executions", "zero_copy_executions"]:
            cols[k] = []
    rows = ROWS if with_execution else ROWS[:1]
    for cid, (strategy, opts, lat, ttft, tpot, cpu, zc) in enumerate(rows):
        for run, t in enumerate(lat):
            for k, v in (("config_id", cid), ("run", run), ("seed", run), ("trace", "t"), ("strategy", strategy),
                         ("model", "m"), ("hardware", "h"), ("batch_size", 1), ("cache_request", "24 slots"),
                         ("cache_slots", 24), ("eviction", "lru"), ("total_time_s", t), ("hit_rate", 0.5),
                         ("peak_cache_bytes", 24_000_000), ("speedup", 2.0 / t), ("error", None)):
                cols[k].append(v)
            if with_execution:
                for k, d in DEFAULTS.items():
                    cols[k].append(opts.get(k, d))
                measured = bool(opts)
                cols["ttft_s"].append(ttft[run] if ttft else (0.0 if measured else None))
                cols["ttft_p99_s"].append(2 * ttft[run] if ttft else (0.0 if measured else None))
                cols["tpot_s"].append(tpot[run] if tpot else None)
                cols["tpot_p99_s"].append(3 * tpot[run] if tpot else None)
                cols["decode_hit_rate"].append(0.4 if measured else None)
                cols["cpu_executions"].append(cpu[run] if cpu else None)
                cols["zero_copy_executions"].append(zc[run] if zc else None)
    return pa.table(cols)


def _results_lines(text: str) -> list[str]:
    part = text.split("## Results: `t`, `m` on `h`", 1)[1]
    return [line for line in part.splitlines() if line.startswith("|")]


def test_summaries_read_the_execution_columns():
    by_label = {s.execution_label: s for s in summarise(_table())}
    assert list(by_label) == ["default", "miss_execution=cpu", "prefill", "timeline=layered"]
    cpu = by_label["miss_execution=cpu"]
    assert cpu.cpu_executions == pytest.approx(50.0) and cpu.tpot_ms == pytest.approx(9.0)
    assert cpu.tpot_p99_ms == pytest.approx(27.0)
    pre = by_label["prefill"]
    assert pre.ttft_ms == pytest.approx(60.0) and pre.ttft_p99_ms == pytest.approx(120.0)
    assert by_label["default"].tpot_ms != by_label["default"].tpot_ms  # NaN: section 3's timeline


def test_results_table_gains_the_execution_columns(tmp_path):
    text = write_report(_table(), tmp_path, published=False, plots=False).markdown.read_text()
    head, _, *rows = _results_lines(text)
    cells = [c.strip() for c in head.strip("|").split("|")]
    assert cells == ["strategy", "cache", "execution", "batch", "latency ms (mean ± std)", "p95 ms", "p99 ms",
                     "hit rate", "memory MB", "speedup", "TTFT ms", "TTFT p99 ms", "TPOT ms", "TPOT p99 ms",
                     "decode hit rate", "CPU runs", "runs"]
    by = {r.split("|")[3].strip(): [c.strip() for c in r.strip("|").split("|")] for r in rows}
    assert by["default"][10:16] == ["–", "–", "–", "–", "–", "–"]
    assert by["prefill"][10:14] == ["60.0", "120.0", "2", "6"]
    assert by["miss_execution=cpu"][10:12] == ["–", "–"]  # no prefill steps: no TTFT
    assert by["miss_execution=cpu"][12:16] == ["9", "27", "40.00%", "50"]
    assert by["timeline=layered"][15] == "0"


def test_execution_section_findings_name_the_options(tmp_path):
    text = write_report(_table(), tmp_path, published=False, plots=False).markdown.read_text()
    assert "[Execution options](#execution-options)" in text
    section = text.split("## Execution options", 1)[1].split("\n## ", 1)[0]
    findings = [line for line in section.splitlines() if line.startswith("- ")]
    # default latency 2.1 ms mean: layered 1.7 (1.24x), cpu 2.5 (0.84x), prefill 1.1 (1.91x)
    assert findings == [  # in the order the report sorts configurations (option labels)
        "- `miss_execution=cpu` against the defaults (SPEC section 3's timeline) over 1 configuration: speed "
        "(default latency / its latency) mean 0.84×, faster in 0, slower in 1.",
        "- `prefill` against the defaults (SPEC section 3's timeline) over 1 configuration: speed "
        "(default latency / its latency) mean 1.91×, faster in 1, slower in 0.",
        "- `timeline=layered` against the defaults (SPEC section 3's timeline) over 1 configuration: speed "
        "(default latency / its latency) mean 1.24×, faster in 1, slower in 0.",
    ]
    rows = [line for line in section.splitlines() if line.startswith("| on-demand")]
    assert [r.split("|")[5].strip() for r in rows] == ["default", "miss_execution=cpu", "prefill", "timeline=layered"]
    assert [r.split("|")[7].strip() for r in rows] == ["1.00×", "0.84×", "1.91×", "1.24×"]


def test_one_shared_option_set_is_named_under_the_table(tmp_path):
    table = _table()
    keep = [i for i, c in enumerate(table.column("config_id").to_pylist()) if c == 1]
    text = write_report(table.take(keep), tmp_path, published=False, plots=False).markdown.read_text()
    assert "*Execution:* every row ran with `timeline=layered`" in text
    assert "## Execution options" not in text
    head = _results_lines(text)[0]
    assert "execution" not in head and "TPOT ms" in head and "TTFT ms" not in head and "CPU runs" not in head


def test_tables_without_execution_columns_report_as_before(tmp_path):
    """A table of SPEC section 3 rows, with or without the (default-valued) execution columns,
    gives the same report."""
    plain = write_report(_table(False), tmp_path / "a", published=False, plots=False).markdown.read_text()
    table = _table()
    keep = [i for i, c in enumerate(table.column("config_id").to_pylist()) if c == 0]
    with_cols = write_report(table.take(keep), tmp_path / "b", published=False, plots=False).markdown.read_text()
    assert plain == with_cols
    assert "Execution" not in plain and "TPOT" not in plain
