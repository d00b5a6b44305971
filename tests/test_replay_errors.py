"""Bad replay input: one clear message, a ValueError subclass in Python, exit 2 on the CLI."""
import numpy as np
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.errors import ConfigError, FastsimError, ProfileError

from timeline_helpers import hardware, model_for


@pytest.fixture
def trace():
    rng = np.random.default_rng(0)
    experts = np.stack([rng.permutation(8)[:2] for _ in range(40)]).reshape(20, 2, 2)
    return fastsim.Trace.from_arrays(experts, 8, [10, 10], model=None)


@pytest.fixture
def trace_file(tmp_path):
    path = tmp_path / "t.parquet"
    fastsim.Trace.from_arrays(np.zeros((5, 12, 1), np.int64), 128, model="switch-base-128").write(path)
    return path


M = model_for(2, 8, 2)
H = hardware()


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(strategy="no-such"), ConfigError, "unknown strategy 'no-such'"),
        (dict(model="no-such-model"), ProfileError, "no-such-model"),
        (dict(hardware="no-such-gpu"), ProfileError, "no-such-gpu"),
        (dict(model=model_for(3, 8, 2)), ProfileError, "num_layers = 3 but the trace has 2"),
        (dict(model=model_for(2, 9, 2)), ProfileError, "num_experts = 9 but the trace has 8"),
        (dict(model=model_for(2, 8, 1)), ProfileError, "top_k = 1 but the trace has 2"),
        (dict(batch_size=0), ConfigError, "batch_size must be at least 1"),
        (dict(batch_size=1.5), ConfigError, "batch_size must be an integer"),
        (dict(eviction="no-such-policy"), ConfigError, "unknown eviction 'no-such-policy'"),
        (dict(cache_slots=1), ConfigError, "smaller than the working set: step 0, layer 0 needs 2"),
        (dict(cache_slots=3, batch_size=2), ConfigError, "needs 4 experts at once at batch size 2"),
        (dict(cache_slots="all"), ConfigError, "'working-set'"),
        (dict(cache_slots=4, cache_bytes=4000), ConfigError, "exactly one of"),
        (dict(strategy="oracle"), ConfigError, "exactly one of"),
        (dict(cache_bytes=10**20), ConfigError, "does not fit"),
        (dict(strategy="oracle", cache_slots=4, lookahead=0), ConfigError, "'lookahead' must lie in"),
        (dict(strategy="oracle", cache_slots=4, bogus=1), ConfigError, "no parameter 'bogus'"),
        (dict(max_prefetch_loads=-1), ConfigError, "max_prefetch_loads must be at least 0"),
    ],
)
def test_bad_replay_input(trace, kwargs, error, words):
    kw = dict(model=M, hardware=H)
    kw.update(kwargs)
    with pytest.raises(error) as exc:
        fastsim.replay(trace, **kw)
    assert isinstance(exc.value, FastsimError) and isinstance(exc.value, ValueError)
    assert words in str(exc.value)


def test_trace_without_model_needs_one(trace):
    with pytest.raises(ConfigError, match="names no model profile"):
        fastsim.replay(trace, hardware=H)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--cache-slots", "0"], "smaller than the working set"),
        (["--cache-slots", "many"], "--cache-slots must be a number"),
        (["--batch-size", "0"], "batch_size must be at least 1"),
        (["--model", "qwen2-57b-a14b"], "model profile 'qwen2-57b-a14b' has num_layers = 28"),
        (["--hardware", "tpu"], "unknown hardware profile 'tpu'"),
        (["--strategy", "top-k", "--cache-gb", "4", "-p", "k=0"], "'k' must lie in"),
        (["--cache-gb", "-1"], "--cache-gb must be zero or positive"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(trace_file, capsys, args, words):
    code = main(["replay", "--trace", str(trace_file), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_missing_and_malformed_trace(tmp_path, capsys):
    assert main(["replay", "--trace", str(tmp_path / "missing.parquet")]) == 2
    assert "missing.parquet" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert main(["replay", "--trace", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.parquet" in err and len(err.strip().splitlines()) == 1


def test_cli_replay_json(trace_file, capsys):
    import json

    assert main(["replay", "--trace", str(trace_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["strategy"] == "on-demand" and out["config"]["cache_request"] == "working-set"
    # 5 tokens x 12 layers; a one-slot cache misses every key change, and keys change every layer
    assert out["metrics"]["accesses"] == 60 and out["metrics"]["misses"] == 60
