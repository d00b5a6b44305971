"""Continuous batching with prefill steps (SPEC section 7, ``docs/model.md``, "Prefill").

A slot that takes a sequence with a prompt of ``p >= 1`` tokens runs all ``p`` of them in that
step; the sequence's decode tokens then follow one per step. The step layout is the same CSR
form as :func:`fastsim.timeline.schedule.batch_steps` (trace rows per step, in slot order), so the
demand sets, router-score sums and request releases are built from it unchanged; the phase of
each access and the steps that TTFT and TPOT read come with it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import kernel
from .schedule import sequence_offsets, slot_steps

__all__ = ["Phases", "prefill_steps", "access_phases"]


class Phases(NamedTuple):
    """The prefill bookkeeping of one schedule.

    ``r_prefill`` (uint8 per entry of ``R``): 1 when a prompt token routes to that expert there;
    ``prefill_step`` (int64 per sequence): the step of its prefill, -1 without a prompt;
    ``decode_tokens`` (int64 per step): decode tokens that ran in it.
    """

    r_prefill: np.ndarray
    prefill_step: np.ndarray
    decode_tokens: np.ndarray


@kernel
def prefill_steps(sequence_lengths, prompt_tokens, batch_size):
    """``(step_ptr, step_tokens, prefill_step, decode_tokens, row_prompt)``.

    SPEC section 3's batching, except that a slot's first step of a sequence with a prompt holds
    the whole prompt (:func:`fastsim.timeline.schedule.slot_steps`). ``row_prompt`` marks trace
    rows that are prompt tokens.
    """
    step_ptr, step_tokens, prefill_step, decode_tokens = slot_steps(sequence_lengths, prompt_tokens, batch_size)
    offsets = sequence_offsets(sequence_lengths)
    row_prompt = np.zeros(offsets[-1], np.uint8)
    for q in range(sequence_lengths.shape[0]):
        for t in range(offsets[q], offsets[q] + prompt_tokens[q]):
            row_prompt[t] = 1
    return step_ptr, step_tokens, prefill_step, decode_tokens, row_prompt


@kernel
def access_phases(experts, step_ptr, step_tokens, row_prompt, r_ptr, r_experts, num_experts):
    """Per entry of ``R``: 1 when at least one prompt token of the step routes to its expert."""
    num_steps = step_ptr.shape[0] - 1
    num_layers = experts.shape[1]
    top_k = experts.shape[2]
    out = np.zeros(r_experts.shape[0], np.uint8)
    mark = np.zeros(num_experts, np.uint8)
    for s in range(num_steps):
        for l in range(num_layers):
            for i in range(step_ptr[s], step_ptr[s + 1]):
                t = step_tokens[i]
                if row_prompt[t]:
                    for k in range(top_k):
                        e = experts[t, l, k]
                        if e >= 0:
                            mark[e] = 1
            p = s * num_layers + l
            for j in range(r_ptr[p], r_ptr[p + 1]):
                e = r_experts[j]
                out[j] = mark[e]
                mark[e] = 0
    return out
