"""Routing logs under mutation: every outcome is a trace or one error naming the file and line.

Valid logs of each text format (JSON Lines per decision, JSON Lines with a record per token,
a forward-pass logger with metadata records, a CSV with ``#`` headers in the long layout, the
same gzip-compressed) get characters deleted, values replaced by wrong types, huge or negative
numbers, lines truncated, duplicated, swapped or added. Importing must then succeed or raise one
:class:`TraceError` whose message names the file (and, for a problem inside the text, the line);
never another exception. The CLI turns the same into exit status 2.
"""
from __future__ import annotations

import gzip
import json
import re

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fastsim.cli.main import main
from fastsim.errors import TraceError
from fastsim.trace.importers import import_trace
from hypothesis_budget import examples


def _decisions():
    rows = []
    for r in range(2):
        for t in range(3):
            for layer in range(2):
                rows.append({"request_id": r, "token_idx": t, "layer": layer,
                             "experts": [(r + t + layer) % 4, 4], "weights": [0.6, 0.4]})
    return "".join(json.dumps(x) + "\n" for x in rows)


def _per_token():
    rows = [{"request_id": r, "token_idx": t, "experts": [[(r + t) % 4, 5], [(t + 1) % 4, 6]]}
            for r in range(2) for t in range(3)]
    return "".join(json.dumps(x) + "\n" for x in rows)


def _logger():
    lines = [json.dumps({"type": "metadata", "layer_idx": 0, "num_experts": 8, "top_k": 2})]
    for p, n in enumerate([2, 3, 1]):
        for t in range(n):
            lines.append(json.dumps({"type": "routing", "request_id": 0, "token_idx": t, "layer": 0,
                                     "topk_ids": [(p + t) % 8, (p + t + 3) % 8], "topk_weights": [0.7, 0.3],
                                     "phase": "prefill" if p == 0 else "decode"}))
    return "\n".join(lines) + "\n"


def _long_csv():
    out = ["# route trace", "# n_layer=2", "# n_expert_used=2", "request,token,layer,slot,expert,weight,phase"]
    for r in range(2):
        for t in range(3):
            for layer in range(2):
                for slot in (1, 0):
                    out.append(f"{r},{t},{layer},{slot},{(r + t + layer + slot) % 6},0.5,"
                               f"{'prefill' if t == 0 else 'decode'}")
    return "\n".join(out) + "\n"


# name -> (file name, text, import options)
LOGS = {
    "decisions": ("log.jsonl", _decisions(), {}),
    "per-token": ("tokens.jsonl", _per_token(), {}),
    "logger": ("moe_layer0.jsonl", _logger(), {"on_restart": "new-step"}),
    "long-csv": ("route.csv", _long_csv(), {"layout": "long"}),
}

WEIRD = st.sampled_from([
    "", "-1", "-7", "9999999999999999999999", "1e308", "nan", "NaN", "Infinity", "1.5", "true", "null",
    '"x"', "[]", "{}", "[[]]", '[1, "a"]', "[1.5, 2]", '{"a": 1}', ",", "\"", "\\", "\x00", "\u00e9",
])


@st.composite
def mutations(draw):
    """A list of edits, each applied to the log's lines in turn."""
    edit = st.one_of(
        st.tuples(st.just("delete-char"), st.integers(0, 10**6), st.integers(0, 10**6)),
        st.tuples(st.just("replace-token"), st.integers(0, 10**6), st.integers(0, 10**6), WEIRD),
        st.tuples(st.just("truncate"), st.integers(0, 10**6), st.integers(0, 10**6)),
        st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
        st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6)),
        st.tuples(st.just("insert"), st.integers(0, 10**6), WEIRD),
        st.tuples(st.just("drop"), st.integers(0, 10**6)),
    )
    return draw(st.lists(edit, min_size=1, max_size=4))


_TOKEN = re.compile(r'-?\d+(?:\.\d+)?(?:e-?\d+)?|"[^"]*"|true|false|null|prefill|decode')


def mutate(text: str, edits) -> str:
    lines = text.splitlines()
    for e in edits:
        if not lines:
            lines = [""]
        i = e[1] % len(lines)
        kind = e[0]
        if kind == "delete-char" and lines[i]:
            j = e[2] % len(lines[i])
            lines[i] = lines[i][:j] + lines[i][j + 1:]
        elif kind == "replace-token":
            spans = [m.span() for m in _TOKEN.finditer(lines[i])]
            if spans:
                a, b = spans[e[2] % len(spans)]
                lines[i] = lines[i][:a] + e[3] + lines[i][b:]
        elif kind == "truncate" and lines[i]:
            lines[i] = lines[i][: e[2] % len(lines[i])]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = e[2] % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            lines.insert(i, e[2])
        elif kind == "drop":
            del lines[i]
    return "\n".join(lines) + "\n"


def _import_outcome(path, options):
    """The trace, or the TraceError's message; any other exception fails the test."""
    try:
        trace = import_trace(path, **options)
    except TraceError as exc:
        message = str(exc)
        assert path.name in message, f"the error does not name the file: {message!r}"
        assert "\n" not in message.strip(), f"not one line: {message!r}"
        return message
    assert trace.num_tokens >= 0
    assert trace.experts.ndim == 3
    ids = trace.experts[trace.experts >= 0]
    assert ids.size == 0 or int(ids.max()) < trace.num_experts
    return trace


@given(name=st.sampled_from(sorted(LOGS)), edits=mutations(), packed=st.booleans())
@examples(1.0)
def test_mutated_logs_import_or_fail_naming_the_file(tmp_path_factory, name, edits, packed):
    file_name, text, options = LOGS[name]
    data = mutate(text, edits).encode("utf-8", "surrogatepass")
    tmp = tmp_path_factory.mktemp("fuzz")
    if packed:
        file_name += ".gz"
        data = gzip.compress(data)
    path = tmp / file_name
    path.write_bytes(data)
    _import_outcome(path, options)


def test_unmutated_logs_import(tmp_path):
    # the fuzzing starts from valid logs: each imports as written
    for file_name, text, options in LOGS.values():
        path = tmp_path / file_name
        path.write_text(text)
        trace = import_trace(path, **options)
        assert trace.num_tokens > 0 and (trace.experts >= 0).any()


def test_a_broken_line_is_named_by_number(tmp_path):
    # one line made invalid in each format: the message names that line
    for name, (file_name, text, options) in LOGS.items():
        lines = text.splitlines()
        bad = len(lines) - 2  # a routing record near the end (1-based line bad + 1)
        # a JSON record cut short; a CSV row whose expert is not a number
        lines[bad] = "0,1,0,0,x,0.5,decode" if name == "long-csv" else lines[bad][:-5]
        path = tmp_path / file_name
        path.write_text("\n".join(lines) + "\n")
        outcome = _import_outcome(path, options)
        assert isinstance(outcome, str), f"{name}: the broken line imported"
        assert f"line {bad + 1}" in outcome, f"{name}: {outcome}"


@given(edits=mutations())
@examples(0.2)
def test_mutated_log_on_the_command_line_exits_0_or_2(tmp_path_factory, edits):
    tmp = tmp_path_factory.mktemp("cli")
    path = tmp / "log.jsonl"
    path.write_text(mutate(LOGS["decisions"][1], edits))
    out = tmp / "out.parquet"
    code = main(["trace", "import", str(path), "-o", str(out)])
    assert code in (0, 2)
    assert out.exists() == (code == 0)
    if code == 0:
        assert np.asarray(import_trace(path).experts).ndim == 3
