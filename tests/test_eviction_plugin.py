"""The eviction plug-in interface, through the exact code of ``docs/eviction.md``.

The doc's python blocks run as written (they register "mru"); the policy is then checked against
hand-derived hits, against its reference on drawn traces with every strategy, partitions and pins,
and registration errors are checked.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastsim
from fastsim.errors import ConfigError
from fastsim.eviction import Hooks, get_eviction, list_evictions, register_eviction
from fastsim.reference import replay_reference

from test_eviction_replay import cases

DOC = Path(__file__).resolve().parent.parent / "docs" / "eviction.md"


def doc_code() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 4, "the walkthrough lost its code blocks"
    return "\n".join(blocks[1:])  # the first block is a usage sketch on a trace it does not define


@pytest.fixture(scope="module")
def doc_namespace():
    ns: dict = {"__name__": "eviction_doc"}
    exec(compile(doc_code(), str(DOC), "exec"), ns)
    return ns


def test_doc_example_numbers(doc_namespace):
    # a cycle 0 1 2 3 0 1 2 3 ... through 3 slots: LRU always evicts the key needed next (0 hits).
    # MRU: 0 1 2 fill; 3 evicts 2 (most recent) -> {0 1 3}; 0 hit, 1 hit, 2 evicts 1 -> {0 3 2};
    # 3 hit, 0 hit, 1 evicts 0 -> {3 2 1}; 2 hit, 3 hit, 0 evicts 3 -> {2 1 0}; 1 hit, 2 hit,
    # 3 evicts 2 -> {1 0 3}; 0 hit, 1 hit: 11 hits in 20 accesses.
    ns = doc_namespace
    assert ns["lru_run"].metrics["hits"] == 0
    assert ns["mru_run"].metrics["hits"] == 11
    assert "mru" in list_evictions() and get_eviction("mru").description.startswith("most recently")


@given(data=st.data())
def test_kernel_equals_reference(doc_namespace, data):
    trace, strategy, kw = data.draw(cases("mru"))
    try:
        a = fastsim.replay(trace, strategy, **kw)
    except ConfigError:
        return
    b = replay_reference(trace, strategy, **kw)
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(a.outcomes, b.outcomes)
    np.testing.assert_array_equal(a.step_time_s, b.step_time_s)


def test_registration_errors(doc_namespace):
    hooks = doc_namespace["MRU_HOOKS"]
    with pytest.raises(ConfigError, match="already registered"):
        register_eviction("mru", hooks)
    with pytest.raises(ConfigError, match="already registered"):
        register_eviction("lru", hooks, replace=True)  # built-ins cannot be replaced
    with pytest.raises(ConfigError, match="must be a fastsim.eviction.Hooks"):
        register_eviction("bad", tuple(hooks))
    with pytest.raises(ConfigError, match="numba.njit"):
        register_eviction("bad", Hooks(*([lambda *a: None] + list(hooks[1:]))))
    with pytest.raises(ConfigError, match="non-empty name"):
        register_eviction("", hooks)
