"""Every built-in strategy: full kernel replays equal the reference timeline driving the
reference strategy (metrics, every access outcome, every wanted list)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastsim
from fastsim.reference import replay_reference
from fastsim.replay import schedule_for
from fastsim.strategies import list_strategies

from timeline_helpers import hardware, model_for, traces

BUILTIN = ["on-demand", "oracle", "multi-look", "top-k", "intelligent"]

# small parameter values make every component of every strategy fire on short traces
PARAMS = {
    "on-demand": st.just({}),
    "oracle": st.fixed_dictionaries({"lookahead": st.integers(1, 6)}),
    "multi-look": st.fixed_dictionaries({
        "pattern_length": st.integers(1, 3), "min_pattern_frequency": st.sampled_from([0.0, 1.0, 3.0]),
        "max_predictions": st.integers(1, 32),
    }),
    "top-k": st.fixed_dictionaries({
        "k": st.integers(1, 12), "decay_factor": st.sampled_from([0.5, 0.9, 0.999, 1.0]),
        "window": st.integers(1, 10), "update_frequency": st.integers(1, 5),
    }),
    "intelligent": st.fixed_dictionaries({
        "max_predictions": st.integers(1, 32), "decay_rate": st.sampled_from([0.5, 0.9, 0.99, 1.0]),
        "zero_score_fill": st.booleans(),
    }),
}


def test_every_builtin_is_registered():
    assert set(BUILTIN) <= set(list_strategies())


@pytest.mark.parametrize("name", BUILTIN)
@settings(max_examples=60)
@given(data=st.data(), trace=traces(max_tokens=30, max_experts=40, max_layers=3, max_k=4, max_sequences=3))
def test_kernel_replay_equals_reference_replay(name, data, trace):
    params = data.draw(PARAMS[name])
    batch = data.draw(st.integers(1, 4))
    eviction = data.draw(st.sampled_from(["lru", "belady"]))
    ws = schedule_for(trace, batch, True).max_working_set
    C = ws + data.draw(st.integers(0, trace.num_layers * trace.num_experts))
    kw = dict(
        model=model_for(trace.num_layers, trace.num_experts, trace.top_k),
        hardware=hardware(data.draw(st.sampled_from([1e8, 1e10])), 1e-8), cache_slots=C, eviction=eviction,
        batch_size=batch, max_prefetch_loads=data.draw(st.sampled_from([None, 2])), per_step=True, record=True,
        **params,
    )
    a = fastsim.replay(trace, name, **kw)
    b = replay_reference(trace, name, **kw)
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)
    assert [w.tolist() for w in a.wanted] == [w.tolist() for w in b.wanted]
