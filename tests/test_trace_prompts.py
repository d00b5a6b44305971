"""Prompt marks (SPEC section 7, "Prefill"): ``Trace.prompt_tokens``, its file forms and reports."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsim.cli.main import main
from fastsim.errors import TraceError
from fastsim.trace import Trace, read_trace
from fastsim.trace.phase import phase_is_prefill, prompts_from_phase
from fastsim.trace.stats import trace_stats


def small(prompts=None, lengths=(3, 2)) -> Trace:
    tokens = sum(lengths)
    experts = (np.arange(tokens * 2).reshape(tokens, 2, 1) % 4).astype(np.int16)
    return Trace.from_arrays(experts, 4, list(lengths), prompt_tokens=prompts, source="test")


def phase_file(tmp_path, phases, *, keep_prompt_meta=False, name="p.parquet"):
    """``small([2, 0])`` written, its prompt metadata dropped, a ``phase`` column added."""
    src = tmp_path / "src.parquet"
    small([2, 0]).write(src)
    table = pq.read_table(src)
    meta = dict(table.schema.metadata)
    if not keep_prompt_meta:
        del meta[b"prompt_tokens"]
    table = table.replace_schema_metadata(meta).append_column("phase", phases)
    path = tmp_path / name
    pq.write_table(table, path)
    return path


# ------------------------------------------------------------------------------ in memory
def test_prompt_tokens_kept_as_int64():
    t = small([2, 0])
    assert t.prompt_tokens.dtype == np.int64 and t.prompt_tokens.tolist() == [2, 0]
    assert t.num_prompt_tokens == 2
    assert small().prompt_tokens is None and small().num_prompt_tokens == 0
    assert small([3, 2]).prompt_tokens.tolist() == [3, 2]  # a prompt may be the whole sequence


@pytest.mark.parametrize(
    "prompts, message",
    [
        ([4, 0], r"prompt_tokens of sequence 0 is 4; expected 0\.\.3"),
        ([0, 3], r"prompt_tokens of sequence 1 is 3; expected 0\.\.2"),
        ([-1, 0], r"sequence 0 is -1"),
        ([1], r"one prompt length per sequence \(2\), got shape \(1,\)"),
        ([[1, 0]], r"one prompt length per sequence"),
        ([1.0, 0.0], r"must hold integers, got dtype float64"),
        (["1", "0"], r"must hold integers"),
    ],
)
def test_bad_prompt_tokens_name_the_sequence(prompts, message):
    with pytest.raises(TraceError, match=message):
        small(prompts)


def test_fingerprint_unchanged_without_prompts_and_changed_with_them():
    t = small()
    # The fingerprint as it was defined before prompt marks existed.
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray([4, 5, 2, 1], dtype=np.int64).tobytes())
    h.update(np.asarray([3, 2], dtype=np.int64).tobytes())
    h.update(t.experts.astype(np.int32).tobytes())
    assert t.fingerprint() == h.hexdigest()
    marked = {small(p).fingerprint() for p in ([0, 0], [2, 0], [0, 2], [3, 2])}
    assert len(marked) == 4 and t.fingerprint() not in marked


# ------------------------------------------------------------------------------ Parquet
@given(st.lists(st.integers(0, 5), min_size=0, max_size=6), st.data())
def test_round_trip_keeps_prompts(tmp_path_factory, lengths, data):
    prompts = [data.draw(st.integers(0, n)) for n in lengths]
    tokens = sum(lengths)
    experts = np.full((tokens, 2, 1), -1, dtype=np.int16)
    t = Trace.from_arrays(experts, 3, lengths, prompt_tokens=prompts)
    path = tmp_path_factory.mktemp("rt") / "t.parquet"
    t.write(path)
    back = read_trace(path)
    assert back.prompt_tokens.tolist() == prompts and back.metadata == {}
    assert back.fingerprint() == t.fingerprint()
    assert json.loads(pq.read_schema(path).metadata[b"prompt_tokens"]) == prompts


def test_no_prompts_no_metadata_entry(tmp_path):
    small().write(tmp_path / "t.parquet")
    assert b"prompt_tokens" not in pq.read_schema(tmp_path / "t.parquet").metadata
    assert read_trace(tmp_path / "t.parquet").prompt_tokens is None


def test_prompt_tokens_is_a_reserved_metadata_key(tmp_path):
    t = Trace.from_arrays(np.zeros((1, 1, 1), np.int16), 2, metadata={"prompt_tokens": "[1]"})
    with pytest.raises(TraceError, match="reserved"):
        t.write(tmp_path / "t.parquet")


@pytest.mark.parametrize(
    "phases",
    [
        pa.array(["prefill"] * 4 + ["decode"] * 6),
        pa.array(["Prefill"] * 4 + [" DECODE "] * 6),
        pa.array([0] * 4 + [1] * 6, pa.int8()),
        pa.array(["0"] * 4 + ["1"] * 6),
        pa.array(["prefill"] * 4 + ["decode"] * 6).dictionary_encode(),
    ],
    ids=["names", "any-case", "numbers", "number-strings", "dictionary"],
)
def test_phase_column_gives_prompts(tmp_path, phases):
    # small([2, 0]): sequence 0 = tokens 0..2 (rows 0..5), sequence 1 = tokens 0..1 (rows 6..9).
    assert read_trace(phase_file(tmp_path, phases)).prompt_tokens.tolist() == [2, 0]


def test_phase_column_agreeing_with_metadata_is_accepted(tmp_path):
    path = phase_file(tmp_path, pa.array([0] * 4 + [1] * 6), keep_prompt_meta=True)
    assert read_trace(path).prompt_tokens.tolist() == [2, 0]


@pytest.mark.parametrize(
    "phases, message",
    [
        ([0, 0, 1, 1, 0, 0, 1, 1, 1, 1], r"marks row \(sequence 0, token 2, layer 0\) prefill after a decode"),
        ([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], r"marks row \(sequence 1, token 1, layer 0\) prefill after a decode"),
        ([0, 1, 0, 0, 1, 1, 1, 1, 1, 1], r"row \(sequence 0, token 0, layer 1\) differs from layer 0"),
        ([0, 0, 0, 0, 2, 2, 1, 1, 1, 1], r"'phase' is 2 in row \(sequence 0, token 2, layer 0\)"),
        (["prefill"] * 9 + ["prompt"], r"'phase' is 'prompt' in row \(sequence 1, token 1, layer 1\)"),
        ([0, 0, 0, 0, 1, 1, None, 1, 1, 1], r"'phase' is null in row \(sequence 1, token 0, layer 0\)"),
        ([0.0] * 10, r"'phase' has type double; expected strings or integers"),
    ],
)
def test_bad_phase_column_names_the_row(tmp_path, phases, message):
    with pytest.raises(TraceError, match=message):
        read_trace(phase_file(tmp_path, pa.array(phases)))


def test_phase_column_contradicting_metadata(tmp_path):
    path = phase_file(tmp_path, pa.array([0] * 6 + [1] * 4), keep_prompt_meta=True)
    with pytest.raises(TraceError, match="gives sequence 0 a prompt of 2 tokens but column 'phase' marks 3"):
        read_trace(path)


@pytest.mark.parametrize(
    "value, message",
    [
        ("2, 0", "expected a JSON list of integers"),
        ("[2.0, 0]", "expected a JSON list of integers"),
        ("[true, 0]", "expected a JSON list of integers"),
        ("[2]", "metadata prompt_tokens must hold one prompt length per sequence"),
        ("[2, 3]", r"metadata prompt_tokens of sequence 1 is 3; expected 0\.\.2"),
    ],
)
def test_bad_prompt_metadata(tmp_path, value, message):
    src = tmp_path / "src.parquet"
    small([2, 0]).write(src)
    table = pq.read_table(src)
    meta = {**table.schema.metadata, b"prompt_tokens": value.encode()}
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "bad.parquet")
    with pytest.raises(TraceError, match=message) as err:
        read_trace(tmp_path / "bad.parquet")
    assert "bad.parquet" in str(err.value)


# ------------------------------------------------------------------------------ helpers
@given(st.lists(st.integers(0, 6), max_size=6), st.data())
def test_prompts_from_phase_matches_a_loop(lengths, data):
    mask = [data.draw(st.booleans()) for _ in range(sum(lengths))]
    prompts, bad = prompts_from_phase(np.array(mask, dtype=bool), np.array(lengths, dtype=np.int64))
    expect_bad, expect, row = -1, [], 0
    for n in lengths:
        seq = mask[row : row + n]
        p = 0
        while p < n and seq[p]:
            p += 1
        if expect_bad < 0 and any(seq[p:]):
            expect_bad = row + p + seq[p:].index(True)
        expect.append(p)
        row += n
    assert bad == expect_bad
    if bad < 0:
        assert prompts.tolist() == expect


@pytest.mark.parametrize(
    "value, expected",
    [("prefill", True), ("DECODE", False), (0, True), (1, False), ("0", True), (1.0, False),
     (True, None), (2, None), ("prompt", None), (None, None)],
)
def test_phase_values(value, expected):
    assert phase_is_prefill(value) is expected


# ------------------------------------------------------------------------------ reports
def test_info_and_stats_mention_prompts(tmp_path, capsys):
    small([2, 0]).write(tmp_path / "p.parquet")
    small().write(tmp_path / "n.parquet")
    assert main(["trace", "info", str(tmp_path / "p.parquet"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["prompt_tokens"] == 2 and d["prompt_sequences"] == 1
    assert main(["trace", "info", str(tmp_path / "n.parquet"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["prompt_tokens"] is None and d["prompt_sequences"] is None
    stats = trace_stats(small([2, 0]))["prompt_lengths"]
    assert stats["tokens"] == 2 and stats["count"] == 2 and stats["max"] == 2 and stats["min"] == 0
    assert trace_stats(small())["prompt_lengths"] is None
    assert main(["trace", "stats", str(tmp_path / "p.parquet")]) == 0
    assert "prompt lengths: count 2" in capsys.readouterr().out
    assert main(["trace", "stats", str(tmp_path / "n.parquet")]) == 0
    assert "prompt lengths: none marked" in capsys.readouterr().out
