"""``fastsim replay`` and ``fastsim sweep`` with the execution options (SPEC section 7)."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.trace.generate import generate_trace

from cli_helpers import MODEL, assert_replay_fails_in_one_line, assert_replay_flags_equal_python_api, bad_sweep_stderr


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-exec")
    trace = generate_trace(MODEL, 200, 3, 4)
    marked = fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths,
                                       prompt_tokens=np.minimum(trace.sequence_lengths, 8), model=MODEL)
    path = tmp / "t.parquet"
    marked.write(path)
    plain = tmp / "plain.parquet"
    trace.write(plain)
    return path, plain


@pytest.mark.parametrize(
    "flags, kwargs",
    [
        (["--cache-slots", "40", "--timeline", "layered", "--link", "demand-first"],
         {"cache_slots": 40, "timeline": "layered", "link": "demand-first"}),
        (["--cache-slots", "40", "--miss-execution", "cpu", "--max-uploads-per-layer", "1", "--prefill",
          "--batch-size", "2"],
         {"cache_slots": 40, "miss_execution": "cpu", "max_uploads_per_layer": 1, "prefill": True, "batch_size": 2}),
        (["--strategy", "top-k", "-p", "k=2", "--cache-slots", "40", "--max-inflight-prefetches", "3",
          "--overflow", "exceed", "--miss-execution", "zero-copy"],
         {"strategy": "top-k", "k": 2, "cache_slots": 40, "max_inflight_prefetches": 3, "overflow": "exceed",
          "miss_execution": "zero-copy"}),
        (["--cache-gb", "auto", "--reserve-gb", "1.5", "--context-tokens", "64", "--timeline", "layered"],
         {"cache_bytes": "auto", "reserve_bytes": 1_500_000_000, "context_tokens": 64, "timeline": "layered"}),
        (["--cache-bytes", "auto", "--reserve-bytes", "0"], {"cache_bytes": "auto", "reserve_bytes": 0}),
        (["--cache-bytes", "2000000000"], {"cache_bytes": 2_000_000_000}),
    ],
)
def test_replay_flags_equal_python_api(capsys, trace_file, flags, kwargs):
    path, _ = trace_file
    assert_replay_flags_equal_python_api(capsys, path, flags, kwargs)


def test_text_output_names_the_options_and_execution_metrics(capsys, trace_file):
    path, _ = trace_file
    code = main(["replay", "--trace", str(path), "--model", MODEL, "--cache-slots", "40", "--timeline", "layered",
                 "--prefill", "--batch-size", "2"])
    out, _ = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(", timeline layered, prefill"), lines[0]
    names = [line.split()[0] for line in lines[1:]]
    assert "ttft_p99_s" in names and "decode_hit_rate" in names and "cpu_executions" in names
    code = main(["replay", "--trace", str(path), "--model", MODEL, "--cache-slots", "40"])
    out, _ = capsys.readouterr()
    assert code == 0 and "ttft_s" not in out and "timeline" not in out


BAD = [
    (["--timeline", "fast"], "--timeline must be one of simple, layered, got 'fast'"),
    (["--link", "lifo"], "--link must be one of fifo, demand-first, got 'lifo'"),
    (["--miss-execution", "gpu"], "--miss-execution must be one of load, cpu, zero-copy, got 'gpu'"),
    (["--overflow", "spill"], "--overflow must be one of error, exceed, got 'spill'"),
    (["--max-inflight-prefetches", "0"], "--max-inflight-prefetches must be at least 1 (or none), got 0"),
    (["--max-inflight-prefetches", "two"], "--max-inflight-prefetches needs an integer, got 'two'"),
    (["--max-uploads-per-layer", "1"], "--max-uploads-per-layer caps uploads when the other misses run elsewhere: "
                                       "it needs --miss-execution cpu or zero-copy"),
    (["--miss-execution", "cpu", "--max-uploads-per-layer", "-1"], "--max-uploads-per-layer must be at least 0"),
    (["--cache-gb", "auto", "--reserve-gb", "-1"], "--reserve-gb must be zero or positive, got -1"),
    (["--cache-bytes", "auto", "--reserve-bytes", "1.5"], "--reserve-bytes needs a whole number of bytes, got 1.5"),
    (["--cache-bytes", "lots"], "--cache-bytes needs a number, got 'lots'"),
    (["--cache-gb", "auto", "--context-tokens", "-4"], "--context-tokens must be at least 0 (or none), got -4"),
    (["--cache-slots", "40", "--reserve-gb", "1"], "--reserve-gb sizes an auto cache: it needs --cache-gb auto"),
    (["--context-tokens", "10"], "--context-tokens sizes an auto cache: it needs --cache-gb auto"),
    (["--cache-gb", "auto", "--reserve-gb", "30"], 'cache_bytes="auto" leaves no room for experts'),
]


@pytest.mark.parametrize("flags, says", BAD)
def test_bad_execution_flags_one_line_exit_2(capsys, trace_file, flags, says):
    path, _ = trace_file
    assert_replay_fails_in_one_line(capsys, path, flags, says)


def test_prefill_without_prompt_marks_exits_2(capsys, trace_file):
    _, plain = trace_file
    code = main(["replay", "--trace", str(plain), "--model", MODEL, "--cache-slots", "40", "--prefill"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.splitlines()) == 1
    assert "prefill=True replays each prompt as one step, and this trace has no prompt marks" in err


def test_sweep_bad_execution_spec_exits_2(tmp_path):
    stderr = bad_sweep_stderr(tmp_path, 'caches = [24]\nmiss_executions = ["load"]\nmax_uploads_per_layer = [1]\n\n'
                                        f'[[traces]]\nname = "g"\nmodel = "{MODEL}"\ntokens = 40\n\n[strategies.on-demand]\n')
    assert "line 3: max_uploads_per_layer: max_uploads_per_layer caps uploads" in stderr


def test_sweep_reads_the_options_from_the_spec(tmp_path, capsys, trace_file):
    path, _ = trace_file
    spec = tmp_path / "s.toml"
    spec.write_text(f'caches = [40]\ntimelines = ["simple", "layered"]\nbaseline = false\n\n[[traces]]\n'
                    f'file = "{path}"\n\n[strategies.on-demand]\n')
    code = main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-q"])
    assert code == 0
    rows = pq.read_table(tmp_path / "o" / "results.parquet").to_pylist()
    assert [r["timeline"] for r in rows] == ["simple", "layered"]
    trace = fastsim.read_trace(path)
    for r in rows:
        ref = fastsim.replay(trace, model=MODEL, cache_slots=40, timeline=r["timeline"])
        assert r["total_time_s"] == ref.metrics["total_time_s"]
