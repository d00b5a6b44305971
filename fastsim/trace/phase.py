"""Prompt marks from a per-token phase (SPEC section 7, "Prefill").

A recorder may mark each token ``prefill`` or ``decode`` instead of writing prompt lengths. The
phase is named (``"prefill"``/``"decode"``, any case) or numbered in the order the phases run:
``0`` = prefill, ``1`` = decode. A sequence's prompt is its leading prefill tokens, so prefill
tokens must come before every decode token of their sequence.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TraceError
from .model import validated_prompt_tokens

__all__ = ["PHASE_NAMES", "phase_is_prefill", "prompt_marks", "prompts_from_phase"]

#: Accepted phase names and numbers, and whether each one is prefill.
PHASE_NAMES = {"prefill": True, "decode": False, "0": True, "1": False}
EXPECTED = "prefill or decode (or 0 = prefill, 1 = decode)"


def phase_is_prefill(value) -> bool | None:
    """``True`` for a prefill mark, ``False`` for decode, ``None`` for anything else."""
    if isinstance(value, bool):  # a bool is no phase number: True would read as decode
        return None
    if isinstance(value, (int, np.integer)):
        return {0: True, 1: False}.get(int(value))
    if isinstance(value, float) and value in (0.0, 1.0):
        return value == 0.0
    if isinstance(value, str):
        return PHASE_NAMES.get(value.strip().lower())
    return None


def prompts_from_phase(is_prefill: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Prompt length per sequence from a per-token prefill mask.

    ``is_prefill`` has one entry per token, sequences one after another as ``lengths`` says.
    Returns ``(prompts, bad)``: ``bad`` is the first token (row of the trace) that is a prefill
    token after a decode token of its own sequence, or ``-1`` when the marks are valid.
    """
    is_prefill = np.asarray(is_prefill, dtype=bool)
    starts = np.zeros(lengths.shape[0], dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    seq_start = np.zeros(is_prefill.shape[0], dtype=bool)
    seq_start[starts[lengths > 0]] = True
    # A prefill token whose predecessor in the same sequence is a decode token breaks the prefix.
    after_decode = np.zeros_like(is_prefill)
    after_decode[1:] = is_prefill[1:] & ~is_prefill[:-1] & ~seq_start[1:]
    bad = np.flatnonzero(after_decode)
    if bad.size:
        return np.zeros(lengths.shape[0], dtype=np.int64), int(bad[0])
    seq_of_token = np.repeat(np.arange(lengths.shape[0]), lengths)
    prompts = np.bincount(seq_of_token[is_prefill], minlength=lengths.shape[0]).astype(np.int64)
    return prompts, -1


def prompt_marks(raw_meta, table, name, lengths, num_layers, where) -> np.ndarray | None:
    """Prompt lengths from the ``prompt_tokens`` metadata entry and/or a ``phase`` column."""
    from_meta = from_phase = None
    if "prompt_tokens" in raw_meta:
        text = raw_meta["prompt_tokens"]
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        ):
            raise TraceError(
                f"{name}: metadata prompt_tokens is {text[:60]!r}; expected a JSON list of "
                "integers, one prompt length per sequence"
            )
        try:
            from_meta = validated_prompt_tokens(np.asarray(values, dtype=np.int64), lengths)
        except (TraceError, OverflowError) as exc:
            raise TraceError(f"{name}: metadata {exc}") from None
    if "phase" in table.column_names:
        is_prefill = _phase_column(table.column("phase"), name, where)
        per_token = is_prefill[::num_layers]
        # Every layer row of a token must carry the token's phase.
        split = np.flatnonzero(np.repeat(per_token, num_layers) != is_prefill)
        if split.size:
            row = int(split[0])
            raise TraceError(
                f"{name}: column 'phase' in {where(row)} differs from layer 0 of the same token; "
                "expected one phase per token"
            )
        from_phase, bad = prompts_from_phase(per_token, lengths)
        if bad >= 0:
            raise TraceError(
                f"{name}: column 'phase' marks {where(bad * num_layers)} prefill after a decode "
                "token of the same sequence; expected each sequence's prefill tokens to come first"
            )
    if from_meta is not None and from_phase is not None and not np.array_equal(from_meta, from_phase):
        i = int(np.flatnonzero(from_meta != from_phase)[0])
        raise TraceError(
            f"{name}: metadata prompt_tokens gives sequence {i} a prompt of {int(from_meta[i])} "
            f"tokens but column 'phase' marks {int(from_phase[i])}; expected them to agree"
        )
    return from_meta if from_meta is not None else from_phase


def _phase_column(col: pa.ChunkedArray, name: str, where) -> np.ndarray:
    """Per-row prefill mask of a ``phase`` column: names or 0/1 numbers (see ``phase.py``)."""
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise TraceError(f"{name}: column 'phase' is null in {where(row)}; expected {EXPECTED}")
    typ = col.type
    if pa.types.is_dictionary(typ):
        col = col.cast(typ.value_type)
        typ = col.type
    if pa.types.is_integer(typ):
        values = np.asarray(col.to_numpy())
        bad = np.flatnonzero((values != 0) & (values != 1))
        if bad.size:
            row = int(bad[0])
            raise TraceError(
                f"{name}: column 'phase' is {int(values[row])} in {where(row)}; expected {EXPECTED}"
            )
        return values == 0
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        is_prefill = pc.is_in(text, value_set=pa.array(["prefill", "0"])).to_numpy()
        is_decode = pc.is_in(text, value_set=pa.array(["decode", "1"])).to_numpy()
        bad = np.flatnonzero(~(is_prefill | is_decode))
        if bad.size:
            row = int(bad[0])
            value = col.take([row])[0].as_py()
            raise TraceError(f"{name}: column 'phase' is {value!r} in {where(row)}; expected {EXPECTED}")
        return np.asarray(is_prefill, dtype=bool)
    raise TraceError(f"{name}: column 'phase' has type {typ}; expected strings or integers ({EXPECTED})")

