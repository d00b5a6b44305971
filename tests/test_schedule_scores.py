"""The schedule's extra arrays for eviction policies, against plain-Python recomputations:
``r_scores`` (score-aware) summed in slot order, and the per-step request releases
(activation-aware)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

import fastsim
from fastsim.replay import schedule_for


def slot_rows(lengths, batch):
    """Trace rows active at each step, in slot order (SPEC section 3 batching, written plainly)."""
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    waiting = [q for q in range(len(lengths))]
    slots = [None] * batch
    steps = []
    while True:
        for b in range(batch):
            if slots[b] is None:
                while waiting and lengths[waiting[0]] == 0:
                    waiting.pop(0)
                if waiting:
                    slots[b] = [waiting.pop(0), 0]
        if all(x is None for x in slots):
            return steps
        rows, done = [], []
        for b in range(batch):
            if slots[b] is not None:
                q, pos = slots[b]
                rows.append(starts[q] + pos)
                slots[b][1] += 1
                if slots[b][1] == lengths[q]:
                    done.append(q)
                    slots[b] = None
        steps.append((rows, done))


@given(seed=st.integers(0, 2**31), batch=st.integers(2, 6), L=st.integers(1, 3), E=st.integers(2, 6))
def test_scores_and_releases_match_a_plain_recomputation(seed, batch, L, E):
    rng = np.random.default_rng(seed)
    K = int(rng.integers(1, E + 1))
    lengths = [int(x) for x in rng.integers(0, 7, size=int(rng.integers(1, 6)))]
    T = sum(lengths)
    experts = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)]) for _ in range(T)]) if T else np.zeros((0, L, K), int)
    experts[rng.random(experts.shape) < 0.1] = -1
    scores = rng.random(experts.shape).astype(np.float32)
    trace = fastsim.Trace.from_arrays(experts, E, lengths, scores=scores)
    sched = schedule_for(trace, batch, False, scores=True, requests=True)
    want_scores, want_rel = [], []
    for rows, done in slot_rows(lengths, batch):
        for l in range(L):
            total: dict[int, float] = {}
            for t in rows:  # slot order
                for k in range(K):
                    e = int(experts[t, l, k])
                    if e >= 0:
                        total[e] = total.get(e, 0.0) + float(scores[t, l, k])
            want_scores += [total[e] / len(rows) for e in sorted(total)]
        released: dict[int, int] = {}
        for q in done:
            start = sum(lengths[:q])
            for t in range(start, start + lengths[q]):
                for l in range(L):
                    for e in experts[t, l]:
                        if e >= 0:
                            released[l * E + int(e)] = released.get(l * E + int(e), 0) + 1
        want_rel.append(released)
    assert sched.r_scores.tolist() == want_scores  # exact: the same additions in the same order
    got_rel = []
    for s in range(sched.num_steps):
        released = {}  # a key may be listed once per request that finishes at this step
        for i in range(sched.rel_ptr[s], sched.rel_ptr[s + 1]):
            key = int(sched.rel_keys[i])
            released[key] = released.get(key, 0) + int(sched.rel_counts[i])
        got_rel.append(released)
    assert got_rel == want_rel
