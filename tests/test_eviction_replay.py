"""Every eviction policy's kernel equals its reference (issue: cache organisation): all metrics,
every access outcome, per-step times and wanted lists, on drawn traces with every strategy, the
three partition kinds, pins, per-layer expert sizes with byte budgets, and batch sizes 1-8."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.eviction import list_evictions
from fastsim.reference import replay_reference
from fastsim.replay import schedule_for

from hypothesis_budget import examples
from test_strategies_replay import PARAMS
from timeline_helpers import fixed_keys_strategy, hardware_profiles, model_for, traces

POLICIES = ["lru", "belady", "fifo", "lfu", "lfru", "activation-aware", "score-aware"]
EVICTION_PARAMS = {
    "activation-aware": {"smoothing": st.sampled_from([1e-3, 0.5, 1.0, 4.0])},
    "score-aware": {"alpha": st.sampled_from([0.1, 0.5, 0.9, 1.0])},
}
STRATEGIES = ["on-demand", "oracle", "multi-look", "top-k", "intelligent", "test-fixed-keys"]


def test_every_policy_is_drawn():
    assert set(POLICIES) <= set(list_evictions())


def with_scores(trace, seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(trace.experts.shape).astype(np.float32)
    # a few exact ties between experts' weights
    scores[rng.random(scores.shape) < 0.2] = 0.5
    return fastsim.Trace.from_arrays(trace.experts, trace.num_experts, trace.sequence_lengths, scores=scores)


@st.composite
def cases(draw, policy):
    trace = with_scores(draw(traces(max_tokens=30, max_experts=12, max_layers=4, max_k=3, max_sequences=4)),
                        draw(st.integers(0, 2**31)))
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    strategy = draw(st.sampled_from(STRATEGIES))
    if strategy == "test-fixed-keys":
        params = {"seed": draw(st.integers(0, 1000)), "count": draw(st.integers(0, 10))}
    else:
        params = draw(st.fixed_dictionaries(PARAMS[strategy]))
    batch = draw(st.integers(1, 8))
    sizes = draw(st.sampled_from(["one", "mixed"]))
    if sizes == "one":
        model = model_for(L, E, K)
    else:
        model = model_for(L, E, K, expert_bytes=draw(st.lists(st.sampled_from([700, 1000, 1300]), min_size=L, max_size=L)))
    partition = draw(st.sampled_from(["global", "per-layer", "list"]))
    pin_kind = draw(st.sampled_from(["none", "count", "keys"]))
    pinned = None
    if pin_kind == "count":
        pinned = draw(st.integers(0, 4))
    elif pin_kind == "keys":
        pinned = draw(st.lists(st.integers(0, L * E - 1), max_size=4, unique=True))
    pin_profile = draw(st.sampled_from([1.0, 0.5, 0.1]))
    sched = schedule_for(trace, batch, True)
    per_layer_ws = [max([0] + [len(sched.R(s, l)[0]) for s in range(sched.num_steps)]) for l in range(L)]
    extra = draw(st.lists(st.integers(0, 3), min_size=L, max_size=L))
    pins_each = [0] * L
    if isinstance(pinned, list):
        for k in pinned:
            pins_each[k // E] += 1
    elif isinstance(pinned, int):
        pins_each = [pinned] * L  # room for a count, wherever its keys fall
    if sizes == "mixed" and draw(st.booleans()):
        # a byte budget: each layer's share holds its working set, pins and some more, in bytes
        share = [(per_layer_ws[l] + pins_each[l] + extra[l]) * model["expert_bytes"][l] + draw(st.integers(0, 999))
                 for l in range(L)]
        cache = dict(cache_bytes=sum(share))
    else:
        share = [per_layer_ws[l] + pins_each[l] + extra[l] for l in range(L)]
        cache = dict(cache_slots=sum(share))
    if partition == "list":
        partition = share
    elif partition == "global":
        # a global cache may be as small as the largest R plus the pins
        unit = 1 if "cache_slots" in cache else max(model["expert_bytes"])
        least = (sched.max_working_set + sum(pins_each)) * unit
        total = draw(st.integers(least, max(least, next(iter(cache.values())))))
        cache = {next(iter(cache)): total}
    ev = {name: draw(s) for name, s in EVICTION_PARAMS.get(policy, {}).items()}
    kw = dict(
        model=model, hardware=draw(hardware_profiles()), eviction=policy, batch_size=batch,
        eviction_params=ev or None, cache_partition=partition, pinned=pinned, pin_profile=pin_profile,
        max_prefetch_loads=draw(st.sampled_from([None, 0, 2])), per_step=True, record=True, **cache, **params,
    )
    return trace, strategy, kw


def _replay_both(trace, strategy, kw):
    try:
        a = fastsim.replay(trace, strategy, **kw)
    except fastsim.ConfigError as exc:
        # the kernel side rejects it: the reference must reject it too
        with pytest.raises(ValueError):
            replay_reference(trace, strategy, **kw)
        return None, None, exc
    return a, replay_reference(trace, strategy, **kw), None


@pytest.mark.parametrize("policy", POLICIES)
@examples(0.5)
@given(data=st.data())
def test_kernel_equals_reference(policy, data):
    fixed_keys_strategy()
    trace, strategy, kw = data.draw(cases(policy))
    a, b, rejected = _replay_both(trace, strategy, kw)
    if rejected is not None:
        return
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert [w.tolist() for w in a.wanted] == [w.tolist() for w in b.wanted]
    # pinned keys are always hits and never loaded: every miss is of an unpinned key
    pins = set(a.config.get("pinned", []))
    if pins:
        keys = _access_keys(trace, kw["batch_size"])
        assert all(o == 0 for k, o in zip(keys, a.outcomes.tolist()) if k in pins)


def _access_keys(trace, batch):
    sched = schedule_for(trace, batch, False)
    L, E = trace.num_layers, trace.num_experts
    out = []
    for p in range(sched.r_ptr.shape[0] - 1):
        l = p % L
        out += [l * E + int(e) for e in sched.r_experts[sched.r_ptr[p]:sched.r_ptr[p + 1]]]
    return out
