"""``moe-infinity``'s ``library`` parameter: MoE-Infinity's saved expert activation matrices
(``ExpertTracer.load_trace``, a ``.npy`` of ``(requests, layers, experts)`` counts) as the first,
persistent slots of the library; through replay, the command line, sweeps, row hashes and
``replay_row``; and one clear message for each bad file. The kernel-vs-reference property test
with drawn libraries is in test_strategies_prefetchers.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastsim
from fastsim.cli.main import main
from fastsim.errors import ConfigError, SpecError
from fastsim.profiles import hardware_profile, model_profile
from fastsim.sweep.grid import make_config, row_hash
from fastsim.sweep.spec import CacheRequest

MODEL = "mixtral-8x7b[0,1,2]"  # derived: 3 layers of 8 experts, top-2
L, E = 3, 8
#: two requests of three tokens each, every token routed to experts (l, l + 1) at layer l
ROUTING = np.array([[[l, l + 1] for l in range(L)]] * 6, np.int16)


def _trace(lengths=(3, 3)) -> fastsim.Trace:
    return fastsim.Trace.from_arrays(ROUTING[: sum(lengths)], E, list(lengths), model=MODEL)


def _library(path, matrices) -> str:
    np.save(path, np.asarray(matrices))
    return str(path)


def _one_hot(pairs, n=1):
    m = np.zeros((n, L, E), np.int64)
    for i, (j, e, c) in enumerate(pairs):
        m[i % n, j, e] = c
    return m


def _replay(trace, **params):
    return fastsim.replay(trace, "moe-infinity", hardware="rtx3090", cache_slots=8, eviction="lru", record=True,
                          **params)


def test_a_library_predicts_the_first_request(tmp_path):
    """Without a library the first request has nothing to match and prefetches nothing; with one
    saved matrix the calls of its first step already want that matrix's keys."""
    trace = _trace((6,))
    plain = _replay(trace)
    assert plain.metrics["prefetch_loads"] == 0
    lib = _library(tmp_path / "eam.npy", _one_hot([(1, 5, 3), (2, 6, 1)]))
    seeded = _replay(trace, library=lib)
    # a call at layer 0 wants the matrix's keys of layers >= 0: (1, 5) weighs 3 * (1 - 1/4), (2, 6) 1 * (1 - 2/4)
    assert [int(k) for k in seeded.wanted[0]] == [1 * E + 5, 2 * E + 6]
    assert [int(k) for k in seeded.wanted[1]] == [1 * E + 5, 2 * E + 6]
    assert [int(k) for k in seeded.wanted[2]] == [2 * E + 6]
    assert seeded.metrics["prefetch_loads"] > 0
    assert seeded.config["params"]["library"] == lib


def test_loaded_matrices_are_persistent(tmp_path):
    """capacity = 1 with one loaded matrix: finished requests never replace it, so every call of
    every request wants the loaded matrix's keys; without the library the first finished
    request's matrix takes the slot."""
    trace = _trace((2, 2, 2))
    lib = _library(tmp_path / "eam.npy", _one_hot([(2, 7, 1)]))
    seeded = _replay(trace, library=lib, capacity=1)
    for p, wanted in enumerate(seeded.wanted):
        assert [int(k) for k in wanted] == [2 * E + 7], p
    plain = _replay(trace, capacity=1)
    assert any(len(w) and int(w[0]) != 2 * E + 7 for w in plain.wanted)


def test_matrices_of_any_numeric_type(tmp_path):
    trace = _trace()
    counts = _one_hot([(0, 1, 2), (1, 2, 1)], n=2)
    ints = _replay(trace, library=_library(tmp_path / "i.npy", counts)).metrics
    floats = _replay(trace, library=_library(tmp_path / "f.npy", counts.astype(np.float32))).metrics
    assert ints == floats


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("npz", "a .npz archive"),
    (np.zeros((1, L, E + 1)), f"expected an array of shape (requests, {L}, {E})"),
    (np.zeros((L, E)), "got shape (3, 8)"),
    (np.zeros((0, L, E)), "holds no matrices"),
    (np.array([[["a"] * E] * L]), "expected numeric counts"),
    (np.ones((5, L, E)), "holds 5 matrices, more than capacity = 4"),
    (np.where(np.arange(L * E).reshape(1, L, E) == 9, -1.0, 1.0), "matrix 0, layer 1, expert 1 is -1.0"),
    (np.where(np.arange(L * E).reshape(1, L, E) == 0, np.nan, 1.0), "matrix 0, layer 0, expert 0 is nan"),
    (np.concatenate([np.ones((1, L, E)), np.zeros((1, L, E))]), "matrix 1 is all zeros"),
])
def test_bad_library_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "eam.npy"
    if isinstance(content, str):
        np.savez(path, np.ones((1, L, E)))
        (tmp_path / "eam.npy.npz").rename(path)
    elif content is not None:
        np.save(path, content)
    with pytest.raises(ConfigError) as err:
        _replay(_trace(), library=str(path), capacity=4)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_library_that_is_not_a_path(tmp_path):
    with pytest.raises(ConfigError, match="parameter 'library' must be a file path"):
        _replay(_trace(), library=3)


def test_the_command_line(tmp_path, capsys):
    trace = _trace()
    trace.write(tmp_path / "t.parquet")
    lib = _library(tmp_path / "eam.npy", _one_hot([(1, 5, 3)]))
    argv = ["replay", "--trace", str(tmp_path / "t.parquet"), "--strategy", "moe-infinity", "--hardware", "rtx3090",
            "--cache-slots", "8", "--json"]
    assert main(argv + ["-p", f"library={lib}", "-p", "capacity=2"]) == 0
    out = capsys.readouterr().out
    assert f'"library": "{lib}"' in out
    assert main(argv + ["-p", f"library={tmp_path / 'none.npy'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.npy" in err and "no such file" in err


def _spec(trace_file, library) -> dict:
    return {
        "name": "library", "hardware": "rtx3090", "traces": [{"name": "t", "file": str(trace_file)}],
        "caches": [8], "evictions": ["lru"],
        "strategies": {"moe-infinity": [{"capacity": 2}, {"capacity": 2, "library": [library]}]},
    }


SPEC_FILE = """\
name = "library"
hardware = "rtx3090"
caches = [8]
evictions = ["lru"]
[[traces]]
name = "t"
file = "t.parquet"
[[strategies.moe-infinity]]
capacity = 2
[[strategies.moe-infinity]]
capacity = 2
library = ["eam.npy"]
"""


def test_sweeps_rows_hashes_and_replay_row(tmp_path):
    trace = _trace()
    trace.write(tmp_path / "t.parquet")
    _library(tmp_path / "eam.npy", _one_hot([(1, 5, 3), (2, 6, 1)]))
    # in a spec file, a path relative to the spec's folder, as trace files are
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_FILE)
    table = fastsim.sweep(str(spec), out=tmp_path / "out")
    everything = table.to_pylist()
    rows = [r for r in everything if r["strategy"] == "moe-infinity"]  # the baseline's row aside
    assert [r["error"] for r in rows] == [None, None]
    assert [r["param_library"] for r in rows] == [None, str(tmp_path / "eam.npy")]
    for row in rows:
        extra = {} if row["param_library"] is None else {"library": row["param_library"]}
        direct = fastsim.replay(trace, "moe-infinity", hardware="rtx3090", cache_slots=8, capacity=2, **extra)
        assert row["total_time_s"] == direct.metrics["total_time_s"]
        again = fastsim.replay_row(tmp_path / "out" / "results.parquet", everything.index(row), trace=trace)
        assert again.reproduces and again.config_hash_matches
    assert rows[0]["total_time_s"] != rows[1]["total_time_s"]


def test_a_missing_library_in_a_spec_names_the_key(tmp_path):
    _trace().write(tmp_path / "t.parquet")
    with pytest.raises(SpecError, match=r"strategies\.moe-infinity.*library.*no such file"):
        fastsim.sweep(_spec(tmp_path / "t.parquet", str(tmp_path / "gone.npy")), out=tmp_path / "out")


def test_the_hash_follows_the_files_content(tmp_path):
    """A row without a library hashes as before the parameter existed; with one, by the file's
    content, so an edited file is a new configuration and resuming does not reuse its rows."""
    def config(**params):
        return make_config("t", model_profile(MODEL), hardware_profile("rtx3090"), 1, "moe-infinity",
                           params, CacheRequest("slots", 8), "lru")

    assert "library" not in config().identity()["params"]
    lib = _library(tmp_path / "eam.npy", _one_hot([(1, 5, 3)]))
    first = row_hash(config(library=lib), "fp", 0, None)
    assert first != row_hash(config(), "fp", 0, None)
    assert row_hash(config(library=lib), "fp", 0, None) == first
    _library(tmp_path / "eam.npy", _one_hot([(1, 5, 4)]))
    assert row_hash(config(library=lib), "fp", 0, None) != first
