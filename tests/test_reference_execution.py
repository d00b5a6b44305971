"""Properties of the reference's execution path (SPEC section 7) on drawn traces, checked on the
reference alone: with every option at its default it is the section 3 path exactly; options
that cannot matter in a case change nothing; the new metrics are consistent with each other and
with the per-step arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.reference import ReferenceSchedule, replay_reference
from fastsim.reference.execution import replay_execution_reference
from fastsim.reference.execution_metrics import percentile

from hypothesis_budget import examples
from test_eviction_replay import POLICIES, cases
from test_strategies_replay import PARAMS
from timeline_helpers import fixed_keys_strategy, hardware_profiles, model_for, traces

STRATEGIES = ["on-demand", "oracle", "multi-look", "top-k", "intelligent", "test-fixed-keys"]
NEW_COUNTS = ["cpu_executions", "zero_copy_executions", "host_hits", "nvme_loads", "peak_overflow"]
PHASE_COUNTS = ["accesses", "hits", "late", "misses"]


def _both_or_neither(run_a, run_b):
    """Both runs' results, or ``None`` when both reject the configuration."""
    try:
        a = run_a()
    except ValueError:
        with pytest.raises(ValueError):
            run_b()
        return None
    return a, run_b()


def assert_same_replay(a, b, ignore=()):
    ma = {k: v for k, v in a.metrics.items() if k not in ignore}
    mb = {k: v for k, v in b.metrics.items() if k not in ignore}
    assert ma == mb
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert [w.tolist() for w in a.wanted] == [w.tolist() for w in b.wanted]


@examples(1.0)
@given(data=st.data())
def test_defaults_equal_the_section_3_path(data):
    # every strategy, policy, partition, pin choice, byte budget and batch 1-8 of the cache tests
    fixed_keys_strategy()
    trace, strategy, kw = data.draw(cases(data.draw(st.sampled_from(POLICIES))))
    got = _both_or_neither(lambda: replay_reference(trace, strategy, **kw),
                           lambda: replay_execution_reference(trace, strategy, **kw))
    if got is None:
        return
    old, new = got
    assert "cpu_executions" not in old.metrics  # the old path ran
    assert {k: new.metrics[k] for k in old.metrics} == old.metrics
    assert_same_replay(old, new, ignore=set(new.metrics) - set(old.metrics))
    m = new.metrics
    assert all(m[k] == 0 for k in NEW_COUNTS)
    assert m["prefill_accesses"] == 0 and all(m[f"decode_{k}"] == m[k] for k in PHASE_COUNTS)
    assert m["decode_hit_rate"] == m["hit_rate"] and m["ttft_s"] == 0.0


def with_prompts(trace, draw):
    lengths = [int(n) for n in trace.sequence_lengths]
    prompts = [draw(st.integers(0, n)) for n in lengths]
    return fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths, prompt_tokens=prompts)


def working_set(trace, batch, prefill):
    prompts = trace.prompt_tokens if prefill else None
    sched = ReferenceSchedule(trace.experts.tolist(), trace.sequence_lengths, trace.num_layers, trace.num_experts,
                              batch, prompt_lengths=prompts)
    return sched.working_set


@st.composite
def execution_cases(draw, strategies=STRATEGIES, tiers=None, **fixed):
    """``(trace, strategy, kw)`` with the execution options drawn (those in ``fixed`` as given)."""
    trace = with_prompts(draw(traces(max_tokens=20, max_experts=8, max_layers=3, max_k=3, max_sequences=4)), draw)
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    strategy = draw(st.sampled_from(strategies))
    if strategy == "test-fixed-keys":
        params = {"seed": draw(st.integers(0, 1000)), "count": draw(st.integers(0, 8))}
    else:
        params = draw(st.fixed_dictionaries(PARAMS[strategy]))
    hw = draw(hardware_profiles())
    hw.update(cpu_flops_per_s=draw(st.sampled_from([1e8, 1e9, 1e10])),
              cpu_mem_bytes_per_s=draw(st.sampled_from([1e10, 1e11])),
              cpu_overhead_s=draw(st.sampled_from([0.0, 2e-8, 1e-7])))
    if tiers if tiers is not None else draw(st.booleans()):
        hw.update(host_bytes=draw(st.integers(1000, L * E * 1000)), nvme_bytes_per_s=draw(st.sampled_from([1e9, 1e10])))
    opts = dict(
        timeline=draw(st.sampled_from(["simple", "layered"])),
        link=draw(st.sampled_from(["fifo", "demand-first"])),
        max_inflight_prefetches=draw(st.sampled_from([None, 1, 3])),
        miss_execution=draw(st.sampled_from(["load", "cpu", "zero-copy"])),
        overflow=draw(st.sampled_from(["error", "exceed"])),
        prefill=draw(st.booleans()),
        batch_size=draw(st.integers(1, 6)),
        eviction=draw(st.sampled_from(["lru", "belady", "fifo", "lfu"])),
    )
    opts.update(fixed)
    if opts["miss_execution"] != "load":
        opts["max_uploads_per_layer"] = draw(st.sampled_from([None, 0, 1, 2]))
    ws = working_set(trace, opts["batch_size"], opts["prefill"])
    roomy = st.integers(max(1, ws), max(1, ws + 3))
    # exceed: a cache below the working set half the time
    opts["cache_slots"] = draw(st.one_of(st.integers(1, max(1, ws)), roomy) if opts["overflow"] == "exceed" else roomy)
    kw = dict(model=model_for(L, E, K), hardware=hw, per_step=True, record=True, **opts, **params)
    return trace, strategy, kw


@examples(0.5)
@given(data=st.data())
def test_on_demand_is_the_same_under_fifo_and_demand_first(data):
    # with no prefetch every transfer is a demand transfer: the two links run them alike
    trace, strategy, kw = data.draw(execution_cases(strategies=["on-demand"], link="fifo"))
    a = replay_execution_reference(trace, strategy, **kw)
    b = replay_execution_reference(trace, strategy, **dict(kw, link="demand-first"))
    assert_same_replay(a, b)


@examples(0.5)
@given(data=st.data())
def test_a_cpu_slower_than_any_transfer_changes_nothing(data):
    trace, strategy, kw = data.draw(execution_cases(miss_execution="load"))
    kw.pop("max_uploads_per_layer", None)
    kw["hardware"] = dict(kw["hardware"], cpu_overhead_s=10.0)  # 10 s: slower than any transfer here
    a = replay_execution_reference(trace, strategy, **kw)
    b = replay_execution_reference(trace, strategy, **dict(kw, miss_execution="cpu"))
    assert_same_replay(a, b)
    assert b.metrics["cpu_executions"] == 0


@examples(0.5)
@given(data=st.data())
def test_an_infinitely_fast_link_never_stalls(data):
    trace, strategy, kw = data.draw(execution_cases(tiers=False))
    if kw["miss_execution"] == "cpu":
        kw.pop("max_uploads_per_layer")  # a forced CPU run may outlast the GPU: that is no link stall
    kw["hardware"] = dict(kw["hardware"], h2d_bytes_per_s=math.inf, transfer_latency_s=0.0)
    for timeline in ("simple", "layered"):
        r = replay_execution_reference(trace, strategy, **dict(kw, timeline=timeline))
        assert r.metrics["stall_s"] == 0.0 and not r.step_stall_s.any()
        assert r.metrics["cpu_executions"] == 0  # the CPU never beats a free transfer


@examples(0.5)
@given(data=st.data())
def test_layered_equals_simple_when_every_expert_is_resident(data):
    # every key pinned: nothing loads, every expert is ready at g, so running attention first
    # and the experts back to back takes the same time as the section 3 layer
    trace, strategy, kw = data.draw(execution_cases(overflow="error"))
    L, E = trace.num_layers, trace.num_experts
    kw.update(cache_slots=L * E, pinned=list(range(L * E)))
    dense = data.draw(st.sampled_from([0.0, 5.0]))
    kw["model"] = dict(kw["model"], dense_flops_per_token=dense, dense_bytes_per_layer=0 if dense == 0 else 700)
    a = replay_execution_reference(trace, strategy, **dict(kw, timeline="simple"))
    b = replay_execution_reference(trace, strategy, **dict(kw, timeline="layered"))
    assert_same_replay(a, b)
    assert a.metrics["hits"] == a.metrics["accesses"] and a.metrics["stall_s"] == 0.0


def batching(trace, batch, prefill):
    """``(prefills, decodes)`` per step: how many sequences run their prompt, how many decode
    tokens run, counted here from SPEC section 3's batching and the docs' prefill rule."""
    lengths = [int(n) for n in trace.sequence_lengths]
    prompts = [int(p) for p in trace.prompt_tokens] if prefill else [0] * len(lengths)
    queue = [q for q in range(len(lengths)) if lengths[q] > 0]
    slots: list = [None] * batch
    out = []
    while True:
        for b in range(batch):
            if slots[b] is None and queue:
                slots[b] = [queue.pop(0), 0]
        if all(x is None for x in slots):
            return out
        pre = dec = 0
        for b in range(batch):
            if slots[b] is None:
                continue
            q, pos = slots[b]
            if pos == 0 and prompts[q] > 0:
                pre += 1
                slots[b][1] = prompts[q]
            else:
                dec += 1
                slots[b][1] += 1
            if slots[b][1] == lengths[q]:
                slots[b] = None
        out.append((pre, dec))


def summary(values):
    if not values:
        return 0.0, 0.0, 0.0
    v = np.asarray(values, np.int64)
    return (int(v.sum()) / len(v)) / 1e9, float(np.percentile(v, 50)) / 1e9, float(np.percentile(v, 99)) / 1e9


@examples(0.5)
@given(data=st.data())
def test_ttft_and_tpot_from_the_per_step_arrays(data):
    trace, strategy, kw = data.draw(execution_cases())
    r = replay_execution_reference(trace, strategy, **kw)
    per_step = batching(trace, kw["batch_size"], kw["prefill"])
    step_ns = [int(round(x * 1e9)) for x in r.step_time_s]
    assert len(per_step) == len(step_ns) == r.metrics["steps"]
    ttft = [t for (pre, _), t in zip(per_step, step_ns) for _ in range(pre)]
    tpot = [t for (_, dec), t in zip(per_step, step_ns) for _ in range(dec)]
    m = r.metrics
    assert (m["ttft_s"], m["ttft_p50_s"], m["ttft_p99_s"]) == summary(ttft)
    assert (m["tpot_s"], m["tpot_p50_s"], m["tpot_p99_s"]) == summary(tpot)
    assert len(tpot) + sum(int(p) for p in trace.prompt_tokens if kw["prefill"]) == m["tokens"]


@examples(0.5)
@given(data=st.data())
def test_counts_add_up(data):
    trace, strategy, kw = data.draw(execution_cases())
    m = replay_execution_reference(trace, strategy, **kw).metrics
    assert m["misses"] == m["demand_loads"] + m["cpu_executions"] + m["zero_copy_executions"]
    assert m["hits"] + m["late"] + m["misses"] == m["accesses"]
    for k in PHASE_COUNTS:
        assert m[f"prefill_{k}"] + m[f"decode_{k}"] == m[k]
    for phase in ("prefill", "decode"):
        assert m[f"{phase}_hits"] + m[f"{phase}_late"] + m[f"{phase}_misses"] == m[f"{phase}_accesses"]
    assert m["prefetch_useful"] + m["prefetch_wasted"] == m["prefetch_loads"]
    lookups = m["demand_loads"] + m["prefetch_loads"] + m["cpu_executions"] + m["zero_copy_executions"]
    assert m["host_hits"] + m["nvme_loads"] == (lookups if "host_bytes" in kw["hardware"] else 0)
    if kw["overflow"] == "error":
        assert m["peak_overflow"] == 0
    if kw["miss_execution"] == "load":
        assert m["cpu_executions"] == m["zero_copy_executions"] == 0


@examples(0.5)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=40), st.sampled_from([0, 25, 50, 99, 100]))
def test_percentile_is_numpys_to_the_bit(values, pct):
    assert percentile(values, pct / 100) == float(np.percentile(np.asarray(values, np.int64), pct))


def test_percentile_rounds_as_numpy_does():
    # rank 4 x 0.99 = 3.96 between 779245 and 939078: numpy's b - (b - a)(1 - t) gives
    # 932684.68 where a + (b - a) t gives 932684.6799999999
    values = [348856, 745738, 756531, 779245, 939078]
    assert percentile(values, 0.99) == 932684.68 == float(np.percentile(values, 99))
    assert percentile([], 0.5) == 0.0 and percentile([7], 0.99) == 7.0
