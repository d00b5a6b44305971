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
    the whole prompt. ``row_prompt`` marks trace rows that are prompt tokens.
    """
    num_seq = sequence_lengths.shape[0]
    offsets = np.zeros(num_seq + 1, np.int64)
    for i in range(num_seq):
        offsets[i + 1] = offsets[i] + sequence_lengths[i]
    total = offsets[num_seq]
    row_prompt = np.zeros(total, np.uint8)
    for q in range(num_seq):
        for t in range(offsets[q], offsets[q] + prompt_tokens[q]):
            row_prompt[t] = 1
    step_ptr = np.zeros(total + 1, np.int64)
    step_tokens = np.empty(total, np.int64)
    decode_tokens = np.zeros(total, np.int64)
    prefill_step = np.full(num_seq, -1, np.int64)
    slot_seq = np.full(batch_size, -1, np.int64)
    slot_pos = np.zeros(batch_size, np.int64)
    next_seq = 0
    steps = 0
    filled = 0
    while True:
        occupied = 0
        for b in range(batch_size):
            if slot_seq[b] < 0:
                while next_seq < num_seq and sequence_lengths[next_seq] == 0:
                    next_seq += 1
                if next_seq < num_seq:
                    slot_seq[b] = next_seq
                    slot_pos[b] = 0
                    next_seq += 1
            if slot_seq[b] >= 0:
                occupied += 1
        if occupied == 0:
            break
        for b in range(batch_size):
            q = slot_seq[b]
            if q < 0:
                continue
            take = 1
            if slot_pos[b] == 0 and prompt_tokens[q] > 0:
                take = prompt_tokens[q]
                prefill_step[q] = steps
            else:
                decode_tokens[steps] += 1
            for i in range(take):
                step_tokens[filled] = offsets[q] + slot_pos[b] + i
                filled += 1
            slot_pos[b] += take
            if slot_pos[b] == sequence_lengths[q]:
                slot_seq[b] = -1
        steps += 1
        step_ptr[steps] = filled
    return step_ptr[: steps + 1].copy(), step_tokens, prefill_step, decode_tokens[:steps].copy(), row_prompt


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
