"""The demand schedule of one replay: continuous batching and each ``(step, layer)``'s set ``R``.

The schedule depends only on the trace, the batch size and the batching (continuous, or the
trace's recorded passes: :mod:`fastsim.timeline.recorded`), so it is built once and shared by
every replay of a sweep over them (strategies, caches, evictions and hardware all reuse it).

Positions: the ``(step, layer)`` pair ``(s, l)`` has position ``s * L + l``; ``R`` of position ``p``
is ``r_experts[r_ptr[p]:r_ptr[p + 1]]`` (ascending expert ids) with token counts
``r_counts[r_ptr[p]:r_ptr[p + 1]]``. Keys are ``l * E + e``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import kernel

__all__ = [
    "Schedule", "NEVER", "build_schedule", "schedule_from_sets", "batch_steps", "with_next_use", "with_scores",
    "with_requests", "step_layout", "prompt_lengths", "slot_steps", "sequence_offsets",
]

#: Position used for "never demanded again" (farther than any real position).
NEVER = np.iinfo(np.int64).max


class Schedule(NamedTuple):
    """Demand schedule of a trace at one batch size (all arrays C-contiguous).

    Attributes
    ----------
    num_layers, num_experts : int
    active : ndarray (steps,), int32
        Active tokens (occupied batch slots) at each step.
    r_ptr : ndarray (steps * L + 1,), int64
        CSR offsets of ``R`` per position.
    r_experts : ndarray (entries,), int32
        Distinct experts of each position, ascending, ``-1`` entries dropped.
    r_counts : ndarray (entries,), int32
        Active tokens routed to each of those experts (``n_e``).
    r_next : ndarray (entries,), int64
        Position of the next demand of the same key after this entry, or :data:`NEVER`.
        Empty when the schedule was built without next-use data.
    key_first : ndarray (L * E,), int64
        Position of each key's first demand, or :data:`NEVER`; empty without next-use data.
    r_scores : ndarray (entries,), float64
        Per entry, the active tokens' router weights for that expert, summed (float64, slot
        order) and divided by the active tokens; empty unless a policy reads scores.
    rel_ptr, rel_keys, rel_counts : ndarray, int64
        Per step ``s``, ``rel_keys[rel_ptr[s]:rel_ptr[s + 1]]`` are the keys routed by the requests
        whose last token ran at step ``s``, with how many of their tokens routed to each; empty
        unless a policy tracks requests.
    """

    num_layers: int
    num_experts: int
    active: np.ndarray
    r_ptr: np.ndarray
    r_experts: np.ndarray
    r_counts: np.ndarray
    r_next: np.ndarray
    key_first: np.ndarray
    r_scores: np.ndarray
    rel_ptr: np.ndarray
    rel_keys: np.ndarray
    rel_counts: np.ndarray

    @property
    def num_steps(self) -> int:
        return int(self.active.shape[0])

    @property
    def has_next_use(self) -> bool:
        return self.key_first.shape[0] > 0

    def R(self, step: int, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """``(experts, counts)`` demanded at ``(step, layer)``."""
        p = step * self.num_layers + layer
        lo, hi = self.r_ptr[p], self.r_ptr[p + 1]
        return self.r_experts[lo:hi], self.r_counts[lo:hi]

    @property
    def max_working_set(self) -> int:
        """The largest ``|R|`` over the schedule (the seed's minimal cache)."""
        if self.r_ptr.shape[0] <= 1:
            return 0
        return int(np.diff(self.r_ptr).max())

    @property
    def accesses(self) -> int:
        return int(self.r_experts.shape[0])


@kernel
def batch_steps(sequence_lengths, batch_size):
    """Continuous batching (SPEC section 3, Batching): :func:`slot_steps` with no prompts.

    Returns ``(step_ptr, step_tokens)``: the trace rows active at step ``s`` are
    ``step_tokens[step_ptr[s]:step_ptr[s + 1]]``, in slot order.
    """
    no_prompts = np.zeros(sequence_lengths.shape[0], np.int64)
    step_ptr, step_tokens, _, _ = slot_steps(sequence_lengths, no_prompts, batch_size)
    return step_ptr, step_tokens


@kernel
def sequence_offsets(sequence_lengths):
    """``offsets`` (int64, one per sequence and one more): sequence ``q`` is trace rows
    ``offsets[q]:offsets[q + 1]``."""
    num_seq = sequence_lengths.shape[0]
    offsets = np.zeros(num_seq + 1, np.int64)
    for i in range(num_seq):
        offsets[i + 1] = offsets[i] + sequence_lengths[i]
    return offsets


@kernel
def slot_steps(sequence_lengths, prompt_tokens, batch_size):
    """The batching slot loop, with prefill steps (SPEC sections 3 and 7).

    Each free slot takes the next sequence that has tokens; an occupied slot runs one token of
    its sequence per step, except that its first step of a sequence with a prompt of
    ``prompt_tokens[q] >= 1`` tokens runs the whole prompt (all zeros: decode only).

    Returns ``(step_ptr, step_tokens, prefill_step, decode_tokens)``: the trace rows of step
    ``s`` are ``step_tokens[step_ptr[s]:step_ptr[s + 1]]``, in slot order; ``prefill_step``
    (int64 per sequence) the step of its prompt, -1 without one; ``decode_tokens`` (int64 per
    step) the decode tokens that ran in it.
    """
    num_seq = sequence_lengths.shape[0]
    offsets = sequence_offsets(sequence_lengths)
    total = offsets[num_seq]
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
    return step_ptr[: steps + 1].copy(), step_tokens, prefill_step, decode_tokens[:steps].copy()


@kernel
def _demand_sets(experts, step_ptr, step_tokens, num_experts):
    """Build ``active, r_ptr, r_experts, r_counts`` from the batching steps."""
    num_steps = step_ptr.shape[0] - 1
    num_layers = experts.shape[1]
    top_k = experts.shape[2]
    active = np.empty(num_steps, np.int32)
    r_ptr = np.zeros(num_steps * num_layers + 1, np.int64)
    bound = 0
    for s in range(num_steps):
        bound += (step_ptr[s + 1] - step_ptr[s]) * top_k * num_layers
    r_experts = np.empty(bound, np.int32)
    r_counts = np.empty(bound, np.int32)
    count = np.zeros(num_experts, np.int32)
    touched = np.empty(max(1, experts.shape[0] and (step_ptr[1:] - step_ptr[:-1]).max() * top_k), np.int32)
    n = 0
    for s in range(num_steps):
        lo = step_ptr[s]
        hi = step_ptr[s + 1]
        active[s] = hi - lo
        for l in range(num_layers):
            m = 0
            for i in range(lo, hi):
                t = step_tokens[i]
                for k in range(top_k):
                    e = experts[t, l, k]
                    if e >= 0:
                        if count[e] == 0:
                            touched[m] = e
                            m += 1
                        count[e] += 1
            # insertion sort: |R| is at most batch * top_k, usually a handful
            for a in range(1, m):
                v = touched[a]
                b = a - 1
                while b >= 0 and touched[b] > v:
                    touched[b + 1] = touched[b]
                    b -= 1
                touched[b + 1] = v
            for a in range(m):
                e = touched[a]
                r_experts[n] = e
                r_counts[n] = count[e]
                count[e] = 0
                n += 1
            r_ptr[s * num_layers + l + 1] = n
    return active, r_ptr, r_experts[:n].copy(), r_counts[:n].copy()


@kernel
def _next_use(r_ptr, r_experts, num_layers, num_experts):
    """Per entry, the position of the next demand of its key; per key, its first demand."""
    never = np.iinfo(np.int64).max
    last = np.full(num_layers * num_experts, never, np.int64)
    r_next = np.empty(r_experts.shape[0], np.int64)
    positions = r_ptr.shape[0] - 1
    for p in range(positions - 1, -1, -1):
        base = (p % num_layers) * num_experts
        for j in range(r_ptr[p], r_ptr[p + 1]):
            key = base + r_experts[j]
            r_next[j] = last[key]
            last[key] = p
    return r_next, last


def prompt_lengths(trace) -> np.ndarray:
    """The trace's prompt marks as int64 per sequence (SPEC section 7); zeros when it has none."""
    marks = getattr(trace, "prompt_tokens", None)
    if marks is None:
        return np.zeros(trace.sequence_lengths.shape[0], np.int64)
    return np.ascontiguousarray(marks, dtype=np.int64)


def step_layout(trace, batch_size: int, prefill: bool = False, batching: str = "continuous"):
    """``(step_ptr, step_tokens)``: the trace rows of each step, decode only or with prefill
    steps (:mod:`fastsim.timeline.prefill`), or one step per recorded pass (``batching=
    "recorded"``, :mod:`fastsim.timeline.recorded`: the same steps with or without prefill)."""
    if batching == "recorded":
        from .recorded import recorded_steps

        return recorded_steps(trace.sequence_lengths)
    if prefill:
        from .prefill import prefill_steps

        step_ptr, step_tokens, _, _, _ = prefill_steps(trace.sequence_lengths, prompt_lengths(trace), int(batch_size))
        return step_ptr, step_tokens
    return batch_steps(trace.sequence_lengths, int(batch_size))


def build_schedule(trace, batch_size: int, next_use: bool = True, prefill: bool = False,
                   batching: str = "continuous") -> Schedule:
    """The demand schedule of ``trace`` decoded with ``batch_size`` slots.

    ``next_use`` adds the arrays Belady eviction needs (8 bytes per entry and per key);
    ``prefill`` runs each sequence's prompt as one step (SPEC section 7); ``batching="recorded"``
    runs each sequence as one step, every token at once (``batch_size`` unused).
    """
    step_ptr, step_tokens = step_layout(trace, batch_size, prefill, batching)
    active, r_ptr, r_experts, r_counts = _demand_sets(trace.experts, step_ptr, step_tokens, trace.num_experts)
    return _finish(trace.num_layers, trace.num_experts, active, r_ptr, r_experts, r_counts, next_use)


def _finish(num_layers, num_experts, active, r_ptr, r_experts, r_counts, next_use):
    if next_use:
        r_next, key_first = _next_use(r_ptr, r_experts, num_layers, num_experts)
    else:
        r_next = np.empty(0, np.int64)
        key_first = np.empty(0, np.int64)
    return Schedule(
        int(num_layers), int(num_experts), active, r_ptr, r_experts, r_counts, r_next, key_first,
        np.empty(0, np.float64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64),
    )


def with_next_use(sched: Schedule) -> Schedule:
    """``sched`` with the next-use arrays Belady-style policies read."""
    if sched.has_next_use:
        return sched
    r_next, key_first = _next_use(sched.r_ptr, sched.r_experts, sched.num_layers, sched.num_experts)
    return sched._replace(r_next=r_next, key_first=key_first)


@kernel
def _entry_scores(scores, step_ptr, step_tokens, r_ptr, r_experts, experts, num_experts):
    """Per entry of ``R``: the active tokens' weights for that expert, summed in slot order as
    float64, divided by the active tokens."""
    num_steps = step_ptr.shape[0] - 1
    num_layers = experts.shape[1]
    top_k = experts.shape[2]
    out = np.zeros(r_experts.shape[0], np.float64)
    acc = np.zeros(num_experts, np.float64)
    for s in range(num_steps):
        lo = step_ptr[s]
        hi = step_ptr[s + 1]
        for l in range(num_layers):
            for i in range(lo, hi):
                t = step_tokens[i]
                for k in range(top_k):
                    e = experts[t, l, k]
                    if e >= 0:
                        acc[e] += np.float64(scores[t, l, k])
            p = s * num_layers + l
            for j in range(r_ptr[p], r_ptr[p + 1]):
                e = r_experts[j]
                out[j] = acc[e] / (hi - lo)
                acc[e] = 0.0
    return out


@kernel
def _releases(experts, sequence_lengths, step_ptr, step_tokens, num_experts):
    """For each step, the keys routed by the requests whose last token ran then, with counts."""
    num_steps = step_ptr.shape[0] - 1
    num_layers = experts.shape[1]
    top_k = experts.shape[2]
    num_seq = sequence_lengths.shape[0]
    offsets = np.zeros(num_seq + 1, np.int64)
    for q in range(num_seq):
        offsets[q + 1] = offsets[q] + sequence_lengths[q]
    # the sequence of each trace row
    row_seq = np.empty(offsets[num_seq], np.int64)
    for q in range(num_seq):
        for t in range(offsets[q], offsets[q + 1]):
            row_seq[t] = q
    num_keys = num_layers * num_experts
    count = np.zeros(num_keys, np.int64)
    touched = np.empty(num_keys, np.int64)
    cap = 16
    keys = np.empty(cap, np.int64)
    vals = np.empty(cap, np.int64)
    ptr = np.zeros(num_steps + 1, np.int64)
    n = 0
    for s in range(num_steps):
        for i in range(step_ptr[s], step_ptr[s + 1]):
            t = step_tokens[i]
            q = row_seq[t]
            if t + 1 != offsets[q + 1]:
                continue
            m = 0
            for u in range(offsets[q], offsets[q + 1]):
                for l in range(num_layers):
                    for k in range(top_k):
                        e = experts[u, l, k]
                        if e >= 0:
                            key = l * num_experts + e
                            if count[key] == 0:
                                touched[m] = key
                                m += 1
                            count[key] += 1
            if n + m > cap:
                cap = max(2 * cap, n + m)
                grown_k = np.empty(cap, np.int64)
                grown_v = np.empty(cap, np.int64)
                grown_k[:n] = keys[:n]
                grown_v[:n] = vals[:n]
                keys = grown_k
                vals = grown_v
            for a in range(m):
                keys[n] = touched[a]
                vals[n] = count[touched[a]]
                count[touched[a]] = 0
                n += 1
        ptr[s + 1] = n
    return ptr, keys[:n].copy(), vals[:n].copy()


def with_scores(sched: Schedule, trace, batch_size: int, prefill: bool = False,
                batching: str = "continuous") -> Schedule:
    """``sched`` with ``r_scores`` from the trace's router weights (score-aware policies)."""
    if sched.r_scores.shape[0] == sched.r_experts.shape[0]:
        return sched
    step_ptr, step_tokens = step_layout(trace, batch_size, prefill, batching)
    scores = _entry_scores(
        trace.scores, step_ptr, step_tokens, sched.r_ptr, sched.r_experts, trace.experts, trace.num_experts
    )
    return sched._replace(r_scores=scores)


def with_requests(sched: Schedule, trace, batch_size: int, prefill: bool = False,
                  batching: str = "continuous") -> Schedule:
    """``sched`` with the per-step release lists of finished requests (activation-aware)."""
    if sched.rel_ptr.shape[0] == sched.num_steps + 1:
        return sched
    step_ptr, step_tokens = step_layout(trace, batch_size, prefill, batching)
    ptr, keys, vals = _releases(trace.experts, trace.sequence_lengths, step_ptr, step_tokens, trace.num_experts)
    return sched._replace(rel_ptr=ptr, rel_keys=keys, rel_counts=vals)


def schedule_from_sets(sets, num_experts: int, active=None, counts=None, next_use: bool = True) -> Schedule:
    """A schedule given directly as ``sets[s][l]`` = iterable of expert ids (tests, custom drivers).

    ``counts[s][l]`` (same shape) defaults to 1 per expert; ``active[s]`` defaults to the largest
    count at that step (at least 1).
    """
    num_steps = len(sets)
    num_layers = len(sets[0]) if num_steps else 1
    r_ptr = np.zeros(num_steps * num_layers + 1, np.int64)
    ex: list[int] = []
    cn: list[int] = []
    act = np.ones(num_steps, np.int32)
    for s, layers in enumerate(sets):
        if len(layers) != num_layers:
            raise ValueError(f"step {s} has {len(layers)} layers, expected {num_layers}")
        for l, R in enumerate(layers):
            R = [int(e) for e in R]
            order = sorted(range(len(R)), key=R.__getitem__)
            c = [1] * len(R) if counts is None else [int(x) for x in counts[s][l]]
            if len(set(R)) != len(R) or any(e < 0 or e >= num_experts for e in R):
                raise ValueError(f"set at step {s}, layer {l} must hold distinct ids in [0, {num_experts})")
            ex.extend(R[i] for i in order)
            cn.extend(c[i] for i in order)
            r_ptr[s * num_layers + l + 1] = len(ex)
            if c:
                act[s] = max(act[s], max(c))
    if active is not None:
        act = np.asarray(active, np.int32)
    return _finish(
        num_layers, num_experts, act, r_ptr, np.asarray(ex, np.int32), np.asarray(cn, np.int32), next_use
    )
