"""Importing real engine logs: a per-layer forward-pass logger and an engine's route-trace CSV
(small lookalikes written here), restarts, merged files, compression and skipped records."""
from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.cli.main import main
from fastsim.errors import TraceError
from fastsim.profiles import model_profile
from fastsim.trace import read_trace
from fastsim.trace.importers import import_trace

# ------------------------------------------------------------------ a forward-pass logger
# Such hooks log forward passes: a flattened batch of tokens with no request identity (a
# constant request id), the token index restarting at 0 in every pass; one file per logged
# layer, each opening with a metadata record. Passes: a warm-up pass, a prefill pass of two
# prompts (3 + 4 tokens), then three decode passes of the two requests.
PASSES = [4, 7, 2, 2, 2]
LOGGED = (0, 8, 12)


def write_logger(tmp_path, seed=0, *, passes=PASSES, logged=LOGGED, phase=False):
    """Write one JSON Lines file per logged layer; return the paths and the ids written,
    ``ids[pass][token, i]`` for the ``i``-th logged layer."""
    rng = np.random.default_rng(seed)
    ids = [np.stack([[rng.permutation(8)[:2] for _ in logged] for _ in range(n)]) for n in passes]
    paths = []
    for i, layer in enumerate(logged):
        path = tmp_path / f"moe_layer{layer}.jsonl"
        lines = [json.dumps({"type": "metadata", "layer_idx": layer, "num_experts": 8, "top_k": 2,
                             "logger": "moe-routing-logger 0.3"})]
        for p, n in enumerate(passes):
            for t in range(n):
                rec = {"type": "routing", "request_id": 0, "token_idx": t, "layer": layer,
                       "topk_ids": ids[p][t, i].tolist(), "topk_weights": [0.75, 0.25]}
                if phase:
                    rec["phase"] = "prefill" if p <= 1 else "decode"
                lines.append(json.dumps(rec))
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths, ids


def test_logger_files_stop_at_the_restart_by_default(tmp_path):
    paths, _ = write_logger(tmp_path)
    # Pass 1's token 0 is line 1 (metadata) + 4 (warm-up) + 1 of the layer-0 file.
    with pytest.raises(TraceError, match=r"moe_layer0\.jsonl line 6: layer 0 of token 0 of request 0 "
                       r"was already given on line 2 \(if the log's token index restarts"):
        import_trace(paths, model="mixtral-8x7b", layers=LOGGED)


def test_logger_files_import_as_recorded_passes(tmp_path):
    paths, ids = write_logger(tmp_path)
    trace = import_trace(paths, model="mixtral-8x7b", layers=LOGGED, on_restart="new-step")
    assert trace.sequence_lengths.tolist() == PASSES
    np.testing.assert_array_equal(trace.experts, np.concatenate(ids))
    assert trace.model == "mixtral-8x7b[0,8,12]"
    assert trace.metadata["batching"] == "recorded"
    assert trace.metadata["model_layers"] == "0,8,12"
    assert json.loads(trace.metadata["skipped_records"]) == {"of type 'metadata'": 3}
    assert json.loads(trace.metadata["import_files"]) == [p.name for p in paths]
    assert trace.source.endswith("; 3 non-routing records skipped (3 of type 'metadata')")
    assert trace.prompt_tokens is None
    np.testing.assert_array_equal(trace.scores[..., 0], 0.75)
    # The derived profile resolves, so the trace replays with no model given.
    profile = model_profile(trace.model)
    assert (profile.num_layers, profile.num_experts, profile.top_k) == (3, 8, 2)
    result = fastsim.replay(trace, cache_slots=8)  # the 7-token prefill pass needs its 7 experts at once
    assert result.metrics["tokens"] == sum(PASSES)


def test_logger_files_as_new_sequences(tmp_path):
    paths, ids = write_logger(tmp_path)
    trace = import_trace(paths, model="mixtral-8x7b", layers=LOGGED, on_restart="new-sequence")
    assert trace.sequence_lengths.tolist() == PASSES
    np.testing.assert_array_equal(trace.experts, np.concatenate(ids))
    assert "batching" not in trace.metadata
    assert json.loads(trace.metadata["request_ids"]) == [0] * len(PASSES)


def test_logger_phase_gives_prompt_marks(tmp_path):
    paths, _ = write_logger(tmp_path, phase=True)
    trace = import_trace(paths, model="mixtral-8x7b", layers=LOGGED, on_restart="new-step")
    assert trace.prompt_tokens.tolist() == [4, 7, 0, 0, 0]


def test_logger_cli(tmp_path, capsys):
    paths, ids = write_logger(tmp_path)
    out = tmp_path / "passes.parquet"
    code = main(["trace", "import", *map(str, paths), "--model", "mixtral-8x7b", "--layers", "0,8,12",
                 "--on-restart", "new-step", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "5 sequences, 17 tokens, 3 layers" in printed and "model mixtral-8x7b[0,8,12]" in printed
    assert "recorded forward passes" in printed and "3 non-routing records skipped" in printed
    back = read_trace(out)
    np.testing.assert_array_equal(back.experts, np.concatenate(ids))
    assert back.metadata["batching"] == "recorded" and back.model == "mixtral-8x7b[0,8,12]"
    assert main(["trace", "import", *map(str, paths), "--model", "mixtral-8x7b", "--layers", "0,8,12",
                 "--out", str(tmp_path / "no.parquet")]) == 2
    err = capsys.readouterr().err
    assert "moe_layer0.jsonl line 6" in err and "\n" not in err.strip()
    assert not (tmp_path / "no.parquet").exists()


@given(
    st.lists(st.integers(1, 4), min_size=1, max_size=5),
    st.integers(1, 3),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_restarts_split_passes_like_a_loop(tmp_path_factory, passes, num_layers, token_major, seed):
    """One file, every layer: token-major or layer-major passes; new-step recovers them."""
    rng = np.random.default_rng(seed)
    tmp = tmp_path_factory.mktemp("restart")
    ids = [rng.integers(0, 6, size=(n, num_layers, 1)) for n in passes]
    lines = []
    for p, n in enumerate(passes):
        cells = [(t, l) for t in range(n) for l in range(num_layers)]
        if not token_major:
            cells.sort(key=lambda c: (c[1], c[0]))
        for t, l in cells:
            lines.append(json.dumps({"req_id": "r", "token_pos": t, "layer": l, "experts": [int(ids[p][t, l, 0])]}))
    (tmp / "log.jsonl").write_text("\n".join(lines) + "\n")
    trace = import_trace(tmp / "log.jsonl", num_experts=6, on_restart="new-step")
    assert trace.sequence_lengths.tolist() == passes
    np.testing.assert_array_equal(trace.experts, np.concatenate(ids))


def test_restarts_need_a_token_field(tmp_path):
    (tmp_path / "l.jsonl").write_text('{"layer": 0, "experts": [1]}\n')
    with pytest.raises(TraceError, match="needs a token field"):
        import_trace(tmp_path / "l.jsonl", on_restart="new-sequence")
    with pytest.raises(TraceError, match="unknown on_restart 'again'"):
        import_trace(tmp_path / "l.jsonl", on_restart="again")


# ------------------------------------------------------------------ an engine's route-trace CSV
# One row per routed expert, a '#' header with the model's shape and per-layer expert sizes,
# a prefill/decode phase column, the engine run at top-6 of a top-8 model (48 layers, 128 experts).
def write_route_trace(path, seed=0, *, prompts=(3, 2), lengths=(5, 4)):
    rng = np.random.default_rng(seed)
    ids = [np.stack([[rng.permutation(128)[:6] for _ in range(48)] for _ in range(n)]) for n in lengths]
    weights = [np.round(rng.random((n, 48, 6)), 3).astype(np.float32) for n in lengths]
    out = ["# route trace v2", "# model=qwen3-30b-a3b", "# n_layer=48", "# n_expert=128",
           "# n_expert_used=6", "# expert_bytes=" + ",".join(["4718592"] * 48),
           "request,token,layer,slot,expert,weight,phase,t_us"]
    for r, n in enumerate(lengths):
        for t in range(n):
            phase = "prefill" if t < prompts[r] else "decode"
            for layer in range(48):
                for slot in rng.permutation(6):  # rows of one decision in any slot order
                    out.append(f"{r},{t},{layer},{slot},{ids[r][t, layer, slot]},"
                               f"{weights[r][t, layer, slot]},{phase},{100 * t + layer}")
    path.write_text("\n".join(out) + "\n")
    return ids, weights


def test_route_trace_csv_imports_with_the_long_layout(tmp_path):
    ids, weights = write_route_trace(tmp_path / "route.csv")
    trace = import_trace(tmp_path / "route.csv", model="qwen3-30b-a3b", top_k=6, layout="long")
    np.testing.assert_array_equal(trace.experts, np.concatenate(ids))
    np.testing.assert_array_equal(trace.scores, np.concatenate(weights))
    assert trace.sequence_lengths.tolist() == [5, 4]
    assert trace.prompt_tokens.tolist() == [3, 2]
    assert trace.model == "qwen3-30b-a3b[k=6]" and trace.metadata["model_top_k"] == "8"
    assert trace.metadata["n_expert_used"] == "6" and trace.metadata["n_layer"] == "48"
    assert trace.metadata["log.model"] == "qwen3-30b-a3b"  # a header key the format owns
    assert trace.metadata["expert_bytes"].count(",") == 47
    assert "top-k=6 (model top-8)" in trace.source and "layout=long" in trace.source
    profile = model_profile(trace.model)
    assert profile.top_k == 6 and profile.num_layers == 48
    assert fastsim.replay(trace, cache_slots=48 * 12).metrics["tokens"] == 9


def test_route_trace_cli_and_its_errors(tmp_path, capsys):
    write_route_trace(tmp_path / "route.csv")
    out = tmp_path / "route.parquet"
    assert main(["trace", "import", str(tmp_path / "route.csv"), "--model", "qwen3-30b-a3b",
                 "--top-k", "6", "--layout", "long", "-o", str(out)]) == 0
    assert "5 prompt tokens" in capsys.readouterr().out
    back = read_trace(out)
    assert back.prompt_tokens.tolist() == [3, 2] and back.model == "qwen3-30b-a3b[k=6]"
    # Without the long layout the file has no experts list column (line 7 is the header).
    assert main(["trace", "import", str(tmp_path / "route.csv"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "route.csv line 7: no experts column" in err and "long layout" in err
    # At the model's own top-8 the rows hold fewer experts than that: fine, padded with -1.
    padded = import_trace(tmp_path / "route.csv", model="qwen3-30b-a3b", layout="long")
    assert padded.top_k == 8 and (padded.experts[..., 6:] == -1).all()
    with pytest.raises(TraceError, match=r"top_k=9 exceeds model 'qwen3-30b-a3b', which has top_k=8"):
        import_trace(tmp_path / "route.csv", model="qwen3-30b-a3b", top_k=9, layout="long")


# ------------------------------------------------------------------ compression
def _plain_jsonl(tmp_path):
    rows = [{"request_id": r, "token_idx": t, "layer": l, "experts": [(r + t + l) % 5, 5]}
            for r in range(2) for t in range(3) for l in range(2)]
    text = "".join(json.dumps(x) + "\n" for x in rows)
    (tmp_path / "log.jsonl").write_text(text)
    return text


@pytest.mark.parametrize("suffix, pack", [
    (".gz", gzip.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_compressed_text_logs(tmp_path, suffix, pack):
    text = _plain_jsonl(tmp_path)
    plain = import_trace(tmp_path / "log.jsonl")
    (tmp_path / f"log.jsonl{suffix}").write_bytes(pack(text.encode()))
    packed = import_trace(tmp_path / f"log.jsonl{suffix}")
    np.testing.assert_array_equal(packed.experts, plain.experts)
    assert packed.fingerprint() == plain.fingerprint()
    csv_text = "request_id,token_idx,layer,experts\n0,0,0,1 2\n0,1,0,3 4\n"
    (tmp_path / f"log.csv{suffix}").write_bytes(pack(csv_text.encode()))
    assert import_trace(tmp_path / f"log.csv{suffix}").experts.tolist() == [[[1, 2]], [[3, 4]]]
    # Detected by content: a compressed file without the ending still opens.
    (tmp_path / "noext.jsonl").write_bytes(pack(text.encode()))
    assert import_trace(tmp_path / "noext.jsonl").fingerprint() == plain.fingerprint()


def test_damaged_compressed_log(tmp_path):
    text = _plain_jsonl(tmp_path)
    data = gzip.compress(text.encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match=r"cut\.jsonl\.gz: damaged or truncated compressed file"):
        import_trace(tmp_path / "cut.jsonl.gz")
    z = zstandard.ZstdCompressor().compress(text.encode())
    (tmp_path / "bad.jsonl.zst").write_bytes(z[:8] + b"\x00" * 16)
    with pytest.raises(TraceError, match=r"bad\.jsonl\.zst: damaged"):
        import_trace(tmp_path / "bad.jsonl.zst")


# ------------------------------------------------------------------ merged files, skipped records
def test_files_merge_by_request_and_token(tmp_path):
    a = [{"request_id": r, "token_idx": t, "layer": 0, "experts": [r + t]} for r in range(2) for t in range(2)]
    b = [{"request_id": r, "token_idx": t, "layer": 1, "experts": [r + t + 3]} for r in (1, 0) for t in (1, 0)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in a))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(x) + "\n" for x in b))
    trace = import_trace([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert trace.experts[:, :, 0].tolist() == [[0, 3], [1, 4], [1, 4], [2, 5]]
    assert trace.source == "import jsonl a.jsonl b.jsonl"
    # A layer both files give is a contradiction naming both files.
    (tmp_path / "c.jsonl").write_text(json.dumps({**a[3], "experts": [4]}) + "\n")
    with pytest.raises(TraceError, match=r"c\.jsonl line 1: layer 0 of token 1 of request 1 was "
                       r"already given on .*a\.jsonl line 4"):
        import_trace([tmp_path / "a.jsonl", tmp_path / "c.jsonl"])
    (tmp_path / "d.csv").write_text("request_id,layer,experts\n0,2,1\n")
    with pytest.raises(TraceError, match=r"d\.csv: has no token field, but another file"):
        import_trace([tmp_path / "a.jsonl", tmp_path / "d.csv"])
    np.save(tmp_path / "e.npy", np.zeros((1, 1, 1), np.int16))
    with pytest.raises(TraceError, match="several files merge only as text logs"):
        import_trace([tmp_path / "a.jsonl", tmp_path / "e.npy"])


def test_non_routing_records_are_skipped_and_counted(tmp_path):
    lines = [
        {"type": "header", "version": 2},
        {"type": "route", "req_id": 0, "token_pos": 0, "layer": 0, "experts": [1]},
        {"type": "stats", "layer": 0, "experts": [9]},   # another type, even with routing fields
        {"type": "route", "req_id": 0, "token_pos": 1, "layer": 0},  # no experts field
        {"type": "route", "req_id": 0, "token_pos": 1, "layer": 0, "experts": [2]},
    ]
    path = tmp_path / "typed.jsonl"
    path.write_text("# written by a test\n" + "".join(json.dumps(x) + "\n" for x in lines))
    trace = import_trace(path)
    assert trace.experts.tolist() == [[[1]], [[2]]]
    assert json.loads(trace.metadata["skipped_records"]) == {
        "of type 'header'": 1, "of type 'stats'": 1, "without a layer or experts field": 1,
    }
    # Naming the routing type: records of other types are skipped from the start.
    only_stats = import_trace(path, record_type="stats")
    assert only_stats.experts.tolist() == [[[9]]]
    with pytest.raises(TraceError, match=r"typed\.jsonl: holds no routing records; 5 non-routing records skipped"):
        import_trace(path, record_type="nothing")


def test_csv_type_column_and_comments(tmp_path):
    path = tmp_path / "typed.csv"
    path.write_text("# n_expert_used=1\n#plain comment\nkind,request_id,token_idx,layer,experts\n"
                    "route,0,0,0,1\nmarker,0,0,,\nroute,0,1,0,2\nroute,0,2,,\n")
    trace = import_trace(path, fields={"type": "kind"})
    assert trace.experts.tolist() == [[[1]], [[2]]]
    assert trace.metadata["n_expert_used"] == "1"
    assert json.loads(trace.metadata["skipped_records"]) == {
        "of type 'marker'": 1, "without a layer or experts field": 1,
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("# a=1\nrequest_id,token_idx,layer,experts\n0,0,0,1\n0,1,x,2\n")
    with pytest.raises(TraceError, match=r"bad\.csv line 4: layer 'x' is not an integer"):
        import_trace(bad)
    assert os.path.exists(bad)
