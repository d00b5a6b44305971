"""Parquet trace files: round trips, foreign writers, every malformed-input error, and the CLI."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsim.cli.main import main
from fastsim.errors import TraceError
from fastsim.trace import Trace, read_trace, write_trace

RESERVED = {"fastsim.format_version", "num_experts", "num_layers", "top_k", "num_sequences", "model", "source"}


# ------------------------------------------------------------------------------------ helpers
def random_trace(seed, num_experts, top_k, num_layers, lengths, *, gaps=0.0, scores=False,
                 model=None, metadata=None) -> Trace:
    """A valid trace: distinct ids per row, a fraction ``gaps`` of entries lost (-1)."""
    rng = np.random.default_rng(seed)
    tokens = int(sum(lengths))
    rows = tokens * num_layers
    # The first top_k of a random permutation per row: distinct by construction.
    ids = np.empty((rows, top_k), dtype=np.int64)
    for r in range(rows):
        ids[r] = rng.choice(num_experts, size=top_k, replace=False)
    ids[rng.random(ids.shape) < gaps] = -1
    experts = ids.reshape(tokens, num_layers, top_k)
    sc = rng.random(experts.shape).astype(np.float32) if scores else None
    return Trace.from_arrays(experts, num_experts, sequence_lengths=lengths, scores=sc,
                             model=model, source="test", metadata=metadata)


def assert_same(a: Trace, b: Trace) -> None:
    assert a.experts.shape == b.experts.shape
    assert a.experts.dtype == b.experts.dtype
    np.testing.assert_array_equal(a.experts, b.experts)
    np.testing.assert_array_equal(a.sequence_lengths, b.sequence_lengths)
    assert a.num_experts == b.num_experts
    if a.scores is None:
        assert b.scores is None
    else:
        np.testing.assert_array_equal(a.scores, b.scores)
    assert a.model == b.model
    assert a.source == b.source
    assert a.metadata == b.metadata


def write_rows(path, rows, meta, *, width=None, expert_type=None, drop=(), row_group_size=None,
               **overrides):
    """Write ``rows`` = [(sequence, token, layer, [ids...]), ...] with plain pyarrow.

    ``width`` makes ``experts`` a fixed_size_list of that width; otherwise a variable list.
    ``overrides`` replace whole columns (an Arrow array or a Python list).
    """
    expert_type = expert_type or pa.int16()
    list_type = pa.list_(expert_type, width) if width else pa.list_(expert_type)
    cols = {
        "sequence": pa.array([r[0] for r in rows], pa.int32()),
        "token": pa.array([r[1] for r in rows], pa.int32()),
        "layer": pa.array([r[2] for r in rows], pa.int16()),
        "experts": pa.array([r[3] for r in rows], list_type),
    }
    for key, value in overrides.items():
        cols[key] = value
    for key in drop:
        del cols[key]
    table = pa.table(cols).replace_schema_metadata({k: str(v) for k, v in meta.items()})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def good_rows(layers=2, top_k=2):
    """Two sequences (2 and 1 tokens), ids distinct per row."""
    rows = []
    for s, n in ((0, 2), (1, 1)):
        for t in range(n):
            for l in range(layers):
                rows.append((s, t, l, [(s + t + l + j) % 5 for j in range(top_k)]))
    return rows


META = {"fastsim.format_version": "1", "num_experts": 5, "num_layers": 2, "top_k": 2}


def expect_error(path, *words):
    with pytest.raises(TraceError) as info:
        read_trace(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)
    return message


# ------------------------------------------------------------------------------------ round trips
_meta_text = st.text(st.characters(codec="utf-8"), max_size=8)


@st.composite
def traces(draw):
    num_experts = draw(st.one_of(st.integers(1, 300), st.just(40000)))
    top_k = draw(st.integers(1, min(8, num_experts)))
    num_layers = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(0, 6), min_size=1, max_size=5))
    keys = draw(st.lists(
        _meta_text.filter(lambda k: k not in RESERVED and not k.startswith(("ARROW:", "pandas"))),
        max_size=3, unique=True))
    metadata = {k: draw(_meta_text) for k in keys}
    return random_trace(
        draw(st.integers(0, 2**32 - 1)), num_experts, top_k, num_layers, lengths,
        gaps=draw(st.sampled_from([0.0, 0.2])), scores=draw(st.booleans()),
        model=draw(st.one_of(st.none(), _meta_text)), metadata=metadata,
    )


@given(trace=traces())
def test_round_trip(trace, tmp_path_factory):
    path = tmp_path_factory.mktemp("rt") / "t.parquet"
    write_trace(trace, path)
    back = read_trace(path)
    assert_same(trace, back)
    assert back.experts.flags.c_contiguous and back.experts.flags.writeable
    assert back.fingerprint() == trace.fingerprint()


def test_round_trip_wide_ids_use_int32(tmp_path):
    trace = random_trace(1, 40000, 3, 2, [3, 0, 2], gaps=0.1)
    assert trace.experts.dtype == np.int32
    trace.experts[0, 0, 0] = 39999
    trace.write(tmp_path / "w.parquet")
    assert pq.read_schema(tmp_path / "w.parquet").field("experts").type == pa.list_(pa.int32(), 3)
    assert_same(trace, read_trace(tmp_path / "w.parquet"))


def test_zero_tokens_round_trip(tmp_path):
    trace = Trace.from_arrays(np.zeros((0, 3, 2), np.int16), 7, sequence_lengths=[0, 0], model="m")
    write_trace(trace, tmp_path / "e.parquet")
    back = read_trace(tmp_path / "e.parquet")
    assert_same(trace, back)
    assert (back.num_tokens, back.num_layers, back.top_k, back.num_sequences) == (0, 3, 2, 2)


def test_readable_with_plain_pyarrow(tmp_path):
    lengths = [2, 0, 3]
    trace = random_trace(3, 9, 2, 3, lengths, gaps=0.2, scores=True, model="mx", metadata={"k": "v"})
    write_trace(trace, tmp_path / "p.parquet")
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.schema.field("sequence").type == pa.int32()
    assert table.schema.field("token").type == pa.int32()
    assert table.schema.field("layer").type == pa.int16()
    assert table.schema.field("experts").type == pa.list_(pa.int16(), 2)
    assert table.schema.field("scores").type == pa.list_(pa.float32(), 2)
    expected = []
    token = 0
    for s, n in enumerate(lengths):
        for t in range(n):
            for l in range(3):
                expected.append((s, t, l, trace.experts[token, l].tolist(), trace.scores[token, l].tolist()))
            token += 1
    got = list(zip(*(table.column(c).to_pylist() for c in ("sequence", "token", "layer", "experts", "scores"))))
    assert got == [tuple(r) for r in expected]
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["fastsim.format_version"] == "1"
    assert (meta["num_experts"], meta["num_layers"], meta["top_k"], meta["num_sequences"]) == ("9", "3", "2", "3")
    assert (meta["model"], meta["source"], meta["k"]) == ("mx", "test", "v")


def test_foreign_list_column_and_wide_ints(tmp_path):
    """A file with int64 id columns, a variable list<int64> and many row groups reads equal."""
    rows = good_rows(layers=2, top_k=2)
    path = write_rows(
        tmp_path / "f.parquet", rows, META, expert_type=pa.int64(), row_group_size=2,
        sequence=pa.array([r[0] for r in rows], pa.int64()),
        token=pa.array([r[1] for r in rows], pa.uint16()),
        layer=pa.array([r[2] for r in rows], pa.int64()),
    )
    assert pq.ParquetFile(path).num_row_groups == 3
    back = read_trace(path)
    expected = np.array([r[3] for r in rows]).reshape(3, 2, 2)
    np.testing.assert_array_equal(back.experts, expected)
    assert back.experts.dtype == np.int16
    np.testing.assert_array_equal(back.sequence_lengths, [2, 1])
    assert back.model is None and back.metadata == {}


def test_missing_sequences_are_empty(tmp_path):
    rows = [(1, 0, 0, [0]), (3, 0, 0, [1])]
    meta = {"num_experts": 2, "num_layers": 1, "top_k": 1, "num_sequences": 5}
    back = read_trace(write_rows(tmp_path / "g.parquet", rows, meta, width=1))
    np.testing.assert_array_equal(back.sequence_lengths, [0, 1, 0, 1, 0])


def test_write_is_atomic_and_rejects_reserved_metadata(tmp_path):
    trace = random_trace(0, 4, 1, 1, [2], metadata={"num_layers": "9"})
    with pytest.raises(TraceError, match="reserved"):
        write_trace(trace, tmp_path / "r.parquet")
    assert os.listdir(tmp_path) == []
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        write_trace(random_trace(0, 4, 1, 1, [2]), tmp_path / "d")
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == []


# ------------------------------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_trace(tmp_path / "nope.parquet")


def test_not_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_text("sequence,token,layer,experts\n0,0,0,1\n")
    expect_error(path, "not a readable Parquet file")


def test_truncated(tmp_path):
    good = write_rows(tmp_path / "good.parquet", good_rows(), META, width=2)
    data = good.read_bytes()
    for cut in (1, len(data) // 2):
        path = tmp_path / f"cut{cut}.parquet"
        path.write_bytes(data[:-cut])
        expect_error(path, "not a readable Parquet file")


def test_empty_files(tmp_path):
    zero = tmp_path / "zero.parquet"
    zero.write_bytes(b"")
    expect_error(zero, "empty")
    no_rows = tmp_path / "norows.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int32())}), no_rows)
    expect_error(no_rows, "empty trace file")


@pytest.mark.parametrize("column", ["sequence", "token", "layer", "experts"])
def test_missing_column(tmp_path, column):
    path = write_rows(tmp_path / "m.parquet", good_rows(), META, width=2, drop=[column])
    expect_error(path, f"missing column {column!r}")


@pytest.mark.parametrize(
    "column, array, words",
    [
        ("sequence", pa.array(["0"] * 6), ["'sequence'", "string", "integer"]),
        ("token", pa.array([0.0, 0, 1, 1, 0, 0]), ["'token'", "double", "integer"]),
        ("layer", pa.array([0.0, 1, 0, 1, 0, 1], pa.float32()), ["'layer'", "float", "integer"]),
        ("experts", pa.array([[0.0, 1.0]] * 6, pa.list_(pa.float64(), 2)), ["'experts'", "double", "integers"]),
        ("experts", pa.array(["ab"] * 6), ["'experts'", "string", "list"]),
        ("token", pa.array([0, 1, None, 1, 0, 0], pa.int32()), ["'token'", "null", "row 2"]),
    ],
)
def test_wrong_column_types(tmp_path, column, array, words):
    path = write_rows(tmp_path / "w.parquet", good_rows(), META, width=2, **{column: array})
    expect_error(path, *words)


@pytest.mark.parametrize("key", ["num_experts", "num_layers", "top_k"])
def test_missing_metadata(tmp_path, key):
    meta = {k: v for k, v in META.items() if k != key}
    path = write_rows(tmp_path / "m.parquet", good_rows(), meta, width=2)
    expect_error(path, f"lacks {key!r}", "integer")


@pytest.mark.parametrize("key, value", [("num_experts", "five"), ("num_layers", "2.0"), ("top_k", ""),
                                        ("num_sequences", "x"), ("top_k", "0")])
def test_bad_metadata_values(tmp_path, key, value):
    path = write_rows(tmp_path / "m.parquet", good_rows(), {**META, key: value}, width=2)
    expect_error(path, key, "expected an integer")


def test_unknown_format_version(tmp_path):
    path = write_rows(tmp_path / "v.parquet", good_rows(), {**META, "fastsim.format_version": "2"}, width=2)
    expect_error(path, "format_version", "'2'")


def test_top_k_contradicts_width(tmp_path):
    path = write_rows(tmp_path / "k.parquet", good_rows(), {**META, "top_k": 3}, width=2)
    expect_error(path, "top_k is 3", "lists of 2")


def test_variable_list_with_wrong_length(tmp_path):
    rows = good_rows()
    rows[3] = (rows[3][0], rows[3][1], rows[3][2], [4])
    path = write_rows(tmp_path / "l.parquet", rows, META)
    expect_error(path, "holds 1 values", "sequence 0, token 1, layer 1", "top_k = 2")


def test_num_layers_contradicts_layers(tmp_path):
    rows = [(0, 0, l, [l]) for l in range(3)]
    meta = {"num_experts": 5, "num_layers": 2, "top_k": 1}
    path = write_rows(tmp_path / "n.parquet", rows, meta, width=1)
    expect_error(path, "layer 2", "sequence 0, token 0, layer 2", "num_layers is 2")


def test_num_sequences_too_small(tmp_path):
    path = write_rows(tmp_path / "s.parquet", good_rows(), {**META, "num_sequences": 1}, width=2)
    expect_error(path, "num_sequences is 1", "sequence id 1")


@pytest.mark.parametrize("bad", [5, -2, 300])
def test_id_out_of_range(tmp_path, bad):
    rows = good_rows()
    rows[5] = (1, 0, 1, [0, bad])
    path = write_rows(tmp_path / "o.parquet", rows, META, width=2)
    expect_error(path, f"expert id {bad}", "sequence 1, token 0, layer 1", "out of range", "0..4")


def test_minus_one_is_allowed(tmp_path):
    rows = good_rows()
    rows[2] = (0, 1, 0, [-1, -1])
    back = read_trace(write_rows(tmp_path / "g.parquet", rows, META, width=2))
    assert back.experts[1, 0].tolist() == [-1, -1]


def test_repeated_id(tmp_path):
    rows = good_rows()
    rows[4] = (1, 0, 0, [3, 3])
    path = write_rows(tmp_path / "r.parquet", rows, META, width=2)
    expect_error(path, "expert id 3 repeated", "sequence 1, token 0, layer 0")


def test_null_id(tmp_path):
    rows = good_rows()
    rows[1] = (0, 0, 1, [None, 2])
    path = write_rows(tmp_path / "n.parquet", rows, META, width=2)
    expect_error(path, "null", "sequence 0, token 0, layer 1")


def test_token_missing_a_layer(tmp_path):
    rows = [r for r in good_rows() if not (r[0] == 0 and r[1] == 1 and r[2] == 1)]
    path = write_rows(tmp_path / "g.parquet", rows, META, width=2)
    expect_error(path, "sequence 0, token 1 has no row for layer 1")
    rows = [r for r in good_rows() if not (r[0] == 1 and r[2] == 0)]
    path = write_rows(tmp_path / "h.parquet", rows, META, width=2)
    expect_error(path, "sequence 1, token 0 has no row for layer 0")


def test_rows_out_of_order(tmp_path):
    rows = good_rows()
    rows[2], rows[4] = rows[4], rows[2]  # (1, 0, 0) before (0, 1, 0)
    path = write_rows(tmp_path / "o.parquet", rows, META, width=2)
    expect_error(path, "out of order", "sequence 0, token 1, layer 1")
    rows = good_rows()
    rows[0], rows[1] = rows[1], rows[0]
    path = write_rows(tmp_path / "p.parquet", rows, META, width=2)
    expect_error(path, "out of order", "row (sequence 0, token 0, layer 0) comes after")


def test_duplicate_row(tmp_path):
    rows = good_rows()
    rows.insert(2, rows[1])
    path = write_rows(tmp_path / "d.parquet", rows, META, width=2)
    expect_error(path, "sequence 0, token 0, layer 1) appears twice")


def test_token_numbering_gap(tmp_path):
    rows = [(s, 2 if t == 1 else t, l, e) for s, t, l, e in good_rows()]
    path = write_rows(tmp_path / "t.parquet", rows, META, width=2)
    expect_error(path, "sequence 0 has token 2 where token 1 was expected")
    rows = [(s, t + 1 if s == 1 else t, l, e) for s, t, l, e in good_rows()]
    path = write_rows(tmp_path / "u.parquet", rows, META, width=2)
    expect_error(path, "sequence 1 has token 1 where token 0 was expected")


def test_negative_sequence(tmp_path):
    rows = [(-1, 0, 0, [0, 1]), (-1, 0, 1, [0, 1])]
    path = write_rows(tmp_path / "n.parquet", rows, META, width=2)
    expect_error(path, "negative sequence id", "sequence -1, token 0, layer 0")


def test_folder_is_not_a_trace(tmp_path):
    expect_error(tmp_path, "folder")


# ------------------------------------------------------------------------------------ CLI
def test_cli_gen_then_info(tmp_path, capsys):
    out = tmp_path / "g.parquet"
    code = main(["trace", "gen", "--layers", "3", "--experts", "16", "--top-k", "2", "--tokens", "50",
                 "--sequences", "4", "--seed", "7", "--zipf", "0.5", "--reuse", "0.3", "--out", str(out)])
    assert code == 0
    capsys.readouterr()
    trace = read_trace(out)
    assert (trace.num_tokens, trace.num_layers, trace.top_k, trace.num_experts) == (50, 3, 2, 16)
    np.testing.assert_array_equal(trace.sequence_lengths, [13, 13, 12, 12])
    source = json.loads(trace.source)
    assert (source["generator"], source["seed"], source["zipf_s"], source["reuse"]) == ("fastsim.generate", 7, 0.5, 0.3)

    assert main(["trace", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["sequences"], info["tokens"], info["layers"], info["top_k"], info["experts"]) == (4, 50, 3, 2, 16)
    assert info["file_bytes"] == os.path.getsize(out)
    assert info["memory_bytes"] == 50 * 3 * 2 * 2 + 4 * 8  # int16 ids + int64 lengths
    assert info["fingerprint"] == trace.fingerprint()
    assert info["model"] is None and info["source"] == trace.source

    assert main(["trace", "info", str(out)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert (lines["tokens"], lines["sequences"], lines["layers"], lines["top_k"], lines["experts"]) == (
        "50", "4", "3", "2", "16")
    assert lines["fingerprint"] == trace.fingerprint()


def test_cli_gen_with_profile(tmp_path, capsys):
    from fastsim.profiles import model_profile

    out = tmp_path / "q.parquet"
    assert main(["trace", "gen", "--model", "qwen2-57b-a14b", "--tokens", "20", "--out", str(out)]) == 0
    prof = model_profile("qwen2-57b-a14b")
    trace = read_trace(out)
    assert trace.model == "qwen2-57b-a14b"
    assert trace.experts.shape == (20, prof.num_layers, prof.top_k)
    assert trace.num_experts == prof.num_experts


@pytest.mark.parametrize(
    "args",
    [
        ["trace", "gen", "--layers", "2", "--experts", "4", "--top-k", "1", "--tokens", "5", "--reuse", "2"],
        ["trace", "gen", "--layers", "2", "--experts", "4", "--top-k", "5", "--tokens", "5"],
        ["trace", "gen", "--layers", "2", "--tokens", "5"],
        ["trace", "gen", "--model", "no-such-model", "--tokens", "5"],
        ["trace", "gen", "--layers", "2", "--experts", "4", "--top-k", "1", "--tokens", "-1"],
    ],
)
def test_cli_gen_bad_input(tmp_path, capsys, args):
    out = tmp_path / "bad.parquet"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastsim: error: ") and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_cli_gen_unwritable_output(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    args = ["trace", "gen", "--layers", "1", "--experts", "4", "--top-k", "1", "--tokens", "5"]
    assert main([*args, "--out", str(tmp_path / "d")]) == 2
    assert main([*args, "--out", str(tmp_path / "missing" / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count("fastsim: error: ") == 2
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == []


@pytest.mark.parametrize("content", [b"", b"not parquet at all\n"])
def test_cli_info_bad_input(tmp_path, capsys, content):
    path = tmp_path / "x.parquet"
    path.write_bytes(content)
    assert main(["trace", "info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("fastsim: error: ") and captured.err.count("\n") == 1
    assert str(path) in captured.err
    assert main(["trace", "info", str(tmp_path / "none.parquet")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_foreign_scores_column(tmp_path):
    rows = good_rows()
    scores = [[0.75, 0.25]] * len(rows)
    path = write_rows(tmp_path / "s.parquet", rows, META, width=2, scores=pa.array(scores, pa.list_(pa.float64())))
    back = read_trace(path)
    assert back.scores.dtype == np.float32 and back.scores.shape == (3, 2, 2)
    np.testing.assert_array_equal(back.scores[..., 0], 0.75)
    wide = write_rows(tmp_path / "w.parquet", rows, META, width=2, scores=pa.array([[0.1] * 3] * len(rows), pa.list_(pa.float32(), 3)))
    expect_error(wide, "'scores'", "lists of 3", "top_k is 2")
    text = write_rows(tmp_path / "t.parquet", rows, META, width=2, scores=pa.array([["a", "b"]] * len(rows)))
    expect_error(text, "'scores'", "string", "numbers")
