"""Recorded batching (docs/model.md, "Recorded batching"): a trace of recorded forward passes
replays one step per pass, every token of the pass active at once. A hand-computed case, the
kernel against the reference on drawn traces, strategies, evictions and options, the default
for imported logs, and the input errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.cli.main import main
from fastsim.reference import replay_reference
from fastsim.reference.timeline import ReferenceSchedule
from fastsim.replay import schedule_for
from fastsim.trace import read_trace
from fastsim.trace.importers import import_trace

from hypothesis_budget import examples
from test_execution_replay import _replay_both
from test_import_logs import LOGGED, PASSES, write_logger
from test_strategies_replay import PARAMS
from timeline_helpers import fixed_keys_strategy, hardware, hardware_profiles, model_for, traces

RECORDED = {"batching": "recorded"}


# ------------------------------------------------------------------ a case worked by hand
# Two passes of two top-1 tokens, L = 2, E = 4; rows give (layer 0, layer 1) experts.
GOLDEN = np.array([[[0], [1]], [[2], [1]], [[0], [3]], [[0], [3]]])


def golden_trace(metadata=RECORDED):
    return fastsim.Trace.from_arrays(GOLDEN, 4, [2, 2], metadata=metadata)


def test_golden_schedule_is_one_step_per_pass():
    sched = schedule_for(golden_trace(), 1, True, batching="recorded")
    assert sched.active.tolist() == [2, 2]
    # R and n_e of (step, layer): pass 0 = rows 0-1, pass 1 = rows 2-3
    expected = {(0, 0): ([0, 2], [1, 1]), (0, 1): ([1], [2]), (1, 0): ([0], [2]), (1, 1): ([3], [2])}
    for (s, l), (R, n) in expected.items():
        experts, counts = sched.R(s, l)
        assert (experts.tolist(), counts.tolist()) == (R, n)
        ref = ReferenceSchedule(GOLDEN.tolist(), [2, 2], 2, 4, 1, batching="recorded")
        assert ref.R(s, l) == (R, n)
    # continuous batching at batch 1 runs the same rows one token a step
    assert schedule_for(golden_trace(), 1, True).active.tolist() == [1, 1, 1, 1]


def test_golden_replay_by_hand():
    """load 100 ns (1000 B at 1e10 B/s), expert_ns(n) = 10 n, dense_ns(b) = 5 b; LRU, 3 slots.

    step 0, layer 0: keys 0 and 2 miss, load 0-100 and 100-200; compute 200 + 10 + 10 + 10 = 230.
    step 0, layer 1: key 5 misses, loads 230-330; compute 330 + 10 + 20 = 360 (step time 360, stall 300).
    step 1, layer 0: key 0 hits; 360 + 10 + 20 = 390.
    step 1, layer 1: key 7 misses, evicts key 2 (least recent outside R), loads 390-490;
    490 + 10 + 20 = 520 (step time 160, stall 100).
    """
    kw = dict(model=model_for(2, 4, 1), hardware=hardware(), cache_slots=3, per_step=True, record=True)
    for result in (fastsim.replay(golden_trace(), **kw), replay_reference(golden_trace(), **kw)):
        m = result.metrics
        assert (m["steps"], m["tokens"], m["accesses"], m["hits"], m["misses"]) == (2, 4, 5, 1, 4)
        assert result.outcomes.tolist() == [2, 2, 2, 0, 2]
        np.testing.assert_array_equal(result.step_time_s, [360e-9, 160e-9])
        np.testing.assert_array_equal(result.step_stall_s, [300e-9, 100e-9])
        assert m["total_time_s"] == 520e-9 and m["stall_s"] == 400e-9
        assert result.config["batching"] == "recorded" and result.config["batch_size"] == 1


def test_recorded_on_a_trace_without_the_metadata_reads_each_sequence_as_a_pass():
    kw = dict(model=model_for(2, 4, 1), hardware=hardware(), cache_slots=3, per_step=True)
    plain = golden_trace(metadata=None)
    assert fastsim.replay(plain, **kw).config["batching"] == "continuous"
    asked = fastsim.replay(plain, batching="recorded", **kw)
    assert asked.metrics == fastsim.replay(golden_trace(), **kw).metrics
    # and a recorded trace replays continuously when asked: exactly as without the metadata
    assert fastsim.replay(golden_trace(), batching="continuous", **kw).metrics == fastsim.replay(plain, **kw).metrics


def test_single_token_passes_equal_continuous_batch_one():
    experts = np.array([[[1], [0]], [[2], [3]], [[1], [3]]])
    kw = dict(model=model_for(2, 4, 1), hardware=hardware(), cache_slots=2, per_step=True, record=True)
    one_each = fastsim.Trace.from_arrays(experts, 4, [1, 0, 1, 1], metadata=RECORDED)
    a = fastsim.replay(one_each, **kw)
    b = fastsim.replay(one_each, batching="continuous", **kw)
    assert a.metrics == b.metrics and a.metrics["steps"] == 3  # the empty pass runs no step
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)


# ------------------------------------------------------------------ kernel equals reference
# Each (strategy, policy) pair compiles its own entry points: a covering set, not the product.
PAIRS = [
    ("on-demand", "lru"), ("on-demand", "belady"), ("oracle", "belady"), ("top-k", "lfu"),
    ("multi-look", "fifo"), ("intelligent", "lru"), ("test-fixed-keys", "lfru"),
    ("test-fixed-keys", "activation-aware"), ("test-fixed-keys", "score-aware"),
]
EVICTION_PARAMS = {
    "activation-aware": {"smoothing": st.sampled_from([1e-3, 0.5, 4.0])},
    "score-aware": {"alpha": st.sampled_from([0.1, 0.5, 1.0])},
}


@st.composite
def recorded_traces(draw):
    """Drawn passes (zero-length ones included) with router scores, maybe prompt marks, and the
    importer's metadata or none (then ``batching="recorded"`` is passed)."""
    base = draw(traces(max_tokens=24, max_experts=10, max_layers=3, max_k=3, max_sequences=5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scores = rng.random(base.experts.shape).astype(np.float32)
    marks = None
    if draw(st.booleans()):
        marks = [draw(st.integers(0, int(n))) for n in base.sequence_lengths]
    metadata = RECORDED if draw(st.booleans()) else None
    return fastsim.Trace.from_arrays(base.experts, base.num_experts, base.sequence_lengths, scores=scores,
                                     prompt_tokens=marks, metadata=metadata)


@st.composite
def execution_options(draw, has_prompts):
    """Section 3's timeline (half the draws) or some of section 7's options."""
    if draw(st.booleans()):
        return {}
    return dict(
        timeline=draw(st.sampled_from(["simple", "layered"])),
        link=draw(st.sampled_from(["fifo", "demand-first"])),
        overflow=draw(st.sampled_from(["error", "exceed"])),
        prefill=has_prompts and draw(st.booleans()),
    )


@st.composite
def cases(draw, strategy, policy):
    trace = draw(recorded_traces())
    L, E, K = trace.num_layers, trace.num_experts, trace.top_k
    if strategy == "test-fixed-keys":
        params = {"seed": draw(st.integers(0, 1000)), "count": draw(st.integers(0, 8))}
    else:
        params = draw(st.fixed_dictionaries(PARAMS[strategy]))
    opts = draw(execution_options(trace.prompt_tokens is not None))
    ws = schedule_for(trace, 1, False, batching="recorded").max_working_set
    partition = draw(st.sampled_from(["global", "per-layer"]))
    least = ws if partition == "global" else L * max(1, ws)
    ev = {name: draw(s) for name, s in EVICTION_PARAMS.get(policy, {}).items()}
    kw = dict(
        model=model_for(L, E, K), hardware=draw(hardware_profiles()), eviction=policy,
        eviction_params=ev or None, cache_partition=partition, pinned=draw(st.sampled_from([None, 0, 2])),
        cache_slots=draw(st.integers(max(1, least), max(1, least) + 5)),
        max_prefetch_loads=draw(st.sampled_from([None, 0, 2])), per_step=True, record=True, **opts, **params,
    )
    if trace.metadata.get("batching") != "recorded":
        kw["batching"] = "recorded"
    return trace, kw


@pytest.mark.parametrize("strategy,policy", PAIRS)
@examples(0.4)
@given(data=st.data())
def test_kernel_equals_reference(strategy, policy, data):
    fixed_keys_strategy()
    trace, kw = data.draw(cases(strategy, policy))
    a, b = _replay_both(trace, strategy, kw)
    if a is None:
        return
    assert a.metrics == b.metrics
    assert a.metrics["steps"] == int(np.count_nonzero(trace.sequence_lengths))
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert [w.tolist() for w in a.wanted] == [w.tolist() for w in b.wanted]
    assert a.config["batching"] == b.config["batching"] == "recorded"


@examples(1.0)
@given(recorded_traces())
def test_schedule_is_each_pass_union_and_counts(trace):
    """``R`` of each ``(pass, layer)`` is the union of its tokens' experts, ``n_e`` their counts,
    as numpy counts them here; the reference's sets agree."""
    sched = schedule_for(trace, 1, True, batching="recorded")
    ref = ReferenceSchedule(trace.experts.tolist(), trace.sequence_lengths, trace.num_layers, trace.num_experts, 1,
                            batching="recorded")
    offsets = np.concatenate([[0], np.cumsum(trace.sequence_lengths)])
    passes = [q for q in range(trace.num_sequences) if trace.sequence_lengths[q] > 0]
    assert sched.num_steps == ref.num_steps == len(passes)
    for s, q in enumerate(passes):
        rows = trace.experts[offsets[q]:offsets[q + 1]].astype(np.int64)
        assert sched.active[s] == rows.shape[0]
        for l in range(trace.num_layers):
            ids = rows[:, l].ravel()
            R, n = np.unique(ids[ids >= 0], return_counts=True)
            experts, counts = sched.R(s, l)
            assert experts.tolist() == R.tolist() and counts.tolist() == n.tolist()
            assert ref.R(s, l) == (R.tolist(), n.tolist())


# ------------------------------------------------------------------ imported logs
def test_imported_log_with_restarts_replays_recorded_by_default(tmp_path):
    paths, _ = write_logger(tmp_path)
    trace = import_trace(paths, model="mixtral-8x7b", layers=LOGGED, on_restart="new-step")
    by_default = fastsim.replay(trace, cache_slots=8, record=True)
    assert by_default.config["batching"] == "recorded"
    assert by_default.metrics["steps"] == len(PASSES) and by_default.metrics["tokens"] == sum(PASSES)
    asked = fastsim.replay(trace, cache_slots=8, batching="recorded", record=True)
    assert asked.metrics == by_default.metrics
    np.testing.assert_array_equal(asked.outcomes, by_default.outcomes)
    assert replay_reference(trace, cache_slots=8).metrics == by_default.metrics
    continuous = fastsim.replay(trace, cache_slots=8, batching="continuous")
    assert continuous.metrics["steps"] == sum(PASSES) and continuous.config["batching"] == "continuous"


def test_imported_log_through_parquet_and_the_cli(tmp_path, capsys):
    paths, _ = write_logger(tmp_path, phase=True)
    out = tmp_path / "passes.parquet"
    assert main(["trace", "import", *map(str, paths), "--model", "mixtral-8x7b", "--layers", "0,8,12",
                 "--on-restart", "new-step", "--out", str(out)]) == 0
    capsys.readouterr()
    back = read_trace(out)
    assert back.metadata["batching"] == "recorded"
    assert main(["replay", "--trace", str(out), "--cache-slots", "8", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["batching"] == "recorded" and printed["metrics"]["steps"] == len(PASSES)
    assert main(["replay", "--trace", str(out), "--cache-slots", "8"]) == 0
    assert "recorded batching" in capsys.readouterr().out
    assert main(["replay", "--trace", str(out), "--cache-slots", "8", "--batching", "continuous", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["steps"] == sum(PASSES)
    # the phase marks make the warm-up and prefill passes prefill steps
    prefill = fastsim.replay(back, cache_slots=8, prefill=True)
    assert prefill.metrics["decode_accesses"] > 0 and prefill.metrics["prefill_accesses"] > 0
    assert prefill.metrics["ttft_s"] > 0
    assert prefill.metrics == replay_reference(back, cache_slots=8, prefill=True).metrics


# ------------------------------------------------------------------ input errors
def test_recorded_batching_conflicts_are_config_errors():
    trace = golden_trace()
    kw = dict(model=model_for(2, 4, 1), hardware=hardware())
    with pytest.raises(fastsim.ConfigError, match=r"batch_size = 2 sets continuous-batching slots.*leave batch_size at 1"):
        fastsim.replay(trace, cache_slots=3, batch_size=2, **kw)
    with pytest.raises(fastsim.ConfigError, match=r"cache_bytes='auto'.*give cache_bytes or cache_slots"):
        fastsim.replay(trace, cache_bytes="auto", **kw)
    with pytest.raises(fastsim.ConfigError, match=r"batching must be one of 'continuous', 'recorded', got 'lockstep'"):
        fastsim.replay(trace, cache_slots=3, batching="lockstep", **kw)
    with pytest.raises(fastsim.ConfigError, match=r"step 0, layer 0 needs 2 experts at once at the recorded batching"):
        fastsim.replay(trace, cache_slots=1, **kw)
    # the same configuration at batch 2 is fine with continuous batching
    assert fastsim.replay(trace, cache_slots=3, batch_size=2, batching="continuous", **kw).metrics["steps"] == 2
    with pytest.raises(ValueError):
        replay_reference(trace, cache_slots=3, batch_size=2, **kw)


def test_cli_batching_errors(tmp_path, capsys):
    path = tmp_path / "golden.parquet"
    golden_trace().write(path)
    model = tmp_path / "model.toml"
    fields = {k: v for k, v in model_for(2, 4, 1).items() if k != "name"}
    model.write_text("[test-model]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items()))
    base = ["replay", "--trace", str(path), "--model", str(model), "--cache-slots", "3"]
    assert main(base + ["--batching", "lockstep"]) == 2
    assert "--batching must be one of continuous, recorded, got 'lockstep'" in capsys.readouterr().err
    assert main(base + ["--batch-size", "4"]) == 2
    assert "batch_size = 4" in capsys.readouterr().err
