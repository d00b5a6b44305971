"""Sweep specs and profiles under mutation: every outcome is a load or one error naming a key.

A valid spec (and a valid profile mapping) has values replaced with wrong types, huge integers,
negative numbers, NaN and infinite floats, empty lists and tables, or gains unknown keys. Loading
must then succeed or raise one :class:`SpecError` (:class:`ProfileError`) whose message names a
key the document has; never another exception. Only loading runs: no sweep, no replay.
"""
from __future__ import annotations

import dataclasses
import math
import re
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_helpers import bad_sweep_stderr
from fastsim.errors import ProfileError, SpecError
from fastsim.profiles import hardware_profile, model_profile
from fastsim.strategies import get_strategy
from fastsim.sweep import load_spec
from hypothesis_budget import examples

INT64_MAX = 2**63 - 1

SPEC = {
    "name": "fuzz", "description": "every axis once", "seed": 3, "runs": 2,
    "hardware": ["rtx3090"], "batch_sizes": [1, 4], "caches": ["working-set", 64, "1GB"],
    "evictions": ["lru", {"name": "score-aware", "alpha": [0.3, 0.5]}],
    "cache_partitions": ["global", "per-layer"], "pinned": [0, 4, [0, 129]], "pin_profiles": [1.0, 0.5],
    "max_prefetch_loads": ["none", 2], "timelines": ["simple", "layered"], "links": ["fifo"],
    "max_inflight_prefetches": ["none", 2], "miss_executions": ["load", "cpu"], "max_uploads_per_layer": ["none", 1],
    "overflows": ["error"], "prefill": [False], "reserve_bytes": ["2GiB", 0], "context_tokens": [64],
    "traces": [{"name": "t", "model": "switch-base-128", "tokens": 64, "sequences": 2, "seed": 1, "zipf_s": 1.1,
                "reuse": 0.2, "lengths": "equal", "prompt_tokens": 4, "router_scores": True}],
    "strategies": {"top-k": {"k": [4, 8], "decay_factor": 0.99}, "oracle": {"lookahead": 2}},
    "baseline": {"strategy": "on-demand", "cache": "working-set", "eviction": "lru", "pinned": 0,
                 "pin_profile": 1.0, "cache_partition": "global", "params": {}},
    "bound": False,
}
MODEL = {**model_profile("mixtral-8x7b").as_dict(), "name": "m"}
HARDWARE = {**hardware_profile("rtx3090").as_dict(), "name": "h", "host_bytes": 64 * 10**9,
            "nvme_bytes_per_s": 3e9, "layer_overhead_s": 1e-5, "expert_efficiency": 0.8}

# Integers small enough not to make the zero-token generator check allocate much, and the
# boundaries and beyond of 64 bits; never the middle ground in between.
HUGE = st.sampled_from([INT64_MAX, INT64_MAX + 1, 2**53 + 1, 10**20, -(10**20), 10**400])
INTS = st.integers(-5, 200) | HUGE
BAD_VALUES = st.one_of(
    INTS, st.booleans(), st.none(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300]), st.text(alphabet="abcxyz-_. ", max_size=6),
    st.just([]), st.just({}), st.lists(INTS, min_size=1, max_size=3), st.just([[]]),
)
UNKNOWN_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6).map(lambda s: "x_" + s)


def _paths(node, prefix=()):
    """Every path to a value inside ``node`` (tables and lists included, the root excluded)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _tables(node, prefix=()):
    """Every path to a table inside ``node``, the root included."""
    if isinstance(node, dict):
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _tables(value, prefix + (key,))


def _copy(node):
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def _at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw, base):
    """``base`` with one to three values replaced, integers made huge or unknown keys added."""
    doc = _copy(base)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "huge", "unknown"]))
        paths = list(_paths(doc))
        if how == "huge":  # an integer the document holds, at or beyond 64 bits
            paths = [p for p in paths if type(_at(doc, p)) is int]
        if how == "unknown":
            table = draw(st.sampled_from(list(_tables(doc))))
            _at(doc, table)[draw(UNKNOWN_KEYS)] = _copy(draw(BAD_VALUES))
        elif paths:
            path = draw(st.sampled_from(paths))
            value = draw(HUGE if how == "huge" else BAD_VALUES)
            _at(doc, path[:-1])[path[-1]] = _copy(value)
    return doc


_COMPONENT = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def _names_a_key(path_text: str, doc) -> bool:
    """``path_text`` (``traces[0].tokens``) leads to a value of ``doc``; a scalar given where a
    list was expected stands as its own entry 0."""
    if path_text == "(top level)":
        return True
    node = doc
    for index, key in _COMPONENT.findall(path_text):
        if index:
            if isinstance(node, list):
                if int(index) >= len(node):
                    return False
                node = node[int(index)]
            elif int(index) != 0:
                return False
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return False
    return True


def test_the_unmutated_documents_load():
    assert load_spec(SPEC).runs == 2
    assert model_profile(MODEL).name == "m" and hardware_profile(HARDWARE).name == "h"


# Fields of a loaded spec that hold values as the user wrote them (checked where they are used).
_AS_WRITTEN = {"raw", "locator", "shaped", "combos", "params"}


def _ints(node):
    """Every integer a loaded spec resolved, walking dataclasses, tuples, lists and dicts."""
    if isinstance(node, bool):
        return
    if isinstance(node, int):
        yield node
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            if f.name not in _AS_WRITTEN:
                yield from _ints(getattr(node, f.name))
    elif isinstance(node, dict):
        for value in node.values():
            yield from _ints(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _ints(value)


def _fits(spec) -> None:
    """A spec that loads holds no integer a results table or a kernel cannot."""
    assert all(-INT64_MAX - 1 <= v <= INT64_MAX for v in _ints(spec))
    for seed in [spec.seed] + [t.seed for t in spec.traces if t.seed is not None]:
        assert seed + spec.runs - 1 <= INT64_MAX  # the last run's generator seed
    for grid in spec.grids:
        kinds = {p.name: p.kind for p in get_strategy(grid.strategy).params}
        for combo in grid.combos:
            assert all(abs(float(v)) <= 2**53 for k, v in combo.items() if kinds[k] == "int")


@examples(1.0)
@given(mutated(SPEC))
def test_a_mutated_spec_loads_or_fails_naming_a_key(doc):
    try:
        spec = load_spec(doc)
    except SpecError as exc:
        text = str(exc)
        assert text.startswith("sweep spec: "), text
        path_text = text[len("sweep spec: "):].split(": ", 1)[0]
        assert _names_a_key(path_text, doc), text
    else:
        _fits(spec)


@examples(0.5)
@given(st.sampled_from([("model", MODEL, model_profile), ("hardware", HARDWARE, hardware_profile)]).flatmap(
    lambda kind: st.tuples(st.just(kind), mutated(kind[1]))))
def test_a_mutated_profile_loads_or_fails_naming_a_field(case):
    (kind, _, resolve), doc = case
    try:
        resolve(doc)
    except ProfileError as exc:
        text = str(exc)
        named = re.findall(r"field '(\w+)'", text)
        assert named and all(n in doc or n == "size" for n in named), text


# --------------------------------------------------------------------- out-of-range integers


@pytest.mark.parametrize("key, value, says", [
    ("seed", 99999999999999999999, "seed"),
    ("seed", INT64_MAX, "seed"),  # with runs = 2, run 1 would generate with INT64_MAX + 1
    ("runs", 2**64, "runs"),
    ("batch_sizes", [2**63], "batch_sizes[0]"),
    ("caches", ["1e30GB"], "caches[0]"),
    ("max_prefetch_loads", [2**70], "max_prefetch_loads[0]"),
    ("pinned", [[0, 2**64]], "pinned[0]"),
    ("context_tokens", [2**64], "context_tokens[0]"),
    ("max_uploads_per_layer", ["none", 2**64], "max_uploads_per_layer[1]"),
])
def test_an_integer_beyond_64_bits_is_a_spec_error_naming_its_key(key, value, says):
    doc = {**_copy(SPEC), key: value}
    with pytest.raises(SpecError, match=re.escape(f"sweep spec: {says}: ")):
        load_spec(doc)


@pytest.mark.parametrize("where, value, says", [
    (("strategies", "top-k", "k"), 2**60, "strategies.top-k.k"),  # parameters travel as float64
    (("strategies", "top-k", "decay_factor"), 10**400, "strategies.top-k.decay_factor"),
    (("traces", 0, "seed"), 2**64, "traces[0].seed"),
    (("traces", 0, "zipf_s"), 10**400, "traces[0].zipf_s"),
    (("traces", 0, "model"), [2**63, 8, 2], "traces[0].model[0]"),
    (("evictions", 1, "alpha"), 10**400, "evictions[1].alpha"),
    (("baseline", "pinned"), 2**64, "baseline.pinned"),
])
def test_a_nested_integer_beyond_range_names_its_key(where, value, says):
    doc = _copy(SPEC)
    _at(doc, where[:-1])[where[-1]] = value
    with pytest.raises(SpecError, match=re.escape(f"sweep spec: {says}: ")):
        load_spec(doc)


def test_the_largest_seed_that_fits_loads():
    assert load_spec({**_copy(SPEC), "seed": INT64_MAX - 1}).seed == INT64_MAX - 1


def test_a_huge_seed_in_a_toml_spec_exits_2_naming_seed(tmp_path):
    err = bad_sweep_stderr(tmp_path, textwrap.dedent("""\
        seed = 99999999999999999999
        [[traces]]
        model = "switch-base-128"
        tokens = 20
        [strategies.on-demand]
        """))
    assert "line 1: seed: expected an integer <= 9223372036854775807" in err


@pytest.mark.parametrize("field, value", [
    ("num_layers", 99999999999999999999), ("expert_bytes", 2**63), ("dense_bytes_total", 1e300),
    ("expert_flops_per_token", 10**400),
])
def test_a_profile_integer_beyond_64_bits_is_a_profile_error_naming_the_field(tmp_path, field, value):
    with pytest.raises(ProfileError, match=f"field '{field}'"):
        model_profile({**MODEL, field: value})
    path = tmp_path / "m.toml"
    figures = {**MODEL, field: value}
    path.write_text("[m]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in figures.items() if k != "name"))
    with pytest.raises(ProfileError, match=f"field '{field}'"):
        model_profile(path)


def _toml(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def test_a_huge_layer_size_names_the_size_list():
    sizes = [1000, 2**64]
    with pytest.raises(ProfileError, match=r"field 'size' \(expert_bytes\[1\]\) must be at most"):
        model_profile({**MODEL, "num_layers": 2, "expert_bytes": sizes})
