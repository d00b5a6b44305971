"""Sweep specs: generator settings passed through, paired profiles, the reproduction flag."""
from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq
import pytest

import fastsim
from fastsim.errors import SpecError
from fastsim.report.tables import read_results
from fastsim.sweep import load_spec
from fastsim.sweep.grid import expand
from fastsim.sweep.spec import generate_with
from fastsim.trace.generate import DEFAULT_PARAMS, PRESETS, generate_trace


def write_spec(tmp_path, text: str):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(text))
    return path, textwrap.dedent(text)


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


# ------------------------------------------------------------------ generator settings

def test_preset_passes_as_preset_and_sequences_stay_unset():
    spec = load_spec({
        "traces": [{"preset": "switch-seed", "tokens": 1024}],
        "strategies": {"on-demand": {}},
    })
    t = spec.traces[0]
    assert t.sequences is None
    trace = generate_with(t.model, t.tokens, t.sequences, 5, t.params)
    source = json.loads(trace.source)
    assert source["preset"] == "switch-seed"
    # the preset's own length distribution applies: round(tokens / length_mean) sequences
    assert trace.num_sequences == round(1024 / PRESETS["switch-seed"]["length_mean"])
    assert source["lengths"] == PRESETS["switch-seed"]["lengths"]
    expected = generate_trace("switch-base-128", 1024, None, 5, preset="switch-seed")
    assert trace.fingerprint() == expected.fingerprint()


def test_preset_with_a_parameter_override():
    spec = load_spec({
        "traces": [{"preset": "switch-seed", "tokens": 300, "sequences": 3, "reuse": 0.25}],
        "strategies": {"on-demand": {}},
    })
    t = spec.traces[0]
    trace = generate_with(t.model, t.tokens, t.sequences, 1, t.params)
    source = json.loads(trace.source)
    assert source["preset"] == "switch-seed" and source["reuse"] == 0.25 and source["sequences"] == 3


# a valid and an invalid value of every generator parameter (switch-base-128: 12 x 128 x top-1)
GOOD = {
    "zipf_s": 0.5, "zipf_q": 2.0, "floor": 0.1, "reuse": 0.2, "affinity": 0.3, "topic_shift": 0.1,
    "lengths": "random", "length_mean": 40, "length_sigma": 0.3, "weights": [1.0] * 128,
}
BAD = {
    "zipf_s": -1, "zipf_q": -2.0, "floor": 2.0, "reuse": 1.5, "affinity": -0.5, "topic_shift": 1.0,
    "lengths": "odd", "length_mean": 0, "length_sigma": -1.0, "weights": [1.0, 2.0, 3.0],
}


def test_good_and_bad_cover_every_generator_parameter():
    assert set(GOOD) == set(DEFAULT_PARAMS) == set(BAD)


def _toml(value) -> str:
    return json.dumps(value)  # numbers, strings and lists of numbers read the same in TOML


@pytest.mark.parametrize("key", sorted(DEFAULT_PARAMS))
def test_every_generator_parameter_is_accepted(tmp_path, key):
    path, _ = write_spec(tmp_path, f"""\
        [[traces]]
        model = "switch-base-128"
        tokens = 120
        {key} = {_toml(GOOD[key])}

        [strategies.on-demand]
    """)
    t = load_spec(path).traces[0]
    assert t.params == {key: GOOD[key]}
    source = json.loads(generate_with(t.model, t.tokens, t.sequences, 0, t.params).source)
    assert source[key] == GOOD[key]


@pytest.mark.parametrize("key", sorted(DEFAULT_PARAMS))
def test_bad_generator_parameter_names_key_and_line(tmp_path, key):
    path, text = write_spec(tmp_path, f"""\
        [[traces]]
        model = "switch-base-128"
        tokens = 120
        {key} = {_toml(BAD[key])}

        [strategies.on-demand]
    """)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"line {line_of(text, key + ' =')}:" in message
    assert f" traces[0].{key}:" in message


# ------------------------------------------------------------------ paired profiles

PAIRED = """\
seed = 2
runs = 1
batch_sizes = [1, 2]
caches = ["working-set", 24]
profiles = [["seed-switch", "rtx3090-seed"], ["switch-base-128", "rtx3090"]]

[[traces]]
name = "g"
model = "switch-base-128"
tokens = 48
sequences = 2

[strategies.on-demand]

[strategies.top-k]
k = [4, 8]
"""



def test_profiles_pair_rather_than_cross(tmp_path):
    spec = load_spec(write_spec(tmp_path, PAIRED)[0])
    configs, _ = expand(spec, {"g": ()})
    pairs = {(c.model.name, c.hardware.name) for c in configs}
    assert pairs == {("seed-switch", "rtx3090-seed"), ("switch-base-128", "rtx3090")}
    # per pair and batch size: on-demand at 2 caches + top-k's 2 values of k at 2 caches
    assert len(configs) == 2 * 2 * (2 + 2 * 2)
    crossed = load_spec({
        **{k: v for k, v in _doc(PAIRED).items() if k != "profiles"},
        "models": ["seed-switch", "switch-base-128"], "hardware": ["rtx3090-seed", "rtx3090"],
    })
    configs, _ = expand(crossed, {"g": crossed.models})
    assert len(configs) == 4 * 2 * (2 + 2 * 2)


def _doc(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize(
    "edit, needle, key",
    [
        (lambda t: t.replace("seed = 2", 'seed = 2\nmodels = ["seed-switch"]'), "models =", "models"),
        (lambda t: t.replace("seed = 2", 'seed = 2\nhardware = ["rtx3090"]'), "hardware =", "hardware"),
        (lambda t: t.replace('["switch-base-128", "rtx3090"]]', '["switch-base-128"]]'), "profiles =", "profiles[1]"),
        (lambda t: t.replace('"rtx3090"]]', '"no-such-gpu"]]'), "profiles =", "profiles[1][1]"),
        (lambda t: t.replace('[["seed-switch"', '[["no-such-model"'), "profiles =", "profiles[0][0]"),
        (lambda t: t.replace('["switch-base-128", "rtx3090"]]', '["seed-switch", "rtx3090-seed"]]'), "profiles =", "profiles[1]"),
        (lambda t: t.replace('[["seed-switch"', '[["mixtral-8x7b"'), "profiles =", "profiles[0][0]"),
        (lambda t: t.replace("profiles = [[", "profiles = []\n#[["), "profiles =", "profiles"),
    ],
)
def test_profile_errors_name_key_and_line(tmp_path, edit, needle, key):
    text = edit(PAIRED)
    assert text != PAIRED
    path, text = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"line {line_of(text, needle)}:" in message
    assert f" {key}:" in message


def test_paired_sweep_table_holds_the_pairs(tmp_path):
    doc = _doc(PAIRED)
    doc["strategies"] = {"on-demand": {}}
    doc["caches"] = ["working-set"]
    table = fastsim.sweep(doc, out=tmp_path)
    rows = table.to_pylist()
    assert {(r["model"], r["hardware"]) for r in rows} == {("seed-switch", "rtx3090-seed"), ("switch-base-128", "rtx3090")}
    assert len(rows) == 2 * 2  # two pairs x two batch sizes, one run
    assert all(r["error"] is None for r in rows)


# ------------------------------------------------------------------ the reproduction flag

def test_reproduces_is_stored_in_the_table(tmp_path):
    doc = {
        "reproduces": "seed-switch", "batch_sizes": [1], "profiles": [["switch-base-128", "rtx3090"]],
        "traces": [{"name": "g", "model": "switch-base-128", "tokens": 24, "sequences": 2}],
        "strategies": {"on-demand": {}},
    }
    assert load_spec(doc).reproduces == "seed-switch"
    fastsim.sweep(doc, out=tmp_path)
    meta = pq.read_schema(tmp_path / "results.parquet").metadata
    assert meta[b"fastsim.reproduces"] == b"seed-switch"
    assert read_results(tmp_path / "results.parquet")[1]["reproduces"] == "seed-switch"
    doc.pop("reproduces")
    fastsim.sweep(doc, out=tmp_path / "plain")
    assert b"fastsim.reproduces" not in pq.read_schema(tmp_path / "plain" / "results.parquet").metadata


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ({"reproduces": "seed-mixtral"}, "reproduces", "seed-switch, seed-qwen"),
        ({"reproduces": "seed-qwen"}, "profiles[0][0]", "(28, 64, 8)"),
        ({"reproduces": 1}, "reproduces", "int 1"),
    ],
)
def test_reproduces_errors(extra, key, words):
    doc = {
        "profiles": [["switch-base-128", "rtx3090"]],
        "traces": [{"model": "switch-base-128", "tokens": 24}],
        "strategies": {"on-demand": {}},
        **extra,
    }
    with pytest.raises(SpecError) as info:
        load_spec(doc)
    assert f" {key}:" in str(info.value) and words in str(info.value)


def test_seed_specs_pair_profiles_and_declare_what_they_reproduce():
    from pathlib import Path

    sweeps = Path(__file__).resolve().parents[1] / "sweeps"
    for name, seed_model, real_model in [("seed-switch", "seed-switch", "switch-base-128"),
                                         ("seed-qwen", "seed-qwen", "qwen2-57b-a14b")]:
        spec = load_spec(sweeps / f"{name}.toml")
        assert spec.reproduces == name
        assert [(m.name, h.name) for m, h in spec.profiles] == [(seed_model, "rtx3090-seed"), (real_model, "rtx3090")]
        assert spec.runs == 10 and spec.batch_sizes == (1, 2, 4, 8, 16)
        assert {g.strategy for g in spec.grids} == {"on-demand", "oracle", "multi-look", "top-k", "intelligent"}
        assert all(g.combos == ({},) for g in spec.grids)  # the seed's default parameters
