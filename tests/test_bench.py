"""``fastsim bench`` end to end on a tiny trace: the table, the JSON object, bad options.

No timing assertions: speed is what the bench reports, not what the tests check.
"""
from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from fastsim.bench import get_cases
from fastsim.cli.main import main

CASES = [
    "lru-vs-libcachesim", "belady-vs-libcachesim", "kernel-vs-reference", "parquet-load", "memory", "compile",
]
COMMON = ("case", "fastsim_per_s", "baseline", "baseline_per_s", "ratio", "unit", "target")
# Fields each case adds beyond the common ones.
EXTRA = {
    "lru-vs-libcachesim": ("fastsim_s", "baseline_s", "accesses", "fastsim_hits", "baseline_hits", "hits_agree"),
    "belady-vs-libcachesim": ("fastsim_s", "baseline_s", "accesses", "fastsim_hits", "baseline_hits", "hits_agree"),
    "kernel-vs-reference": ("fastsim_s", "baseline_s", "accesses", "metrics_agree"),
    "parquet-load": ("fastsim_s", "baseline_s", "ids", "file_bytes", "round_trip_equal"),
    "memory": (
        "routing_bytes", "lru_schedule_array_bytes", "belady_schedule_array_bytes", "lru_schedule_growth_bytes", "lru_kernel_growth_bytes", "lru_replay_growth_bytes",
        "belady_replay_growth_bytes", "lru_growth_per_routing_byte", "belady_growth_per_routing_byte", "method",
    ),
    "compile": ("warm_load_s", "replay_s", "kernel_s", "accesses", "entry_loaded_from_cache"),
}
TOKENS = 2000


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    """One run of this file's cases, as ``--json`` prints it (the strategy and sweep cases have
    their own tests)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--json", "--quiet", "--tokens", str(TOKENS), "--repeat", "1", "--cases", ",".join(CASES)])
    assert code == 0
    return json.loads(out.getvalue())


def test_registry_holds_the_cases():
    # these cases first, in this order; later modules add theirs after them
    assert list(get_cases())[: len(CASES)] == CASES


def test_json_has_every_field(bench_json):
    assert isinstance(bench_json["fastsim_version"], str)
    machine = bench_json["machine"]
    for field in ("cpu_count", "python", "numba"):
        assert machine[field]
    assert bench_json["tokens"] == TOKENS and bench_json["repeat"] == 1
    assert [row["case"] for row in bench_json["cases"]] == CASES
    for row in bench_json["cases"]:
        for field in COMMON + EXTRA[row["case"]]:
            assert field in row, (row["case"], field)


def test_rates_and_ratios_are_consistent(bench_json):
    for row in bench_json["cases"]:
        if row["baseline"] is None:
            assert row["baseline_per_s"] is None and row["ratio"] is None
            continue
        assert row["fastsim_per_s"] > 0 and row["baseline_per_s"] > 0
        assert math.isclose(row["ratio"], row["fastsim_per_s"] / row["baseline_per_s"], rel_tol=1e-9)


def test_workload_sizes(bench_json):
    rows = {row["case"]: row for row in bench_json["cases"]}
    # switch-base-128: 12 layers, top-1, no lost entries in generated traces
    for name in ("lru-vs-libcachesim", "belady-vs-libcachesim", "kernel-vs-reference", "compile"):
        assert rows[name]["accesses"] == TOKENS * 12
    # qwen2-57b-a14b: 28 layers, top-8
    assert rows["parquet-load"]["ids"] == TOKENS * 28 * 8
    assert rows["memory"]["routing_bytes"] == TOKENS * 12 * 2  # int16 ids


def test_the_checks_inside_the_cases_pass(bench_json):
    rows = {row["case"]: row for row in bench_json["cases"]}
    for name in ("lru-vs-libcachesim", "belady-vs-libcachesim"):
        assert rows[name]["hits_agree"] is True
        assert rows[name]["fastsim_hits"] == rows[name]["baseline_hits"]
    assert rows["kernel-vs-reference"]["metrics_agree"] is True
    assert rows["parquet-load"]["round_trip_equal"] is True
    assert rows["compile"]["entry_loaded_from_cache"] is True
    mem = rows["memory"]
    # Schedule layout at top-1, batch 1 (one access per position): r_ptr int64 per position + 1,
    # r_experts and r_counts int32 per access, active int32 per step; Belady adds r_next int64
    # per access and key_first int64 per key.
    positions = accesses = TOKENS * 12
    lru_bytes = 8 * (positions + 1) + 8 * accesses + 4 * TOKENS
    assert mem["lru_schedule_array_bytes"] == lru_bytes
    assert mem["belady_schedule_array_bytes"] == lru_bytes + 8 * accesses + 8 * 12 * 128


def test_table(capsys):
    code = main(["bench", "--quiet", "--tokens", "500", "--repeat", "1", "--cases", "lru-vs-libcachesim,kernel-vs-reference"])
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("case "))
    for column in ("fastsim", "baseline", "ratio", "target"):
        assert column in lines[header]
    body = lines[header + 2 : header + 4]
    assert [line.split()[0] for line in body] == ["lru-vs-libcachesim", "kernel-vs-reference"]
    assert "libCacheSim LRU" in body[0]
    for line in body:
        assert any(tok.endswith("x") and tok[:-1].replace(".", "").isdigit() for tok in line.split())


def test_list_cases(capsys):
    assert main(["bench", "--list-cases"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()][: len(CASES)] == CASES


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cases", "nope"], "unknown benchmark case 'nope'"),
        (["--cases", ","], "--cases is empty"),
        (["--tokens", "0"], "positive integer"),
        (["--tokens", "many"], "positive integer"),
        (["--repeat", "-1"], "positive integer"),
    ],
)
def test_bad_options_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(["bench", "--quiet", *argv])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
