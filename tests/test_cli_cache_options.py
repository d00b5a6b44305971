"""``fastsim replay`` and ``fastsim sweep`` with the cache organisation options (SPEC section 6)."""
from __future__ import annotations

import numpy as np
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.trace.generate import generate_trace

from cli_helpers import (
    MODEL, assert_replay_fails_in_one_line, assert_replay_flags_equal_python_api, bad_sweep_stderr, run_cli,
)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    trace = generate_trace(MODEL, 300, 3, 5)
    rng = np.random.default_rng(1)
    scored = fastsim.Trace.from_arrays(
        trace.experts, trace.num_experts, trace.sequence_lengths,
        scores=rng.uniform(0.05, 1.0, trace.experts.shape).astype(np.float32), model=MODEL,
    )
    path = tmp / "t.parquet"
    scored.write(path)
    plain = tmp / "plain.parquet"
    trace.write(plain)
    return path, plain


@pytest.mark.parametrize(
    "flags, kwargs",
    [
        (["--eviction", "lfu", "--cache-slots", "24"], {"eviction": "lfu", "cache_slots": 24}),
        (
            ["--eviction", "score-aware", "--eviction-param", "alpha=0.25", "--cache-slots", "24", "--cache-partition", "per-layer"],
            {"eviction": "score-aware", "eviction_params": {"alpha": 0.25}, "cache_slots": 24, "cache_partition": "per-layer"},
        ),
        (
            ["--strategy", "top-k", "-p", "k=2", "--eviction", "activation-aware", "--eviction-param", "smoothing=3",
             "--cache-slots", "24", "--cache-partition", "2,2,4,4,6,6", "--batch-size", "2"],
            {"strategy": "top-k", "k": 2, "eviction": "activation-aware", "eviction_params": {"smoothing": 3},
             "cache_slots": 24, "cache_partition": [2, 2, 4, 4, 6, 6], "batch_size": 2},
        ),
        (
            ["--eviction", "belady", "--cache-slots", "24", "--pinned", "5", "--pin-profile", "0.3"],
            {"eviction": "belady", "cache_slots": 24, "pinned": 5, "pin_profile": 0.3},
        ),
        (
            ["--eviction", "fifo", "--cache-slots", "30", "--cache-partition", "per-layer", "--pinned-keys", "0,129,300"],
            {"eviction": "fifo", "cache_slots": 30, "cache_partition": "per-layer", "pinned": [0, 129, 300]},
        ),
        (["--eviction", "lru", "--pinned", "0"], {"pinned": 0}),
    ],
)
def test_replay_flags_equal_python_api(capsys, trace_file, flags, kwargs):
    path, _ = trace_file
    assert_replay_flags_equal_python_api(capsys, path, flags, kwargs)


def test_replay_text_output_names_the_organisation(capsys, trace_file):
    path, _ = trace_file
    code = main(["replay", "--trace", str(path), "--model", MODEL, "--cache-slots", "30", "--eviction", "lfru",
                 "--cache-partition", "per-layer", "--pinned", "4"])
    out, _ = capsys.readouterr()
    assert code == 0
    first = out.splitlines()[0]
    assert "lfru" in first and "partition per-layer [5, 5, 5, 5, 5, 5]" in first and "4 pinned (top 4 over 1 of the trace)" in first


BAD = [
    (["--eviction", "no-such-policy"], "unknown eviction 'no-such-policy'"),
    (["--eviction", "lfu", "--eviction-param", "alpha=1"], "eviction 'lfu' has no parameter 'alpha'"),
    (["--eviction", "score-aware", "--eviction-param", "alpha=2"], "eviction 'score-aware' parameter 'alpha' must lie in"),
    (["--eviction", "score-aware", "--eviction-param", "alpha"], "--eviction-param expects NAME=VALUE"),
    (["--eviction", "score-aware", "--eviction-param", "alpha=x"], "--eviction-param alpha needs a number"),
    (["--cache-slots", "24", "--cache-partition", "by-layer"], "--cache-partition must be global, per-layer or comma-separated"),
    (["--cache-slots", "24", "--cache-partition", "4,4"], "cache_partition must list 6 non-negative integers"),
    (["--cache-slots", "24", "--cache-partition", "4,4,4,4,4,5"], "cache_partition sizes sum to 25 slots but the cache is 24"),
    (["--cache-slots", "24", "--pinned", "-2"], "--pinned needs a count >= 0"),
    (["--cache-slots", "24", "--pinned", "many"], "--pinned needs a count of keys"),
    (["--cache-slots", "24", "--pinned", "4", "--pin-profile", "0"], "--pin-profile must be a fraction in (0, 1]"),
    (["--cache-slots", "24", "--pinned", "4", "--pin-profile", "1.5"], "--pin-profile must be a fraction in (0, 1]"),
    (["--cache-slots", "24", "--pin-profile", "0.5"], "--pin-profile needs --pinned N"),
    (["--cache-slots", "24", "--pinned", "2", "--pinned-keys", "1"], "give one of --pinned N and --pinned-keys"),
    (["--cache-slots", "24", "--pinned-keys", "1,,2"], "--pinned-keys expects comma-separated integers"),
    (["--cache-slots", "24", "--pinned-keys", "1,1"], "pinned lists a key twice"),
    (["--cache-slots", "24", "--pinned-keys", "9999"], "pinned keys must be integers in [0, 768)"),
    (["--cache-slots", "6", "--pinned", "7"], "the pinned keys take 7 slots but the cache holds 6 slots"),
    (["--batch-size", "two"], "--batch-size needs an integer"),
]


@pytest.mark.parametrize("flags, says", BAD)
def test_bad_replay_input_one_line_exit_2(capsys, trace_file, flags, says):
    path, _ = trace_file
    assert_replay_fails_in_one_line(capsys, path, flags, says)


def test_score_aware_without_scores_exits_2(capsys, trace_file):
    _, plain = trace_file
    code = main(["replay", "--trace", str(plain), "--model", MODEL, "--eviction", "score-aware"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.splitlines()) == 1
    assert "reads router scores, and this trace has none" in err


def test_bad_input_from_a_real_process(trace_file):
    """The same from the installed command line: exit status 2, one line, no traceback."""
    path, _ = trace_file
    for flags, says in [(["--eviction", "nope"], "unknown eviction 'nope'"),
                        (["--pinned", "3", "--pin-profile", "2"], "--pin-profile must be a fraction in (0, 1], got '2'")]:
        proc = run_cli(["replay", "--trace", str(path), "--model", MODEL, *flags])
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.splitlines() == [f"fastsim: error: {proc.stderr.splitlines()[0][16:]}"]
        assert "Traceback" not in proc.stderr and says in proc.stderr


def test_sweep_bad_organisation_spec_exits_2(tmp_path):
    stderr = bad_sweep_stderr(
        tmp_path,
        'caches = [24]\ncache_partitions = ["global", [4, 4]]\n\n[[traces]]\nname = "g"\n'
        f'model = "{MODEL}"\ntokens = 40\n\n[strategies.on-demand]\n',
    )
    assert "line 2: cache_partitions[1]: a cache partition list needs 6 sizes" in stderr
