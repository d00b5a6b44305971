"""The user plug-in interface, through the exact code of ``docs/strategies/plugins.md``.

The doc's fenced python blocks are executed as written, so the walkthrough cannot drift from
what fastsim accepts; its strategy is then checked against hand-derived wanted lists and metrics
and, on drawn traces, against the reference timeline running the doc's pure-Python reference.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import fastsim
from fastsim.errors import ConfigError
from fastsim.reference import replay_reference
from fastsim.strategies import Param, get_strategy, register_strategy
from fastsim.timeline.core import prefetch_lists
from fastsim.timeline.schedule import schedule_from_sets

DOC = Path(__file__).resolve().parent.parent / "docs" / "strategies" / "plugins.md"


def doc_code() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 4, "the walkthrough lost its code blocks"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def doc_namespace():
    ns: dict = {"__name__": "plugins_doc"}
    exec(compile(doc_code(), str(DOC), "exec"), ns)  # registers "repeat-last" and replays it
    return ns


MODEL = dict(
    name="tiny", num_layers=2, num_experts=2, top_k=1, expert_bytes=2_000_000,
    dense_bytes_per_layer=1_000_000, expert_flops_per_token=4_000_000, dense_flops_per_token=8_000_000,
)


def test_doc_example_runs_and_registers(doc_namespace):
    defn = get_strategy("repeat-last")
    assert defn.init is doc_namespace["repeat_last_init"]
    assert defn.defaults() == {"max_keys": 64}
    assert "repeat-last" in fastsim.strategies.list_strategies()


def test_wanted_lists_by_hand(doc_namespace):
    # L = 2, E = 3; layer 0 demands {0,2}, {1}, {}, layer 1 demands {1}, {0,2}, {2}
    E = 3
    sets = [[[0, 2], [1]], [[1], [0, 2]], [[], [2]]]
    sched = schedule_from_sets(sets, E)
    defn = get_strategy("repeat-last")
    ptr, keys = prefetch_lists(sched, 2, defn.resolve({}), defn.init, defn.observe)
    got = [keys[ptr[p] : ptr[p + 1]].tolist() for p in range(len(ptr) - 1)]
    want = [
        [],  # (0,0): layer 1 has no previous step yet
        [0, 2],  # (0,1): layer 0's set of this step, for the next step
        [E + 1],  # (1,0): layer 1's set of step 0
        [1],  # (1,1): layer 0's {1}
        [E + 0, E + 2],  # (2,0): layer 1's {0,2} of step 1
        [],  # (2,1): layer 0's empty set
    ]
    assert got == want
    ptr, keys = prefetch_lists(sched, 2, defn.resolve({"max_keys": 1}), defn.init, defn.observe)
    assert keys[ptr[1] : ptr[2]].tolist() == [0]


def test_replay_metrics_by_hand(doc_namespace):
    # keys: layer 0 expert e -> e, layer 1 expert e -> 2 + e; demands 0,2 | 1,2 | 0,2 with 2 slots.
    # (0,0) miss 0; (0,1) miss 2, wants 0 (resident).
    # (1,0) miss 1 evicts 2 (LRU: 0 was refreshed by the want); wants 2: evicts 0, prefetch load.
    # (1,1) 2 resident (useful); wants 1 (resident).
    # (2,0) miss 0 evicts 2 (1 was refreshed later); wants 2: evicts 1, prefetch load.
    # (2,1) 2 resident (useful).
    experts = np.array([[[0], [0]], [[1], [0]], [[0], [0]]], np.int16)
    trace = fastsim.Trace.from_arrays(experts, num_experts=2)
    m = fastsim.replay(trace, strategy="repeat-last", model=MODEL, hardware="rtx3090", cache_slots=2).metrics
    assert m["accesses"] == 6
    assert m["misses"] == m["demand_loads"] == 4
    assert m["hits"] + m["late"] == 2
    assert m["prefetch_loads"] == 2
    assert m["prefetch_useful"] == 2 and m["prefetch_wasted"] == 0
    assert m["h2d_bytes"] == 6 * MODEL["expert_bytes"]


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 30),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(2, 10),
    st.sampled_from(["lru", "belady"]),
    st.integers(1, 4),
)
def test_replay_equals_reference_timeline(doc_namespace, seed, tokens, layers, batch, slots, eviction, max_keys):
    rng = np.random.default_rng(seed)
    E, K = 6, 2
    model = dict(MODEL, num_layers=layers, num_experts=E, top_k=K)
    experts = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(layers)]) for _ in range(tokens)])
    experts[rng.random(experts.shape) < 0.05] = -1
    cut = int(rng.integers(0, tokens + 1))
    trace = fastsim.Trace.from_arrays(experts.astype(np.int16), num_experts=E, sequence_lengths=[cut, tokens - cut])
    kw = dict(strategy="repeat-last", model=model, hardware="rtx3090", cache_slots=max(slots, K * batch),
              eviction=eviction, batch_size=batch, max_keys=max_keys)
    fast = fastsim.replay(trace, record=True, **kw)
    slow = replay_reference(trace, record=True, **kw)
    assert fast.metrics == slow.metrics
    assert np.array_equal(fast.outcomes, slow.outcomes)
    assert [w.tolist() for w in fast.wanted] == [w.tolist() for w in slow.wanted]


def test_bad_parameter_rejected(doc_namespace):
    trace = fastsim.Trace.from_arrays(np.zeros((2, 2, 1), np.int16), num_experts=2)
    with pytest.raises(ConfigError, match="max_keys"):
        fastsim.replay(trace, strategy="repeat-last", model=MODEL, cache_slots=2, max_keys=0)


def test_registration_errors(doc_namespace):
    ns = doc_namespace
    with pytest.raises(ConfigError, match="already registered"):
        register_strategy("repeat-last", ns["repeat_last_init"], ns["repeat_last_observe"])
    with pytest.raises(ConfigError, match="numba.njit"):
        register_strategy("plain-python", lambda *a: (), ns["repeat_last_observe"])
    with pytest.raises(ConfigError, match="non-empty name"):
        register_strategy("", ns["repeat_last_init"], ns["repeat_last_observe"])


def test_builtin_names_cannot_be_taken():
    @njit
    def init(num_layers, num_experts, top_k, params):
        return (np.zeros(1, np.int64),)

    @njit
    def observe(state, params, sched, s, l, experts, counts, out):
        return 0

    with pytest.raises(ConfigError, match="already registered"):
        register_strategy("top-k", init, observe, params=[Param("k", 1, kind="int", low=1)])
