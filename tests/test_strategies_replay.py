"""Every built-in strategy: full kernel replays equal the reference timeline driving the
reference strategy (metrics, every access outcome, every wanted list).

Every parameter of every strategy is drawn, small enough that each component fires on short
traces (multi-look's temporal period included) and its limits (pattern and successor caps,
component list lengths, the lazy-decay fold at tiny decay factors) are reached; profiles are drawn
with latency, launch cost and memory-bound terms.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.reference import replay_reference
from fastsim.replay import schedule_for
from fastsim.strategies import get_strategy, list_strategies

from hypothesis_budget import examples
from timeline_helpers import hardware_profiles, model_profiles, traces

BUILTIN = ["on-demand", "oracle", "multi-look", "top-k", "intelligent"]

# tiny decay factors fold the lazy-decay scale within a few calls
DECAYS = st.sampled_from([1e-9, 0.01, 0.5, 0.9, 0.999, 1.0])
PARAMS = {
    "on-demand": {},
    "oracle": {"lookahead": st.integers(1, 8)},
    "multi-look": {
        "pattern_length": st.integers(1, 4),
        "lookahead_steps": st.integers(1, 6),
        "min_pattern_frequency": st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
        "max_predictions": st.integers(1, 40),
        "max_patterns": st.sampled_from([1, 2, 5, 1 << 20]),
        "max_successors": st.sampled_from([1, 3, 10, 1 << 22]),
        "temporal_period": st.integers(1, 8),
        "temporal_window": st.integers(1, 12),
    },
    "top-k": {
        "k": st.integers(1, 12), "decay_factor": DECAYS, "window": st.integers(1, 12),
        "update_frequency": st.integers(1, 6), "min_count_threshold": st.sampled_from([0.0, 1.0, 2.5]),
        "order": st.integers(0, 1), "weighting": st.integers(0, 1),
    },
    "intelligent": {
        "adaptation_rate": st.sampled_from([1e-3, 0.1, 0.7]),
        "decay_rate": st.sampled_from([1e-9, 0.01, 0.5, 0.9, 0.99, 1.0]),
        "weight_learning_rate": st.sampled_from([0.0, 0.01, 0.3]),
        "max_predictions": st.integers(1, 40),
        "transition_limit": st.integers(0, 14),
        "frequency_limit": st.integers(0, 10),
        "recency_limit": st.integers(0, 8),
        "pattern_limit": st.integers(0, 10),
        "transition_threshold": st.sampled_from([0.0, 0.05, 0.3]),
        "pattern_threshold": st.sampled_from([0.0, 0.1, 0.4]),
        "history_window": st.integers(1, 12),
        "zero_score_fill": st.booleans(),
        "weight_update": st.integers(0, 1),
        "max_transitions": st.sampled_from([0, 1, 3, 32]),
    },
}


def test_every_builtin_is_registered():
    assert set(BUILTIN) <= set(list_strategies())


@pytest.mark.parametrize("name", BUILTIN)
def test_every_parameter_is_drawn(name):
    # a parameter added to a strategy must be added to the draws above
    assert set(PARAMS[name]) == set(get_strategy(name).param_names())


@pytest.mark.parametrize("name", BUILTIN)
@examples(0.3)
@given(data=st.data(), trace=traces(max_tokens=48, max_experts=40, max_layers=3, max_k=4, max_sequences=3))
def test_kernel_replay_equals_reference_replay(name, data, trace):
    params = data.draw(st.fixed_dictionaries(PARAMS[name]))
    batch = data.draw(st.integers(1, 4))
    eviction = data.draw(st.sampled_from(["lru", "belady"]))
    ws = schedule_for(trace, batch, True).max_working_set
    C = ws + data.draw(st.integers(0, trace.num_layers * trace.num_experts))
    kw = dict(
        model=data.draw(model_profiles(trace.num_layers, trace.num_experts, trace.top_k)),
        hardware=data.draw(hardware_profiles()), cache_slots=C, eviction=eviction,
        batch_size=batch, max_prefetch_loads=data.draw(st.sampled_from([None, 0, 2])), per_step=True, record=True,
        **params,
    )
    a = fastsim.replay(trace, name, **kw)
    b = replay_reference(trace, name, **kw)
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    np.testing.assert_array_equal(a.step_stall_s, b.step_stall_s)
    assert [w.tolist() for w in a.wanted] == [w.tolist() for w in b.wanted]
