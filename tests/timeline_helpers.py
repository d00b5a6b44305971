"""Shared helpers for timeline tests: tiny profiles, random traces, a fixed-keys test strategy."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from numba import njit

import fastsim
from fastsim.strategies import Param, get_strategy, register_strategy

MULT = 1000003


def model_for(L: int, E: int, K: int, **over) -> dict:
    d = dict(
        name="test-model", num_layers=L, num_experts=E, top_k=K, expert_bytes=1000,
        dense_bytes_per_layer=0, expert_flops_per_token=10.0, dense_flops_per_token=5.0,
    )
    d.update(over)
    return d


def hardware(h2d=1e10, latency=0.0, **over) -> dict:
    d = dict(
        name="test-gpu", h2d_bytes_per_s=h2d, transfer_latency_s=latency, mem_bytes_per_s=1e18,
        flops_per_s=1e9, memory_bytes=10**15, launch_s=0.0,
    )
    d.update(over)
    return d


def _want_key(seed, s, l, i, num_keys):
    return (seed * MULT + s * 7919 + l * 104729 + i * 15485863) % 2147483647 % num_keys


@njit
def _fixed_init(num_layers, num_experts, top_k, params):
    return (np.zeros(1, np.int64),)


@njit
def _fixed_observe(state, params, sched, s, l, experts, counts, out):
    seed = np.int64(params[0])
    n = np.int64(params[1])
    num_keys = sched.num_layers * sched.num_experts
    n = min(n, num_keys)  # the contract: at most L * E keys per call
    for i in range(n):
        out[i] = (seed * MULT + s * 7919 + l * 104729 + i * 15485863) % 2147483647 % num_keys
    return n


class FixedKeysReference:
    """Wants ``count`` pseudo-random keys per call, the same ones the kernel hook computes."""

    def __init__(self, num_layers, num_experts, top_k, schedule, seed, count):
        self.num_keys = num_layers * num_experts
        self.seed, self.count = int(seed), int(count)

    def observe(self, s, l, R, n):
        return [_want_key(self.seed, s, l, i, self.num_keys) for i in range(min(self.count, self.num_keys))]


def fixed_keys_strategy():
    """A test strategy whose wanted keys are fixed by ``(seed, s, l)``: it exercises prefetching
    (keys of any layer, keys already resident or in ``R``, repeats) independently of any model."""
    try:
        return get_strategy("test-fixed-keys")
    except fastsim.ConfigError:
        return register_strategy(
            "test-fixed-keys", _fixed_init, _fixed_observe,
            params=[Param("seed", 0, "int", 0, 10**6), Param("count", 0, "int", 0, 64)],
            reference=FixedKeysReference, description="test strategy wanting fixed pseudo-random keys", cache=True,
        )


@st.composite
def traces(draw, max_tokens=24, max_experts=300, max_layers=6, max_k=8, max_sequences=4):
    E = draw(st.integers(2, max_experts))
    K = draw(st.integers(1, min(max_k, E)))
    L = draw(st.integers(1, max_layers))
    T = draw(st.integers(0, max_tokens))
    S = draw(st.integers(1, max_sequences))
    seed = draw(st.integers(0, 2**32 - 1))
    gap = draw(st.sampled_from([0.0, 0.1, 0.5]))
    skew = draw(st.sampled_from([0, 1]))
    rng = np.random.default_rng(seed)
    # a small hot set makes hits and reuse common; skew 0 spreads over every expert
    pool = E if skew == 0 else max(K, min(E, 2 * K + 2))
    experts = np.empty((T, L, K), np.int64)
    for t in range(T):
        for l in range(L):
            experts[t, l] = rng.choice(pool, size=K, replace=False)
    experts[rng.random(experts.shape) < gap] = -1
    cuts = np.sort(rng.integers(0, T + 1, size=S - 1))
    lengths = np.diff(np.concatenate([[0], cuts, [T]]))
    return fastsim.Trace.from_arrays(experts, E, lengths)


# Profile fields drawn so that every term of SPEC section 2 matters somewhere: fractional
# nanoseconds, a fixed transfer latency, a launch cost, experts that are memory-bound at one token
# and compute-bound at more (1000-byte experts at 7e10 B/s read in 14.29 ns; 10 flops a token at
# 1e9 flop/s take 10 ns), and a dense part memory-bound at small b and compute-bound at large b.
H2D_RATES = [1e8, 3e8, 1e9, 7e9, 1e10, 1e12]
LATENCIES = [0.0, 2.5e-9, 1.37e-8, 3e-8]
LAUNCHES = [0.0, 1.5e-9, 7.3e-9]
MEM_RATES = [1e18, 7e10, 3e10]


@st.composite
def hardware_profiles(draw):
    return hardware(
        draw(st.sampled_from(H2D_RATES)), draw(st.sampled_from(LATENCIES)),
        launch_s=draw(st.sampled_from(LAUNCHES)), mem_bytes_per_s=draw(st.sampled_from(MEM_RATES)),
        flops_per_s=draw(st.sampled_from([1e9, 3e9])),
    )


@st.composite
def model_profiles(draw, L: int, E: int, K: int):
    return model_for(
        L, E, K, dense_bytes_per_layer=draw(st.sampled_from([0, 700, 2000])),
        expert_flops_per_token=draw(st.sampled_from([10.0, 13.7])),
        dense_flops_per_token=draw(st.sampled_from([5.0, 2.3])),
    )


def accesses_of(trace, batch_size: int) -> int:
    """``sum |R|`` over the replay, counted here from the trace and continuous batching."""
    lengths = [int(n) for n in trace.sequence_lengths]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    queue = [q for q in range(len(lengths)) if lengths[q] > 0]
    slots: list = [None] * batch_size
    total = 0
    while True:
        for b in range(batch_size):
            if slots[b] is None and queue:
                slots[b] = [queue.pop(0), 0]
        rows = [starts[q] + pos for q, pos in (x for x in slots if x is not None)]
        if not rows:
            return total
        block = trace.experts[rows]  # (active, L, K)
        for l in range(trace.num_layers):
            total += len(set(block[:, l].ravel().tolist()) - {-1})
        for b in range(batch_size):
            if slots[b] is not None:
                slots[b][1] += 1
                if slots[b][1] == lengths[slots[b][0]]:
                    slots[b] = None
