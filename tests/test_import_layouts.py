"""Text-log layouts beyond one record per (request, token, layer): the long layout, one record
per token, phase marks, a subset of layers and a lower top-k; each error names the line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fastsim.errors import TraceError
from fastsim.trace.importers import import_trace


def jsonl(tmp_path, rows, name="log.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def csv_file(tmp_path, text, name="log.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ long layout
def test_long_jsonl_groups_rows_by_slot(tmp_path):
    rows = [
        {"req_id": 0, "token_pos": 0, "layer": 0, "rank": 2, "expert": 7, "weight": 0.1},
        {"req_id": 0, "token_pos": 0, "layer": 0, "rank": 1, "expert": 3, "weight": 0.6},
        {"req_id": 0, "token_pos": 0, "layer": 1, "rank": 1, "expert": 4},
        {"req_id": 0, "token_pos": 1, "layer": 0, "rank": 1, "expert": 5, "weight": 0.9},
    ]
    trace = import_trace(jsonl(tmp_path, rows), layout="long", num_experts=8)
    assert trace.experts.tolist() == [[[3, 7], [4, -1]], [[5, -1], [-1, -1]]]
    np.testing.assert_allclose(trace.scores[0, 0], [0.6, 0.1])
    assert np.isnan(trace.scores[0, 1]).all()


def test_long_csv_without_a_slot_column_keeps_file_order(tmp_path):
    path = csv_file(tmp_path, "request_id,token_idx,layer,expert\n0,0,0,5\n0,0,0,2\n0,1,0,1\n0,1,0,\n")
    assert import_trace(path, layout="long").experts.tolist() == [[[5, 2]], [[1, -1]]]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("request_id,token_idx,layer,slot,expert\n0,0,0,0,1\n0,0,0,1,2\n0,0,0,0,3\n",
         r"line 4: slot 0 of this expert row was already given on line 2"),
        ("request_id,token_idx,layer,slot,expert\n0,0,0,0,1\n0,0,0,1,x\n",
         r"line 3: expert id 'x' is not an integer"),
        ("request_id,token_idx,layer,slot,expert\n0,0,0,0,1\n0,0,0,one,2\n",
         r"line 3: slot 'one' is not an integer"),
        ("request_id,token_idx,layer,slot,expert,weight\n0,0,0,0,1,heavy\n",
         r"line 2: weight 'heavy' is not a number"),
        ("request_id,token_idx,layer,slot,expert,phase\n0,0,0,0,1,prefill\n0,0,0,1,2,decode\n",
         r"line 3: phase differs from line 2 of the same request, token and layer"),
        ("request_id,token_idx,layer,slot,expert\n0,0,0,0,1\n0,0,0,1,1\n",
         r"line 2: expert id 1 repeated in one row"),
        ("request_id,token_idx,layer,slot,expert\n0,0,0,0,1\n0,1,0,0,2\n0,0,0,1,3\n",
         r"line 4: layer 0 of token 0 of request 0 was already given on line 2"),
        ("request_id,token_idx,slot,expert\n0,0,0,1\n", r"line 1: no layer column"),
    ],
)
def test_long_layout_errors_name_the_line(tmp_path, text, pattern):
    with pytest.raises(TraceError, match=r"log\.csv " + pattern):
        import_trace(csv_file(tmp_path, text), layout="long")


def test_long_jsonl_errors(tmp_path):
    base = {"req_id": 0, "token_pos": 0, "layer": 0, "slot": 0}
    with pytest.raises(TraceError, match=r"line 2: field 'expert' must be one expert id"):
        import_trace(jsonl(tmp_path, [{**base, "expert": 1}, {**base, "slot": 1, "expert": [2]}]), layout="long")
    with pytest.raises(TraceError, match=r"line 2: slot None is not an integer"):
        import_trace(jsonl(tmp_path, [{**base, "expert": 1}, {"req_id": 0, "token_pos": 0, "layer": 0, "expert": 2}]),
                     layout="long")


# ------------------------------------------------------------------ one record per token
def test_per_token_jsonl_lists_and_mappings(tmp_path):
    rows = [
        {"req_id": 0, "token_pos": 0, "topk_ids": [[1, 2], [3, 4]], "topk_weights": [[0.5, 0.5], [0.9, 0.1]]},
        {"req_id": 0, "token_pos": 1, "topk_ids": [[5], [6, 7]]},
    ]
    trace = import_trace(jsonl(tmp_path, rows))
    assert trace.experts.tolist() == [[[1, 2], [3, 4]], [[5, -1], [6, 7]]]
    np.testing.assert_allclose(trace.scores[0, 1], [0.9, 0.1])
    # A mapping names model layers; with --layers they map to the trace's layers.
    rows = [{"req_id": 0, "token_pos": 0, "experts": {"8": [1], "0": [2]}},
            {"req_id": 0, "token_pos": 1, "experts": {"0": [3]}}]
    trace = import_trace(jsonl(tmp_path, rows), layers=[0, 8])
    assert trace.experts.tolist() == [[[2], [1]], [[3], [-1]]]
    # A list is the listed layers in order.
    rows = [{"req_id": 0, "token_pos": 0, "experts": [[1], [2]]}]
    trace = import_trace(jsonl(tmp_path, rows), layers=[3, 9], model="mixtral-8x7b")
    assert trace.experts.tolist() == [[[1, -1], [2, -1]]] and trace.model == "mixtral-8x7b[3,9]"


@pytest.mark.parametrize(
    "row, kwargs, pattern",
    [
        ({"token_pos": 1, "experts": [[1], [2], [3]]}, {"layers": [0, 4]}, r"line 2: 3 expert lists, but layers lists 2"),
        ({"token_pos": 1, "experts": {"x": [1]}}, {}, r"line 2: layer key 'x' is not an integer"),
        ({"token_pos": 1, "experts": [[1], "2"]}, {}, r"line 2: field 'experts' must be a list of expert ids"),
        ({"token_pos": 1, "experts": [[1], [2]], "scores": [[1.0]]}, {}, r"line 2: scores must be one list per layer"),
        ({"token_pos": 1, "experts": {"5": [1]}}, {"layers": [0, 4]}, r"line 2: layer 5 is not one of the listed layers 0,4"),
    ],
)
def test_per_token_errors(tmp_path, row, kwargs, pattern):
    path = jsonl(tmp_path, [{"token_pos": 0, "experts": [[1], [2]]}, row])
    with pytest.raises(TraceError, match=r"log\.jsonl " + pattern):
        import_trace(path, **kwargs)


def test_per_token_csv_layer_columns(tmp_path):
    path = csv_file(tmp_path, "request_id,token_idx,layer_0,layer_8\n0,0,1 2,3\n0,1,4,\n")
    trace = import_trace(path, layers=[0, 8])
    assert trace.experts.tolist() == [[[1, 2], [3, -1]], [[4, -1], [-1, -1]]]
    with pytest.raises(TraceError, match=r"log\.csv line 2: layer 8 is out of range: layers are 0\.\.1"):
        import_trace(path, num_layers=2)


# ------------------------------------------------------------------ phase marks
def test_phase_by_name_and_number(tmp_path):
    rows = []
    for r, (prompt, n) in enumerate([(2, 4), (0, 2), (3, 3)]):
        for t in range(n):
            for layer in range(2):
                rows.append({"req_id": r, "token_pos": t, "layer": layer, "experts": [t % 3],
                             "phase": ["decode", "prefill", 1, 0][(t < prompt) + 2 * layer]})
    trace = import_trace(jsonl(tmp_path, rows))
    assert trace.prompt_tokens.tolist() == [2, 0, 3]


def test_a_gap_token_takes_its_predecessors_phase(tmp_path):
    rows = [{"token_pos": 0, "layer": 0, "experts": [1], "phase": "prefill"},
            {"token_pos": 2, "layer": 0, "experts": [1], "phase": "prefill"},
            {"token_pos": 3, "layer": 0, "experts": [1], "phase": "decode"},
            {"token_pos": 5, "layer": 0, "experts": [1]}]  # unmarked: follows token 4, a decode gap
    assert import_trace(jsonl(tmp_path, rows)).prompt_tokens.tolist() == [3]


@pytest.mark.parametrize(
    "rows, pattern",
    [
        ([{"token_pos": 0, "layer": 0, "experts": [1], "phase": "decode"},
          {"token_pos": 1, "layer": 0, "experts": [1], "phase": "prefill"}],
         r"line 2: a prefill token after a decode token of the log"),
        ([{"token_pos": 0, "layer": 0, "experts": [1], "phase": "prefill"},
          {"token_pos": 0, "layer": 1, "experts": [1], "phase": "decode"}],
         r"log\.jsonl line 2: phase decode differs from .*log\.jsonl line 1 for the same token"),
        ([{"token_pos": 0, "layer": 0, "experts": [1], "phase": "prompt"}],
         r"line 1: phase 'prompt' is not a phase; expected prefill or decode"),
        ([{"token_pos": 0, "layer": 0, "experts": [1], "phase": 2}], r"line 1: phase 2 is not a phase"),
    ],
)
def test_phase_errors_name_the_line(tmp_path, rows, pattern):
    with pytest.raises(TraceError, match=pattern):
        import_trace(jsonl(tmp_path, rows))


def test_csv_phase_column(tmp_path):
    path = csv_file(tmp_path, "request_id,token_idx,layer,experts,phase\n0,0,0,1,0\n0,1,0,2,1\n1,0,0,3,decode\n")
    assert import_trace(path).prompt_tokens.tolist() == [1, 0]
    bad = csv_file(tmp_path, "request_id,token_idx,layer,experts,phase\n0,0,0,1,warm\n", name="bad.csv")
    with pytest.raises(TraceError, match=r"bad\.csv line 2: phase 'warm' is not a phase"):
        import_trace(bad)


# ------------------------------------------------------------------ layers and top-k
def test_layers_map_model_layers_to_trace_layers(tmp_path):
    rows = [{"token_pos": 0, "layer": 12, "experts": [1, 2]}, {"token_pos": 0, "layer": 0, "experts": [3, 4]}]
    trace = import_trace(jsonl(tmp_path, rows), model="mixtral-8x7b", layers=[0, 8, 12])
    assert trace.experts.tolist() == [[[3, 4], [-1, -1], [1, 2]]]
    assert trace.model == "mixtral-8x7b[0,8,12]" and trace.num_layers == 3
    with pytest.raises(TraceError, match=r"log\.jsonl line 1: layer 12 is not one of the listed layers 0,8"):
        import_trace(jsonl(tmp_path, rows), layers=[0, 8])


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"layers": [0, 32], "model": "mixtral-8x7b"}, r"layer 32 is out of range: num_layers=32 of model"),
        ({"layers": [8, 0]}, r"increasing order without repeats; 0 follows 8"),
        ({"layers": [0, 0]}, r"increasing order without repeats; 0 follows 0"),
        ({"layers": []}, r"lists no layer"),
        ({"layers": [-1]}, r"layer -1 is negative"),
        ({"layers": [0, 12], "num_layers": 10}, r"layer 12 is out of range: num_layers=10 as given"),
        ({"top_k": 3, "model": "mixtral-8x7b"}, r"top_k=3 exceeds model 'mixtral-8x7b'"),
        ({"num_layers": 4, "model": "mixtral-8x7b"}, r"num_layers=4 contradicts model"),
    ],
)
def test_layer_and_top_k_option_errors(tmp_path, kwargs, pattern):
    path = jsonl(tmp_path, [{"token_pos": 0, "layer": 0, "experts": [1]}])
    with pytest.raises(TraceError, match=pattern):
        import_trace(path, **kwargs)


def test_lower_top_k_derives_the_model(tmp_path):
    rows = [{"token_pos": 0, "layer": l, "experts": [l % 8]} for l in range(32)]
    trace = import_trace(jsonl(tmp_path, rows), model="mixtral-8x7b", top_k=1)
    assert trace.model == "mixtral-8x7b[k=1]" and trace.top_k == 1
    assert trace.metadata["model_top_k"] == "2"
    with pytest.raises(TraceError, match=r"line 1: 2 experts in one row, more than top_k=1"):
        import_trace(jsonl(tmp_path, [{"layer": 0, "experts": [1, 2]}], name="two.jsonl"),
                     model="mixtral-8x7b", top_k=1)


def test_npz_per_layer_arrays_with_listed_layers(tmp_path):
    arr = np.array([[[1]], [[2]]], np.int16)  # (steps=2, requests=1, K=1)
    np.savez(tmp_path / "s.npz", layer_0=arr, layer_8=arr + 1)
    trace = import_trace(tmp_path / "s.npz", layout="per-layer", layers=[0, 8])
    assert trace.experts.tolist() == [[[1], [2]], [[2], [3]]]
    with pytest.raises(TraceError, match=r"array 'layer_8' is layer 8, not one of the listed layers 0,4"):
        import_trace(tmp_path / "s.npz", layout="per-layer", layers=[0, 4])


def test_layout_option_errors(tmp_path):
    path = jsonl(tmp_path, [{"layer": 0, "experts": [1]}])
    with pytest.raises(TraceError, match="per-layer layout applies to npy and npz"):
        import_trace(path, layout="per-layer")
    np.save(tmp_path / "a.npy", np.zeros((1, 1, 1), np.int16))
    with pytest.raises(TraceError, match="unknown layout 'long' for NumPy imports"):
        import_trace(tmp_path / "a.npy", layout="long")
    with pytest.raises(TraceError, match="on_restart and record_type apply to jsonl and csv"):
        import_trace(tmp_path / "a.npy", on_restart="new-step")
