"""``fastsim.replay_row`` and ``fastsim replay --from-row``: a result row replayed again.

A small sweep exercises what a row must carry back: a generated trace (regenerated from the row),
a derived model name, a custom GPU with a figure the table does not record (found in the spec the
table keeps), a pin count, a per-layer partition, an auto cache and execution options. Committed
tables rebuild to configurations hashing as their rows, without replaying them all.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.eviction import get_eviction
from fastsim.errors import ConfigError, TraceError
from fastsim.replay_row import row_configs
from fastsim.sweep import run_sweep
from fastsim.sweep.grid import row_hash
from fastsim.trace.generate import generate_trace

REPO = Path(__file__).resolve().parents[1]
MODEL = "switch-base-128[0,1,2,3]"  # derived: 4 layers of 128 experts, top-1

SPEC = f"""\
name = "rows"
seed = 5
runs = 2
out = "out"
models = ["{MODEL}"]
caches = ["working-set", 64]

[[hardware]]
name = "tiny-gpu"
h2d_bytes_per_s = 16e9
transfer_latency_s = 1e-5
mem_bytes_per_s = 900e9
flops_per_s = 70e12
memory_bytes = 24_000_000_000
launch_s = 5e-6
layer_overhead_s = 2e-5   # no column records it: the row replays with it only through the spec

[[traces]]
name = "gen"
model = "{MODEL}"
tokens = 160
sequences = 4
zipf_s = 1.0
reuse = 0.3

[[strategies.on-demand]]

[[strategies.on-demand]]
caches = ["auto"]
timelines = ["layered"]
links = ["demand-first"]

[strategies.top-k]
k = 8
caches = [64]
pinned = [4]
cache_partitions = ["per-layer"]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep's folder and table."""
    folder = tmp_path_factory.mktemp("rows")
    spec = folder / "rows.toml"
    spec.write_text(SPEC)
    run = run_sweep(spec)
    assert not run.failures
    return folder / "out", run.table


def _write(table: pa.Table, path: Path, keep_metadata: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table if keep_metadata else table.replace_schema_metadata(None), path)
    return path


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsim: error: "), err
    return lines[0]


# ------------------------------------------------------------------------------ reproduction


def test_every_row_of_a_sweep_reproduces_with_its_exact_configuration(swept):
    folder, table = swept
    rows = table.to_pylist()
    assert {r["cache_request"] for r in rows} >= {"auto", "64 slots", "working-set"}
    assert {r["timeline"] for r in rows} == {"simple", "layered"}
    assert any(r["pin_request"].startswith("top 4") and r["cache_partition"] == "per-layer" for r in rows)
    assert "hw_layer_overhead_s" not in table.column_names
    for n in range(table.num_rows):
        again = fastsim.replay_row(folder / "results.parquet", n)
        assert again.reproduces, (n, again.differences)
        assert again.config_hash_matches, n
        assert again.result.metrics["total_time_s"] == rows[n]["total_time_s"]
        assert "generated again" in again.trace_origin


def test_the_table_folder_and_an_in_memory_table_serve_as_well(swept):
    folder, table = swept
    assert fastsim.replay_row(folder, 1).reproduces
    # a table read back keeps the spec in its metadata (the table fastsim.sweep returns has none)
    assert fastsim.replay_row(pq.read_table(folder / "results.parquet"), 1).reproduces


def test_without_the_spec_a_figure_no_column_records_is_lost(swept, tmp_path):
    folder, table = swept
    bare = _write(table, tmp_path / "bare" / "results.parquet", keep_metadata=False)
    again = fastsim.replay_row(bare, 0)
    assert not again.config_hash_matches
    assert not again.reproduces and "total_time_s" in again.differences
    assert again.differences["total_time_s"][0] == table["total_time_s"][0].as_py()


def test_a_replay_many_table_reproduces():
    trace = generate_trace(MODEL, tokens=120, sequences=3, seed=2, zipf_s=0.8)
    table = fastsim.replay_many(trace, [{"strategy": "on-demand", "hardware": "rtx3090"},
                                        {"strategy": "on-demand", "cache_slots": 64, "eviction": "fifo"}])
    for n in range(2):
        again = fastsim.replay_row(table, n)  # a generated trace comes back from its source
        assert again.reproduces and again.config_hash_matches, again.differences
    assert fastsim.replay_row(table, 1, trace=trace).trace_origin == "the trace given"


# ---------------------------------------------------------------------------- trace files


@pytest.fixture(scope="module")
def file_sweep(tmp_path_factory):
    """A sweep of a trace file whose table lies beside the file."""
    folder = tmp_path_factory.mktemp("filerows")
    routing = generate_trace(MODEL, tokens=100, sequences=2, seed=9)
    # a source that is no generator's, as a captured or imported trace has: only the file will do
    fastsim.Trace.from_arrays(routing.experts, routing.num_experts, routing.sequence_lengths, model=MODEL,
                              source="captured").write(folder / "t.parquet")
    (folder / "s.toml").write_text(textwrap.dedent(f"""\
        out = "."
        baseline = false
        models = ["{MODEL}"]
        [[traces]]
        file = "t.parquet"
        [strategies.on-demand]
        """))
    run_sweep(folder / "s.toml")
    return folder


def test_a_trace_file_is_found_beside_the_table(file_sweep):
    again = fastsim.replay_row(file_sweep / "results.parquet", 0)
    assert again.reproduces and again.trace_origin == f"trace file {str(file_sweep / 't.parquet')!r}"


def test_a_trace_file_not_found_names_it_and_the_override_replaces_it(file_sweep, tmp_path):
    moved = _write(pq.read_table(file_sweep / "results.parquet"), tmp_path / "elsewhere" / "results.parquet")
    with pytest.raises(TraceError, match="row 0's trace 't' is the file 't.parquet', found neither beside the table"):
        fastsim.replay_row(moved, 0)
    assert fastsim.replay_row(moved, 0, trace=file_sweep / "t.parquet").reproduces


def test_a_trace_of_another_fingerprint_names_both(file_sweep, tmp_path):
    other = tmp_path / "other.parquet"
    generate_trace(MODEL, tokens=100, sequences=2, seed=10).write(other)
    want = pq.read_table(file_sweep / "results.parquet")["trace_fingerprint"][0].as_py()
    have = fastsim.read_trace(other).fingerprint()
    with pytest.raises(TraceError, match=f"has fingerprint {have}, but row 0 was replayed on a trace with fingerprint {want}"):
        fastsim.replay_row(file_sweep / "results.parquet", 0, trace=other)


# -------------------------------------------------------------------------- command line


def test_from_row_prints_both_metrics_and_the_verdict(swept, capsys):
    folder, table = swept
    n = table.num_rows - 1
    code = main(["replay", "--from-row", f"{folder / 'results.parquet'}:{n}"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == f"reproduces row {n}"
    total = next(line for line in out if line.split()[:1] == ["total_time_s"]).split()
    assert total[1] == total[2]


def test_from_row_json(swept, capsys):
    folder, table = swept
    code = main(["replay", "--from-row", f"{folder}:0", "--json"])
    got = json.loads(capsys.readouterr().out)
    assert code == 0 and got["reproduces"] is True and got["differences"] == {}
    assert got["metrics"]["hits"] == got["row_metrics"]["hits"] == table["hits"][0].as_py()


def test_a_row_that_does_not_reproduce_exits_1_naming_the_metric(swept, tmp_path, capsys):
    folder, _ = swept
    table = pq.read_table(folder / "results.parquet")  # with the spec in its metadata
    hits = table["hits"].to_pylist()
    hits[2] += 1
    tampered = _write(table.set_column(table.column_names.index("hits"), "hits", pa.array(hits, pa.int64())),
                      tmp_path / "t" / "results.parquet")
    code = main(["replay", "--from-row", f"{tampered}:2"])
    last = capsys.readouterr().out.splitlines()[-1]
    assert code == 1
    assert last == f"does not reproduce row 2: hits {hits[2]} in the row, {hits[2] - 1} replayed"


@pytest.mark.parametrize("argv, says", [
    (["--from-row", "nowhere/results.parquet:0"], "nowhere/results.parquet: no such results table"),
    (["--from-row", "{table}:99"], "there is no row 99: the table has"),
    (["--from-row", "{table}"], "--from-row expects TABLE:N"),
    (["--from-row", "{table}:-1"], "--from-row expects TABLE:N"),
    (["--from-row", "{table}:0", "--strategy", "top-k"], "--strategy cannot be given with it"),
    (["--from-row", "{table}:0", "--trace", "missing.parquet"], "missing.parquet: no such trace file"),
    (["--strategy", "top-k"], "give the trace to replay with --trace FILE"),
])
def test_bad_input_exits_2_in_one_line(swept, capsys, argv, says):
    folder, _ = swept
    line = _one_line_error(capsys, ["replay"] + [a.format(table=folder / "results.parquet") for a in argv])
    assert says in line, line


def test_a_row_with_an_error_has_nothing_to_reproduce(swept, tmp_path, capsys):
    folder, table = swept
    errors = table["error"].to_pylist()
    errors[0] = "ConfigError: a cache of 1 experts is smaller than the working set"
    failed = _write(table.set_column(table.column_names.index("error"), "error", pa.array(errors, pa.string())),
                    tmp_path / "f" / "results.parquet")
    line = _one_line_error(capsys, ["replay", "--from-row", f"{failed}:0"])
    assert "row 0 has no metrics to reproduce: it failed with" in line
    with pytest.raises(ConfigError, match="not a fastsim results table"):
        fastsim.replay_row(pa.table({"x": [1]}), 0)


# ----------------------------------------------------------------------- committed tables


@pytest.mark.parametrize("name", ["seed-switch", "eviction", "execution/mixtral", "execution/seed-switch"])
def test_committed_rows_rebuild_to_their_configuration_hashes(name):
    """Every row's columns rebuild its configuration exactly: eviction parameters, partitions,
    pins, execution options and profiles (rows whose hash reads the trace's router scores or
    whose auto cache may have left its context to the trace need the trace, and are left out)."""
    path = REPO / "results" / name / "results.parquet"
    table = pq.read_table(path)
    spec = json.loads(table.schema.metadata[b"fastsim.spec"])
    checked = 0
    for row in table.to_pylist():
        if row["error"] or get_eviction(row["eviction"]).needs_scores or row["cache_request"] == "auto":
            continue
        hashes = {row_hash(c, row["trace_fingerprint"], row["run"], row["seed"]) for c in row_configs(row, spec, path.parent)}
        assert row["config_hash"] in hashes, row["config_id"]
        checked += 1
    assert checked > 50


def test_a_committed_row_reproduces(capsys):
    code = main(["replay", "--from-row", f"{REPO / 'results' / 'seed-switch' / 'results.parquet'}:17"])
    assert code == 0 and capsys.readouterr().out.splitlines()[-1] == "reproduces row 17"
