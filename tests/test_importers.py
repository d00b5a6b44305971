"""Importers of routing logs: round trips through every format, layouts, field names, errors, CLI."""
from __future__ import annotations

import csv
import json
import os
import pickle
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsim.cli.main import main
from fastsim.errors import TraceError
from fastsim.profiles import model_profile
from fastsim.trace import read_trace
from fastsim.trace.importers import import_trace

E, L, K = 16, 3, 2


# ------------------------------------------------------------------------------ test data
def make_sequences(rng, num_requests=4, num_layers=L, top_k=K, num_experts=E, ends_filled=True):
    """Random per-request ``(len, L, K)`` id arrays with -1 gaps (whole rows and single slots)
    and matching float32 scores (NaN where the id is -1)."""
    seqs, scores = [], []
    for _ in range(num_requests):
        n = int(rng.integers(1, 9))
        ids = np.stack(
            [rng.permutation(num_experts)[:top_k] for _ in range(n * num_layers)]
        ).reshape(n, num_layers, top_k)
        ids = ids.astype(np.int64)
        ids[rng.random((n, num_layers, top_k)) < 0.15] = -1
        ids[rng.random((n, num_layers)) < 0.15] = -1
        if ends_filled:  # so the first and last token of each request hold at least one id
            ids[0, 0, 0] = rng.integers(num_experts)
            ids[-1, -1, 0] = rng.integers(num_experts)
            for t in (0, n - 1):
                for l in range(num_layers):
                    row = ids[t, l]
                    if (row[1:] == row[0]).any():
                        row[1:][row[1:] == row[0]] = -1
        s = rng.random((n, num_layers, top_k)).astype(np.float32)
        s[ids < 0] = np.nan
        seqs.append(ids)
        scores.append(s)
    return seqs, scores


def records(seqs, scores, rng, *, drop_gaps=True, strip_trailing=True):
    """One dict per (request, token, layer) in shuffled order, request ids 0..S-1.

    With ``drop_gaps``, all -1 rows of interior tokens are left out (the importer must refill
    them); the first and last token of a request are always written so its span is known.
    """
    out = []
    for r, (ids, sc) in enumerate(zip(seqs, scores)):
        n = ids.shape[0]
        for t in range(n):
            for l in range(ids.shape[1]):
                row, srow = ids[t, l].tolist(), sc[t, l].tolist()
                if drop_gaps and all(x < 0 for x in row) and 0 < t < n - 1:
                    continue
                if strip_trailing:
                    while row and row[-1] < 0:
                        row.pop()
                        srow.pop()
                srow = [None if np.isnan(x) else x for x in srow]
                out.append({"request": r, "token": t, "layer": l, "experts": row, "scores": srow})
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def write_jsonl(path, recs, names=None):
    names = {"request": "request_id", "token": "token_idx", "layer": "layer", "experts": "experts",
             "scores": "gating_probs", **(names or {})}
    with open(path, "w") as fh:
        for rec in recs:
            fh.write(json.dumps({names[k]: v for k, v in rec.items() if names.get(k)}) + "\n")


def write_csv(path, recs, *, columns=False, top_k=K, sep=" "):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if columns:
            w.writerow(["req_id", "token_pos", "layer_id"] + [f"expert_{k}" for k in range(top_k)]
                       + [f"score_{k}" for k in range(top_k)])
        else:
            w.writerow(["req_id", "token_pos", "layer_id", "topk_ids", "topk_weights"])
        for rec in recs:
            head = [rec["request"], rec["token"], rec["layer"]]
            ex, sc = rec["experts"], rec["scores"]
            if columns:
                ex = [("" if x < 0 else x) for x in ex] + [""] * (top_k - len(ex))
                sc = [("" if x is None else repr(x)) for x in sc] + [""] * (top_k - len(sc))
                w.writerow(head + ex + sc)
            else:
                w.writerow(head + [sep.join(map(str, ex)),
                                   sep.join("nan" if x is None else repr(x) for x in sc)])


def expected(seqs, scores):
    return (np.concatenate(seqs), np.asarray([s.shape[0] for s in seqs]), np.concatenate(scores))


def assert_trace(trace, seqs, scores=None, num_experts=E):
    ids, lengths, sc = expected(seqs, scores if scores is not None else seqs)
    np.testing.assert_array_equal(trace.experts, ids)
    np.testing.assert_array_equal(trace.sequence_lengths, lengths)
    assert trace.num_experts == num_experts
    if scores is not None:
        assert trace.scores is not None
        np.testing.assert_array_equal(trace.scores, sc)


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("seed", range(6))
def test_jsonl_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    seqs, scores = make_sequences(rng)
    path = tmp_path / "routing.jsonl"
    write_jsonl(path, records(seqs, scores, rng))
    trace = import_trace(path, "jsonl", num_experts=E, num_layers=L, top_k=K)
    assert_trace(trace, seqs, scores)
    assert trace.source == "import jsonl routing.jsonl"
    assert json.loads(trace.metadata["request_ids"]) == list(range(len(seqs)))


@given(
    num_requests=st.integers(1, 4),
    num_layers=st.integers(1, 3),
    top_k=st.integers(1, 3),
    extra_experts=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
    fmt=st.sampled_from(["jsonl", "csv-cell", "csv-columns", "npz"]),
)
def test_round_trip_property(num_requests, num_layers, top_k, extra_experts, seed, fmt):
    rng = np.random.default_rng(seed)
    num_experts = top_k + extra_experts
    seqs, scores = make_sequences(rng, num_requests, num_layers, top_k, num_experts)
    recs = records(seqs, scores, rng, drop_gaps=bool(rng.integers(2)), strip_trailing=bool(rng.integers(2)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"log.{fmt.split('-')[0]}")
        if fmt == "jsonl":
            write_jsonl(path, recs)
        elif fmt == "npz":
            np.savez(path, **{f"r{i}": q for i, q in enumerate(seqs)})
        else:
            write_csv(path, recs, columns=fmt == "csv-columns", top_k=top_k)
        trace = import_trace(path, num_experts=num_experts, num_layers=num_layers, top_k=top_k)
    assert_trace(trace, seqs, None if fmt == "npz" else scores, num_experts=num_experts)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("form", ["cell-space", "cell-brackets", "cell-semicolon", "columns"])
def test_csv_round_trip(tmp_path, seed, form):
    rng = np.random.default_rng(100 + seed)
    seqs, scores = make_sequences(rng)
    path = tmp_path / "routing.csv"
    recs = records(seqs, scores, rng)
    if form == "columns":
        write_csv(path, recs, columns=True)
    elif form == "cell-brackets":
        # "[3, 17]" style: write the lists as JSON text in one cell
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["seq_id", "position", "layer", "expert_ids", "scores"])
            for r in recs:
                w.writerow([r["request"], r["token"], r["layer"], json.dumps(r["experts"]),
                            json.dumps([x if x is not None else "nan" for x in r["scores"]]).replace('"', "")])
    else:
        write_csv(path, recs, sep=" " if form == "cell-space" else ";")
    trace = import_trace(path, num_experts=E, num_layers=L, top_k=K)
    assert_trace(trace, seqs, scores)


@pytest.mark.parametrize("seed", range(4))
def test_npz_round_trip_per_request_and_concatenated(tmp_path, seed):
    rng = np.random.default_rng(200 + seed)
    seqs, scores = make_sequences(rng, num_requests=12, ends_filled=False)
    # One array per request, names that sort wrongly as plain strings (req_10 < req_2).
    names = [f"req_{i}" for i in range(len(seqs))]
    shuffled = rng.permutation(len(seqs))
    np.savez(tmp_path / "per.npz", **{names[i]: seqs[i].astype(np.int16) for i in shuffled})
    trace = import_trace(tmp_path / "per.npz", num_experts=E)
    assert_trace(trace, seqs)
    assert json.loads(trace.metadata["request_ids"]) == names
    # One experts array plus sequence_lengths and scores.
    ids, lengths, sc = expected(seqs, scores)
    np.savez(tmp_path / "cat.npz", experts=ids.astype(np.int16), sequence_lengths=lengths, scores=sc)
    assert_trace(import_trace(tmp_path / "cat.npz", num_experts=E), seqs, scores)


def test_npy_round_trip_and_split(tmp_path):
    rng = np.random.default_rng(7)
    seqs, _ = make_sequences(rng, ends_filled=False)
    ids, lengths, _ = expected(seqs, seqs)
    np.save(tmp_path / "r.npy", ids.astype(np.int16))
    one = import_trace(tmp_path / "r.npy", num_experts=E)
    np.testing.assert_array_equal(one.experts, ids)
    assert one.sequence_lengths.tolist() == [ids.shape[0]]
    split = import_trace(tmp_path / "r.npy", sequence_lengths=lengths.tolist(), num_experts=E)
    assert_trace(split, seqs)


def test_inferred_dimensions(tmp_path):
    ids = np.array([[[3, -1]], [[-1, -1]], [[0, 9]]], dtype=np.int16)  # (3, 1, 2), max id 9
    np.save(tmp_path / "r.npy", ids)
    trace = import_trace(tmp_path / "r.npy")
    assert (trace.num_experts, trace.num_layers, trace.top_k) == (10, 1, 2)
    # Text formats: L from the largest layer, K from the widest row (trailing -1 is padding).
    recs = [{"layer": 2, "experts": [5, 1, -1]}, {"layer": 0, "experts": [4]}]
    write_jsonl(tmp_path / "r.jsonl", recs, names={"layer": "layer", "experts": "experts"})
    trace = import_trace(tmp_path / "r.jsonl")
    assert (trace.num_experts, trace.num_layers, trace.top_k) == (6, 3, 2)
    # No request and no token field: one request, tokens in order of appearance per layer.
    assert trace.sequence_lengths.tolist() == [1]
    assert trace.experts.tolist() == [[[4, -1], [-1, -1], [5, 1]]]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "npz", "npy"])
def test_import_write_read_equal(tmp_path, fmt):
    rng = np.random.default_rng(11)
    seqs, scores = make_sequences(rng)
    ids, lengths, sc = expected(seqs, scores)
    src = tmp_path / f"routing.{fmt}"
    if fmt == "jsonl":
        write_jsonl(src, records(seqs, scores, rng))
    elif fmt == "csv":
        write_csv(src, records(seqs, scores, rng))
    elif fmt == "npz":
        np.savez(src, experts=ids, sequence_lengths=lengths, scores=sc)
    else:
        np.save(src, ids)
    trace = import_trace(src, num_experts=E, sequence_lengths=lengths if fmt == "npy" else None)
    trace.write(tmp_path / "out.parquet")
    back = read_trace(tmp_path / "out.parquet")
    np.testing.assert_array_equal(back.experts, ids)
    np.testing.assert_array_equal(back.sequence_lengths, lengths)
    assert back.num_experts == E
    assert back.source == trace.source and fmt in back.source
    if fmt != "npy":
        np.testing.assert_array_equal(back.scores, sc)


# ------------------------------------------------------------------------------ per-layer layout
def per_layer_arrays(seqs, rng, num_layers=L, top_k=K):
    """``(L, steps, requests, K)``: request r occupies steps start_r .. start_r + len_r - 1,
    -1 elsewhere; one extra request never runs."""
    starts = [int(rng.integers(0, 5)) for _ in seqs]
    steps = max(s + q.shape[0] for s, q in zip(starts, seqs)) + int(rng.integers(0, 3))
    arr = np.full((num_layers, steps, len(seqs) + 1, top_k), -1, dtype=np.int16)
    for r, (s, q) in enumerate(zip(starts, seqs)):
        arr[:, s : s + q.shape[0], r, :] = q.transpose(1, 0, 2)
    return arr


@pytest.mark.parametrize("seed", range(4))
def test_per_layer_layout(tmp_path, seed):
    rng = np.random.default_rng(300 + seed)
    seqs, _ = make_sequences(rng)  # ends filled: the span of each request is recoverable
    arr = per_layer_arrays(seqs, rng)
    want = seqs + [np.zeros((0, L, K), dtype=np.int64)]  # the idle request: zero length
    np.save(tmp_path / "r.npy", arr)
    assert_trace(import_trace(tmp_path / "r.npy", layout="per-layer", num_experts=E), want)
    keys = rng.permutation(L)
    np.savez(tmp_path / "r.npz", **{f"layer_{l}": arr[l] for l in keys})
    trace = import_trace(tmp_path / "r.npz", layout="per-layer", num_experts=E)
    assert_trace(trace, want)
    assert "per-layer" in trace.source


def test_per_layer_missing_layer_is_a_gap_and_duplicate_layer_is_an_error(tmp_path):
    rng = np.random.default_rng(5)
    seqs, _ = make_sequences(rng, num_layers=3)
    arr = per_layer_arrays(seqs, rng, num_layers=3)
    arr[1] = -1  # what a missing layer must become
    np.savez(tmp_path / "r.npz", layer_0=arr[0], layer_2=arr[2])
    trace = import_trace(tmp_path / "r.npz", layout="per-layer", num_experts=E, num_layers=3)
    active = (arr >= 0).any(axis=(0, 3))
    for r in range(len(seqs)):
        steps = np.flatnonzero(active[:, r])
        np.testing.assert_array_equal(
            trace.sequence(r), arr[:, steps[0] : steps[-1] + 1, r].transpose(1, 0, 2)
        )
    np.savez(tmp_path / "dup.npz", layer_1=arr[0], layer01=arr[2])
    with pytest.raises(TraceError, match=r"'layer_1'.*'layer01'.*layer 1|'layer01'.*'layer_1'.*layer 1"):
        import_trace(tmp_path / "dup.npz", layout="per-layer")


# ------------------------------------------------------------------------------ field names
@pytest.mark.parametrize(
    "names",
    [
        {"request": "req_id", "token": "token_pos", "layer": "layer_id", "experts": "topk_ids",
         "scores": "topk_weights"},
        {"request": "seq_id", "token": "position", "layer": "layer", "experts": "expert_ids",
         "scores": "scores"},
        {"request": "sequence", "token": "token", "layer": "layer", "experts": "experts",
         "scores": "gating_probs"},
    ],
)
def test_field_aliases(tmp_path, names):
    rng = np.random.default_rng(21)
    seqs, scores = make_sequences(rng)
    write_jsonl(tmp_path / "r.jsonl", records(seqs, scores, rng), names=names)
    assert_trace(import_trace(tmp_path / "r.jsonl", num_experts=E, num_layers=L, top_k=K), seqs, scores)


def test_configured_field_names(tmp_path):
    rng = np.random.default_rng(22)
    seqs, scores = make_sequences(rng)
    names = {"request": "rid", "token": "step", "layer": "moe", "experts": "chosen", "scores": "w"}
    write_jsonl(tmp_path / "r.jsonl", records(seqs, scores, rng), names=names)
    # Without the names no record is a routing record: each is skipped and counted.
    with pytest.raises(TraceError, match=r"r\.jsonl: holds no routing records; \d+ non-routing records "
                       r"skipped \(\d+ without a layer or experts field\); a routing record has a layer field"):
        import_trace(tmp_path / "r.jsonl")
    trace = import_trace(tmp_path / "r.jsonl", fields=names, num_experts=E, num_layers=L, top_k=K)
    assert_trace(trace, seqs, scores)
    # Switching the scores role off drops them.
    off = import_trace(tmp_path / "r.jsonl", fields={**names, "scores": None}, num_experts=E)
    assert off.scores is None


def test_string_request_ids_keep_first_appearance_order(tmp_path):
    recs = [
        {"req_id": "zeta", "token_idx": 0, "layer": 0, "experts": [1]},
        {"req_id": "alpha", "token_idx": 0, "layer": 0, "experts": [2]},
        {"req_id": "zeta", "token_idx": 1, "layer": 0, "experts": [3]},
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    trace = import_trace(tmp_path / "r.jsonl")
    assert json.loads(trace.metadata["request_ids"]) == ["zeta", "alpha"]
    assert trace.experts[:, 0, 0].tolist() == [1, 3, 2]
    # Integer ids sort numerically regardless of order of appearance.
    recs = [{"req_id": 10, "layer": 0, "experts": [1]}, {"req_id": 9, "layer": 0, "experts": [2]}]
    (tmp_path / "n.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert import_trace(tmp_path / "n.jsonl").experts[:, 0, 0].tolist() == [2, 1]


def test_runaway_positions_are_refused(tmp_path):
    recs = [{"token_idx": 0, "layer": 0, "experts": [1]}, {"token_idx": 10**9, "layer": 0, "experts": [2]}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(TraceError, match=r"r\.jsonl: the log \(no request field\) spans token positions 0\.\.1000000000"):
        import_trace(tmp_path / "r.jsonl")


def test_byte_order_mark_is_ignored(tmp_path):
    (tmp_path / "r.csv").write_bytes("\ufeffrequest_id,layer,experts\n0,0,3\n".encode())
    (tmp_path / "r.jsonl").write_bytes('\ufeff{"layer": 0, "experts": [3]}\n'.encode())
    for name in ("r.csv", "r.jsonl"):
        assert import_trace(tmp_path / name).experts.tolist() == [[[3]]]


def test_position_gaps_and_offsets(tmp_path):
    # positions 5 and 8 of one request: rows 5..8, the two missing positions are all -1 rows
    recs = [{"token_idx": 8, "layer": 0, "experts": [2]}, {"token_idx": 5, "layer": 0, "experts": [1]}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    trace = import_trace(tmp_path / "r.jsonl")
    assert trace.experts[:, 0, 0].tolist() == [1, -1, -1, 2]
    assert json.loads(trace.metadata["first_positions"]) == [5]


def test_model_profile_gives_dimensions(tmp_path):
    prof = model_profile("switch-base-128")
    rng = np.random.default_rng(3)
    seqs, scores = make_sequences(rng, num_layers=prof.num_layers, top_k=prof.top_k,
                                  num_experts=prof.num_experts)
    write_jsonl(tmp_path / "r.jsonl", records(seqs, scores, rng))
    trace = import_trace(tmp_path / "r.jsonl", model="switch-base-128")
    assert trace.model == prof.name
    assert (trace.num_experts, trace.num_layers, trace.top_k) == (
        prof.num_experts, prof.num_layers, prof.top_k)
    assert_trace(trace, seqs, scores, num_experts=prof.num_experts)
    with pytest.raises(TraceError, match="contradicts model"):
        import_trace(tmp_path / "r.jsonl", model="switch-base-128", num_experts=prof.num_experts + 1)
    # An array whose layer axis disagrees with the model is refused, naming the file.
    np.save(tmp_path / "r.npy", np.zeros((2, prof.num_layers + 1, prof.top_k), dtype=np.int16))
    with pytest.raises(TraceError, match=r"r\.npy.*layers"):
        import_trace(tmp_path / "r.npy", model="switch-base-128")


# ------------------------------------------------------------------------------ errors
def jsonl(tmp_path, lines):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


GOOD = {"request_id": 0, "token_idx": 0, "layer": 0, "experts": [1, 2]}


def test_duplicate_layer_names_both_lines(tmp_path):
    path = jsonl(tmp_path, [GOOD, {**GOOD, "layer": 1}, {**GOOD, "token_idx": 1}, {**GOOD, "experts": [3, 4]}])
    with pytest.raises(TraceError, match=r"bad\.jsonl line 4: layer 0 of token 0 .* already given on line 1"):
        import_trace(path)


@pytest.mark.parametrize(
    "bad, kwargs, pattern",
    [
        ({**GOOD, "experts": [1, 16]}, {"num_experts": 16}, r"line 3: expert id 16 is out of range"),
        ({**GOOD, "experts": [1, -2]}, {}, r"line 3: expert id -2 is out of range"),
        ({**GOOD, "experts": [1, 2, 3]}, {"top_k": 2}, r"line 3: 3 experts in one row, more than top_k=2"),
        ({**GOOD, "experts": [5, 5]}, {}, r"line 3: expert id 5 repeated"),
        ({**GOOD, "layer": 4}, {"num_layers": 4}, r"line 3: layer 4 is out of range"),
        ({**GOOD, "layer": -1}, {}, r"line 3: layer -1 is negative"),
        ({**GOOD, "layer": "x"}, {}, r"line 3: layer 'x' is not an integer"),
        ({**GOOD, "experts": [1, 2.5]}, {}, r"line 3: expert id 2.5 is not an integer"),
        ({"layer": 0, "experts": [1]}, {}, r"line 3: missing field 'request_id'"),
        ("{not json", {}, r"line 3: not valid JSON"),
        ("[1, 2]", {}, r"line 3: expected a JSON object"),
        ({**GOOD, "experts": "1 2"}, {}, r"line 3: field 'experts' must be a list"),
        ({**GOOD, "gating_probs": [0.5]}, {}, r"line 3: 1 scores for 2 experts"),
        ({**GOOD, "token_idx": -3}, {}, r"line 3: token position -3 is negative"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, bad, kwargs, pattern):
    path = jsonl(tmp_path, [GOOD, {**GOOD, "token_idx": 2}, bad, {**GOOD, "token_idx": 5}])
    with pytest.raises(TraceError, match=r"bad\.jsonl " + pattern):
        import_trace(path, **kwargs)


def test_jsonl_not_text(tmp_path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe\x00\n")
    with pytest.raises(TraceError, match=r"bin\.jsonl line 2: not UTF-8"):
        import_trace(path)


@pytest.mark.parametrize(
    "row, pattern",
    [
        (["0", "1", "0", "3 3"], r"line 4: expert id 3 repeated"),
        (["0", "1", "0", "3 x"], r"line 4: cannot read expert ids"),
        (["0", "1", "zero", "3"], r"line 4: layer 'zero' is not an integer"),
        (["0", "0", "0", "4"], r"line 4: layer 0 of token 0 of request 0 was already given on line 2"),
        (["0", "1", "0"], r"line 4: 3 cells, but the header has 4"),
        (["0", "1", "0", "1 2 3"], r"line 4: 3 experts in one row, more than top_k=2"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, row, pattern):
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["request_id", "token_idx", "layer", "experts"])
        w.writerow(["0", "0", "0", "1 2"])
        w.writerow(["0", "0", "1", "[1, 2]"])
        w.writerow(row)
    with pytest.raises(TraceError, match=r"bad\.csv " + pattern):
        import_trace(path, top_k=2)


def test_csv_without_experts_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("request_id,token_idx,layer,choice\n0,0,0,1\n")
    with pytest.raises(TraceError, match=r"bad\.csv line 1: no experts column"):
        import_trace(path)
    assert import_trace(path, fields={"experts": "choice"}).experts.tolist() == [[[1]]]


class _Tripwire:
    """Unpickling this creates a directory: proof that a loader unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickled_arrays_are_refused_not_unpickled(tmp_path):
    flag = tmp_path / "unpickled"
    obj = np.empty(1, dtype=object)
    obj[0] = _Tripwire(flag)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(TraceError, match=r"obj\.npy.*pickle"):
        import_trace(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", req_0=np.zeros((1, 1, 1), np.int16), req_1=obj)
    with pytest.raises(TraceError, match=r"obj\.npz.*'req_1'.*pickle"):
        import_trace(tmp_path / "obj.npz")
    (tmp_path / "raw.npy").write_bytes(pickle.dumps(_Tripwire(flag)))
    with pytest.raises(TraceError, match=r"raw\.npy"):
        import_trace(tmp_path / "raw.npy")
    assert not flag.exists()


@pytest.mark.parametrize(
    "arr, kwargs, pattern",
    [
        (np.zeros((2, 1, 1), np.float32), {}, r"expected integer expert ids, got dtype float32"),
        (np.zeros((2, 2), np.int16), {}, r"expected shape \(tokens, layers, top_k\)"),
        (np.full((2, 1, 2), 7, np.int16), {"num_experts": 4}, r"expert id 7 at token 0, layer 0, slot 0 is out of range"),
        (np.zeros((2, 1, 3), np.int16), {"top_k": 2}, r"3 experts per row.*top_k=2"),
        (np.array([[[1, 1]]], np.int16), {}, r"repeated"),
    ],
)
def test_npy_errors(tmp_path, arr, kwargs, pattern):
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(TraceError, match=r"bad\.npy.*" + pattern):
        import_trace(tmp_path / "bad.npy", **kwargs)


def test_option_errors(tmp_path):
    np.save(tmp_path / "r.npy", np.zeros((3, 1, 1), np.int16))
    with pytest.raises(TraceError, match="add up to 2 tokens but the array has 3"):
        import_trace(tmp_path / "r.npy", sequence_lengths=[1, 1])
    with pytest.raises(TraceError, match="unknown import format"):
        import_trace(tmp_path / "r.npy", "parquet")
    with pytest.raises(TraceError, match="unknown layout"):
        import_trace(tmp_path / "r.npy", layout="steps")
    with pytest.raises(TraceError, match="num_experts must be a positive integer"):
        import_trace(tmp_path / "r.npy", num_experts=0)
    np.savez(tmp_path / "z.npz", a=np.zeros((1, 1, 1), np.int16))
    with pytest.raises(TraceError, match=r"z\.npz: not a NumPy \.npy file; it is an \.npz file"):
        import_trace(tmp_path / "z.npz", "npy")
    with pytest.raises(TraceError, match=r"r\.npy: not a NumPy \.npz file; it is an \.npy file"):
        import_trace(tmp_path / "r.npy", "npz")
    (tmp_path / "text.npy").write_text('{"layer": 0}\n')
    with pytest.raises(TraceError, match=r"text\.npy: not a NumPy \.npy file$"):
        import_trace(tmp_path / "text.npy")


# ------------------------------------------------------------------------------ command line
def test_cli_happy_path(tmp_path, capsys):
    rng = np.random.default_rng(31)
    seqs, scores = make_sequences(rng)
    names = {"request": "rid", "experts": "topk_ids"}
    write_jsonl(tmp_path / "r.jsonl", records(seqs, scores, rng), names=names)
    out = tmp_path / "t.parquet"
    code = main(["trace", "import", str(tmp_path / "r.jsonl"), "--format", "jsonl", "--out", str(out),
                 "--field", "request=rid", "--field", "experts=topk_ids", "--num-experts", str(E),
                 "--num-layers", str(L), "--top-k", str(K)])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    back = read_trace(out)
    assert_trace(back, seqs, scores)
    assert back.source == "import jsonl r.jsonl"

    ids, lengths, _ = expected(seqs, scores)
    np.save(tmp_path / "r.npy", ids.astype(np.int16))
    code = main(["trace", "import", str(tmp_path / "r.npy"), "-o", str(out), "--num-experts", str(E),
                 "--sequence-lengths", ",".join(map(str, lengths))])
    assert code == 0
    assert_trace(read_trace(out), seqs)


@pytest.mark.parametrize(
    "content, extra, pattern",
    [
        ('{"layer": 0, "experts": [1]}\n{"layer": 0, "experts": [1, 99]}\n', ["--num-experts", "8"],
         "line 2: expert id 99 is out of range"),
        ('{"layer": 0, "experts": [1], "token_idx": 0}\n{"layer": 0, "experts": [2]}\n', [],
         "line 2: missing field 'token_idx'"),
        ('{"layer": 0, "experts": [1]}\n', ["--field", "expert=x"], "field option 'expert=x'"),
        ('{"layer": 0, "experts": [1]}\n', ["--model", "no-such-model"], "no-such-model"),
        ('{"layer": 0, "experts": [1]}\n', ["--sequence-lengths", "1"], "sequence_lengths applies"),
    ],
)
def test_cli_bad_input_exits_2_without_output(tmp_path, capsys, content, extra, pattern):
    src = tmp_path / "log.jsonl"
    src.write_text(content)
    out = tmp_path / "t.parquet"
    assert main(["trace", "import", str(src), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastsim: error:") and "\n" not in err
    assert pattern in err
    assert not out.exists()
    assert os.listdir(tmp_path) == ["log.jsonl"]
