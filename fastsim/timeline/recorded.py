"""Recorded batching (``docs/model.md``, "Recorded batching"): the engine's own forward passes.

A trace imported with ``--on-restart new-step`` holds one sequence per recorded forward pass and
says so in its metadata (``batching = "recorded"``). Replayed with ``batching="recorded"``, step
``s`` runs the ``s``-th non-empty sequence with every one of its tokens active at once, as the
engine batched them, instead of SPEC section 3's continuous batching over ``B`` slots. The step
layout is the CSR form of :func:`fastsim.timeline.schedule.batch_steps`, so the demand sets,
router-score sums, request releases and prefill bookkeeping are built from it unchanged.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel
from ..errors import ConfigError

__all__ = [
    "BATCHINGS", "CONTINUOUS", "RECORDED", "trace_batching", "resolve_batching", "recorded_steps",
    "recorded_prefill_steps",
]

CONTINUOUS = "continuous"
RECORDED = "recorded"
BATCHINGS = (CONTINUOUS, RECORDED)


def trace_batching(trace) -> str:
    """The batching a trace replays with by default: ``"recorded"`` when its metadata says
    ``batching = "recorded"``, else ``"continuous"``."""
    metadata = getattr(trace, "metadata", None) or {}
    return RECORDED if metadata.get("batching") == RECORDED else CONTINUOUS


def resolve_batching(value, trace) -> str:
    """``value`` checked against :data:`BATCHINGS`; ``None`` means the trace's default."""
    if value is None:
        return trace_batching(trace)
    if not isinstance(value, str) or value not in BATCHINGS:
        raise ConfigError(f"batching must be one of {', '.join(repr(b) for b in BATCHINGS)}, got {value!r}")
    return value


@kernel
def recorded_steps(sequence_lengths):
    """``(step_ptr, step_tokens)``: step ``s`` holds every trace row of the ``s``-th non-empty
    sequence, in row order (a pass with no tokens runs no step)."""
    num_seq = sequence_lengths.shape[0]
    steps = 0
    for q in range(num_seq):
        if sequence_lengths[q] > 0:
            steps += 1
    step_ptr = np.zeros(steps + 1, np.int64)
    total = 0
    s = 0
    for q in range(num_seq):
        if sequence_lengths[q] > 0:
            total += sequence_lengths[q]
            s += 1
            step_ptr[s] = total
    # every row runs, in trace order: the rows of sequence q follow those of q - 1
    step_tokens = np.arange(total).astype(np.int64)
    return step_ptr, step_tokens


@kernel
def recorded_prefill_steps(sequence_lengths, prompt_tokens):
    """:func:`recorded_steps` with the prefill bookkeeping of
    :func:`fastsim.timeline.prefill.prefill_steps`.

    Returns ``(step_ptr, step_tokens, prefill_step, decode_tokens, row_prompt)``: a pass whose
    prompt marks ``p >= 1`` tokens is the prefill step of its sequence (``prefill_step``, -1
    otherwise); ``decode_tokens`` counts each step's unmarked tokens; ``row_prompt`` marks the
    prompt rows.
    """
    step_ptr, step_tokens = recorded_steps(sequence_lengths)
    num_seq = sequence_lengths.shape[0]
    prefill_step = np.full(num_seq, -1, np.int64)
    decode_tokens = np.zeros(step_ptr.shape[0] - 1, np.int64)
    row_prompt = np.zeros(step_tokens.shape[0], np.uint8)
    start = 0
    s = 0
    for q in range(num_seq):
        n = sequence_lengths[q]
        if n == 0:
            continue
        if prompt_tokens[q] > 0:
            prefill_step[q] = s
        for t in range(start, start + prompt_tokens[q]):
            row_prompt[t] = 1
        decode_tokens[s] = n - prompt_tokens[q]
        start += n
        s += 1
    return step_ptr, step_tokens, prefill_step, decode_tokens, row_prompt
