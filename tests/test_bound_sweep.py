"""``bound = true`` in a sweep spec: the bound and headroom columns, and the report's section."""
from __future__ import annotations

import pytest

import fastsim
from fastsim.errors import SpecError

SPEC = {
    "name": "bound-test", "bound": True,
    "traces": [{"name": "g", "model": "switch-base-128", "tokens": 60, "sequences": 2}],
    "hardware": "rtx3090", "caches": [24, 96], "evictions": ["lru", "belady"], "runs": 2,
    "strategies": {"on-demand": {}, "oracle": {"lookahead": [1, 3]}},
}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return fastsim.sweep({**SPEC, "out": str(tmp_path_factory.mktemp("sweep"))})


def test_bound_columns(table):
    rows = table.to_pylist()
    assert all(r["error"] is None for r in rows)
    groups = {}
    for r in rows:
        assert r["bound_total_time_s"] is not None
        assert r["bound_total_time_s"] <= r["total_time_s"] + 1e-12
        key = (r["run"], r["cache_request"])
        groups.setdefault(key, set()).add(r["bound_total_time_s"])
    assert all(len(v) == 1 for v in groups.values())  # one bound per trace run and cache
    for r in rows:
        od = [o for o in rows if o["strategy"] == "on-demand" and o["run"] == r["run"]
              and o["cache_request"] == r["cache_request"] and o["eviction"] == r["eviction"]]
        assert len(od) == 1
        head = od[0]["total_time_s"] - r["bound_total_time_s"]
        if head > 0:
            assert r["headroom_share"] == pytest.approx((od[0]["total_time_s"] - r["total_time_s"]) / head)
        else:
            assert r["headroom_share"] is None


def test_bound_matches_the_api(table):
    from fastsim.sweep.spec import generate_with, load_spec

    spec = load_spec(SPEC)
    t = spec.traces[0]
    trace = generate_with(t.model, t.tokens, t.sequences, t.run_seed(spec.seed, 1), t.params)
    want = fastsim.bound(trace, "switch-base-128", "rtx3090", 24, 1).total_time_s
    got = {r["bound_total_time_s"] for r in table.to_pylist() if r["run"] == 1 and r["cache_request"] == "24 slots"}
    assert got == {want}


def test_without_the_key_no_columns(tmp_path):
    spec = {**SPEC, "bound": False, "runs": 1, "caches": [24], "evictions": ["lru"], "out": str(tmp_path)}
    assert "bound_total_time_s" not in fastsim.sweep(spec).column_names


def test_bound_key_must_be_boolean():
    from fastsim.sweep.spec import load_spec

    with pytest.raises(SpecError, match="bound: expected true or false"):
        load_spec({**SPEC, "bound": "yes"})


def test_report_section(table, tmp_path):
    from fastsim.report.build import write_report

    res = write_report(table, tmp_path, published=False, plots=False)
    text = res.markdown.read_text()
    assert "## Lower bound and headroom" in text
    assert "### `g`, `switch-base-128` on `rtx3090`, batch 1, cache 24 slots" in text
    assert "| configuration | latency (ms) | bound (ms) | headroom share |" in text
