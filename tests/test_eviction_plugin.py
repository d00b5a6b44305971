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



def test_hooks_are_inlined_into_the_core():
    # numba inlines an inline="always" callee only when it can resolve it before typing; the
    # entry points bind a policy's hooks so that it can. A hook left a separate function is called
    # with every array it takes reference-counted (measured 1.5-3x of a replay's time). lfu's
    # hooks, registered again as a user policy, compile uncached here, so their code is readable.
    from fastsim.timeline.entries import _ENTRIES

    register_eviction("lfu-inline-check", Hooks(*get_eviction("lfu").hooks), description="lfu, again", replace=True)
    keys = np.array([0, 1, 2, 3, 0, 4, 1, 5] * 3, np.int16).reshape(-1, 1, 1)
    model = dict(name="tiny", num_layers=1, num_experts=6, top_k=1, expert_bytes=1000,
                 dense_bytes_per_layer=0, expert_flops_per_token=10.0, dense_flops_per_token=5.0)
    trace = fastsim.Trace.from_arrays(keys, num_experts=6)
    for strategy in ("on-demand", "top-k"):
        fastsim.replay(trace, strategy, model=model, cache_slots=3, eviction="lfu-inline-check")
    entries = [fn for key, fn in _ENTRIES.items() if key[2] == "lfu-inline-check"]
    assert len(entries) == 2
    for fn in entries:
        for sig in fn.signatures:
            defined = re.findall(r"^define [^@]*@\"?([^\"(]+)", fn.inspect_llvm(sig), flags=re.M)
            hooks = [name for name in defined if "eviction3lfu" in name or "freq_lists" in name]
            assert not hooks, f"hooks compiled as separate functions: {hooks}"
