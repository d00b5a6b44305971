"""Bad parameters of ``fastsim.bound`` and ``fastsim bound``: one clear message (a ValueError
subclass in Python, exit status 2 and one stderr line on the command line), never a traceback."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fastsim
from fastsim.bound import bound, exact_optimum
from fastsim.cli.main import main

from timeline_helpers import hardware, model_for


@pytest.fixture
def tiny():
    trace = fastsim.Trace.from_arrays(np.array([0, 1, 1, 2]).reshape(-1, 1, 1), 3, None)
    return trace, model_for(1, 3, 1), hardware()


@pytest.mark.parametrize("kwargs, message", [
    ({"horizon": -1}, "horizon must be a whole number of positions >= 0"),
    ({"horizon": True}, "horizon must be a whole number"),
    ({"horizon": 2.5}, "horizon must be a whole number"),
    ({"horizon": "all"}, "horizon must be a whole number"),
    ({"cache_slots": None}, "give cache_slots"),
    ({"cache_slots": 0}, "smaller than the working set"),
    ({"cache_slots": "lots"}, "cache_slots must be a number or 'working-set'"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"cache_partition": [1, 2]}, "cache_partition"),
    ({"pinned": [99]}, "pinned keys must be integers in [0, 3)"),
    ({"batching": "bogus"}, "batching must be"),
    ({"batching": "recorded", "batch_size": 2}, "batch_size = 2 sets continuous-batching slots"),
])
def test_bad_parameters(tiny, kwargs, message):
    trace, model, hw = tiny
    args = {"cache_slots": 2, "batch_size": 1, **kwargs}
    with pytest.raises(fastsim.ConfigError, match=None) as info:
        bound(trace, model, hw, **args)
    assert message in str(info.value)


def test_byte_budget_over_several_sizes_is_refused():
    trace = fastsim.Trace.from_arrays(np.zeros((2, 2, 1), np.int64), 2, None)
    model = model_for(2, 2, 1, expert_bytes=[700, 1300])
    with pytest.raises(fastsim.ConfigError, match="the bound counts cache slots"):
        bound(trace, model, hardware(), cache_bytes=5000)


def test_model_shape_mismatch(tiny):
    trace, _, hw = tiny
    with pytest.raises(fastsim.ProfileError, match="num_experts"):
        bound(trace, model_for(1, 4, 1), hw, 2, 1)


def test_exact_refuses_large_traces():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    trace = fastsim.Trace.from_arrays(rng.integers(0, 64, size=(400, 2, 1)), 64, None)
    with pytest.raises(fastsim.ConfigError, match="the exact optimum is for tiny traces"):
        exact_optimum(trace, model_for(2, 64, 1), hardware(), 8, 1)


def test_exact_time_limit_must_be_positive(tiny):
    pytest.importorskip("scipy")
    trace, model, hw = tiny
    with pytest.raises(fastsim.ConfigError, match="time_limit_s must be a positive number"):
        exact_optimum(trace, model, hw, 2, 1, time_limit_s=0)


# ---- the command line


@pytest.fixture
def trace_file(tmp_path, tiny):
    trace, model, hw = tiny
    path = tmp_path / "t.parquet"
    trace.write(path)
    for name, profile in (("m.toml", model), ("h.toml", hw)):
        fields = "".join(f"{k} = {json.dumps(v)}\n" for k, v in profile.items() if k != "name")
        (tmp_path / name).write_text(f'["{profile["name"]}"]\n' + fields)
    return path


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json(capsys, trace_file):
    folder = trace_file.parent
    code, out, err = _cli(capsys, "bound", str(trace_file), "--model", str(folder / "m.toml"), "--hardware",
                          str(folder / "h.toml"), "--cache-slots", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert round(doc["bound"]["bound_total_time_s"] * 1e9) == 315
    assert doc["config"]["cache_slots"] == 2 and doc["config"]["horizon"] == 64


def test_cli_recorded_batching(capsys, tmp_path):
    """Two recorded passes ``[0, 1]`` and ``[1, 2]`` of one layer: each pass is one step, so the
    bound is that of two positions, not of four tokens one at a time."""
    trace = fastsim.Trace.from_arrays(np.array([0, 1, 1, 2]).reshape(-1, 1, 1), 3, [2, 2],
                                      model=None, metadata={"batching": "recorded"})
    model, hw = model_for(1, 3, 1), hardware()
    path = tmp_path / "passes.parquet"
    trace.write(path)
    for name, profile in (("m.toml", model), ("h.toml", hw)):
        fields = "".join(f"{k} = {json.dumps(v)}\n" for k, v in profile.items() if k != "name")
        (tmp_path / name).write_text(f'["{profile["name"]}"]\n' + fields)
    args = ["bound", str(path), "--model", str(tmp_path / "m.toml"), "--hardware", str(tmp_path / "h.toml"),
            "--cache-slots", "2"]
    code, out, err = _cli(capsys, *args, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["config"]["batching"] == "recorded"  # the trace's default
    assert round(doc["bound"]["bound_total_time_s"] * 1e9) == bound(trace, model, hw, 2, batching="recorded").total_ns
    code, out, err = _cli(capsys, *args, "--batching", "continuous", "--json")
    assert code == 0 and json.loads(out)["config"]["batching"] == "continuous"
    code, out, err = _cli(capsys, *args)
    assert code == 0 and "recorded batching" in out
    code, out, err = _cli(capsys, *args, "--batching", "passes")
    assert code == 2 and "--batching" in err and err.count("\n") == 1


def test_cli_text_with_exact(capsys, trace_file):
    pytest.importorskip("scipy")
    folder = trace_file.parent
    code, out, err = _cli(capsys, "bound", str(trace_file), "--model", str(folder / "m.toml"), "--hardware",
                          str(folder / "h.toml"), "--cache-slots", "1", "--exact", "--horizon", "all")
    assert code == 0, err
    assert "horizon all" in out
    assert "bound_total_time_s  3.6e-07" in out and "exact_total_time_s  3.6e-07" in out


@pytest.mark.parametrize("flags, message", [
    (["--cache-slots", "x"], "--cache-slots must be a number or 'working-set'"),
    (["--cache-slots", "2", "--horizon", "-3"], "--horizon needs a count of positions >= 0 or 'all'"),
    (["--cache-slots", "2", "--horizon", "soon"], "--horizon needs an integer"),
    (["--cache-slots", "2", "--batch-size", "two"], "--batch-size needs an integer"),
    (["--cache-slots", "2", "--time-limit", "0"], "--time-limit must be a positive number"),
    (["--cache-slots", "2", "--pin-profile", "0.5"], "--pin-profile needs --pinned N"),
    (["--cache-slots", "2", "--cache-partition", "a,b"], "--cache-partition must be global, per-layer"),
    (["--cache-slots", "0"], "smaller than the working set"),
])
def test_cli_bad_input_exits_2(capsys, trace_file, flags, message):
    folder = trace_file.parent
    code, out, err = _cli(capsys, "bound", str(trace_file), "--model", str(folder / "m.toml"), "--hardware",
                          str(folder / "h.toml"), *flags)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_missing_file(capsys, tmp_path):
    code, out, err = _cli(capsys, "bound", str(tmp_path / "none.parquet"), "--cache-slots", "2")
    assert code == 2 and err.startswith("fastsim: error:") and err.count("\n") == 1
