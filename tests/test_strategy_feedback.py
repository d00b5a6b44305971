"""The feedback hook, through the exact code of ``docs/strategies/feedback.md``.

The page's python blocks register a user strategy with feedback (``most-missed``); it is checked
by hand (the hook runs after the demand and before ``observe`` of the same position, with or
without recording), refused by ``prefetch_lists``, and equal to its reference through both the
section 3 and the execution timelines on drawn traces.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsim
from fastsim.errors import ConfigError
from fastsim.reference import replay_reference
from fastsim.strategies import get_strategy
from fastsim.timeline.core import prefetch_lists
from fastsim.timeline.schedule import schedule_from_sets

from hypothesis_budget import examples
from timeline_helpers import hardware_profiles, model_for

DOC = Path(__file__).resolve().parent.parent / "docs" / "strategies" / "feedback.md"

MODEL = dict(
    name="tiny", num_layers=2, num_experts=6, top_k=2, expert_bytes=2_000_000,
    dense_bytes_per_layer=1_000_000, expert_flops_per_token=4_000_000, dense_flops_per_token=8_000_000,
)


@pytest.fixture(scope="module")
def doc_namespace():
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 3, "the feedback page lost its code blocks"
    ns: dict = {"__name__": "feedback_doc"}
    exec(compile("\n".join(blocks), str(DOC), "exec"), ns)
    return ns


def _trace(rows, E, lengths=None):
    experts = np.asarray(rows, np.int16)
    return fastsim.Trace.from_arrays(experts, num_experts=E, sequence_lengths=lengths)


def test_registered_with_its_feedback(doc_namespace):
    defn = get_strategy("most-missed")
    assert defn.feedback is doc_namespace["most_missed_feedback"]
    assert defn.defaults() == {"keys": 4}


def test_feedback_comes_before_observe_by_hand(doc_namespace):
    # one layer, 3 experts, top-1, 1 slot: 0 misses, 1 misses, 1 hits, 2 misses.
    # After each demand the most-missed list already counts that demand's miss:
    # step 0 misses {0: 1} -> [0]; step 1 {0: 1, 1: 1} -> [0, 1]; step 2 unchanged; step 3 adds 2
    model = dict(MODEL, num_layers=1, num_experts=3, top_k=1)
    trace = _trace([[[0]], [[1]], [[1]], [[2]]], 3)
    for record in (True, False):
        r = fastsim.replay(trace, strategy="most-missed", model=model, hardware="rtx3090", cache_slots=1,
                           keys=3, max_prefetch_loads=0, record=record)
        assert (r.metrics["hits"], r.metrics["misses"]) == (1, 3)
        if record:
            assert r.outcomes.tolist() == [2, 2, 0, 2]
            assert [w.tolist() for w in r.wanted] == [[0], [0, 1], [0, 1], [0, 1, 2]]


def test_prefetch_lists_refuses_feedback(doc_namespace):
    defn = get_strategy("most-missed")
    sched = schedule_from_sets([[[0]], [[1]]], 3)
    with pytest.raises(ConfigError, match="most-missed.*feedback"):
        prefetch_lists(sched, 1, defn.resolve({}), defn.init, defn.observe)
    # a strategy without feedback still has its lists
    top = get_strategy("top-k")
    ptr, keys = prefetch_lists(sched, 1, top.resolve({"update_frequency": 1}), top.init, top.observe)
    assert ptr.tolist() == [0, 3, 6]


def test_register_rejects_a_plain_python_feedback(doc_namespace):
    defn = get_strategy("most-missed")
    with pytest.raises(ConfigError, match="feedback must be a numba.njit function"):
        fastsim.strategies.register_strategy("bad-feedback", defn.init, defn.observe,
                                             feedback=lambda *a: None)


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    tokens = draw(st.integers(1, 40))
    rng = np.random.default_rng(seed)
    L, E, K = MODEL["num_layers"], MODEL["num_experts"], MODEL["top_k"]
    experts = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)]) for _ in range(tokens)])
    experts[rng.random(experts.shape) < 0.05] = -1
    cut = sorted(rng.integers(0, tokens + 1, size=2).tolist())
    trace = _trace(experts, E, [cut[0], cut[1] - cut[0], tokens - cut[1]])
    batch = draw(st.integers(1, 3))
    kw = dict(model=MODEL, hardware="rtx3090", batch_size=batch, cache_slots=draw(st.integers(K * batch, L * E)),
              eviction=draw(st.sampled_from(["lru", "fifo"])), keys=draw(st.integers(1, 6)),
              max_prefetch_loads=draw(st.sampled_from([None, 1])))
    return trace, kw


@examples(0.3)
@given(cases())
def test_replay_equals_reference(doc_namespace, case):
    trace, kw = case
    fast = fastsim.replay(trace, strategy="most-missed", record=True, **kw)
    slow = replay_reference(trace, strategy="most-missed", record=True, **kw)
    assert fast.metrics == slow.metrics
    assert np.array_equal(fast.outcomes, slow.outcomes)
    assert [w.tolist() for w in fast.wanted] == [w.tolist() for w in slow.wanted]
    # the hook sees the outcomes without recording too
    assert fastsim.replay(trace, strategy="most-missed", **kw).metrics == fast.metrics


@examples(0.3)
@given(cases(), hardware_profiles(), st.sampled_from(["fifo", "demand-first"]),
       st.sampled_from(["load", "cpu", "zero-copy"]), st.sampled_from([1e8, 1e9]))
def test_execution_replay_equals_reference(doc_namespace, case, hw, link, miss, cpu_rate):
    trace, kw = case
    L, E, K = MODEL["num_layers"], MODEL["num_experts"], MODEL["top_k"]
    hw = dict(hw, cpu_flops_per_s=cpu_rate, cpu_mem_bytes_per_s=5e10, cpu_overhead_s=0.0)
    kw = dict(kw, model=model_for(L, E, K), hardware=hw, timeline="layered", link=link, miss_execution=miss)
    fast = fastsim.replay(trace, strategy="most-missed", record=True, **kw)
    slow = replay_reference(trace, strategy="most-missed", record=True, **kw)
    assert fast.metrics == slow.metrics
    assert [w.tolist() for w in fast.wanted] == [w.tolist() for w in slow.wanted]
