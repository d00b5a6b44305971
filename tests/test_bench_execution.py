"""The execution bench cases (SPEC section 7) on a tiny trace: one per option, every field, rates
and ratios consistent. No timing assertions: speed is what the bench reports."""
from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from fastsim.bench import get_cases
from fastsim.bench.execution_cases import CASES as OPTIONS
from fastsim.cli.main import main

CASES = [f"execution-{name}" for name in OPTIONS]


def test_one_case_per_option_registered():
    assert [n for n in get_cases() if n.startswith("execution-")] == CASES
    assert set(OPTIONS) == {"layered", "demand-first", "inflight-cap", "cpu", "zero-copy", "upload-cap", "exceed",
                            "host-tier", "prefill"}
    assert all(get_cases()[n].target == "ratio >= 0.5" for n in CASES)


@pytest.fixture(scope="module")
def rows():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--json", "--quiet", "--tokens", "4000", "--repeat", "1", "--cases", ",".join(CASES)])
    assert code == 0
    return {r["case"]: r for r in json.loads(out.getvalue())["cases"]}


def test_every_case_reports_a_ratio_to_the_simple_timeline(rows):
    assert list(rows) == CASES
    for name, row in rows.items():
        assert row["unit"] == "tokens/s" and row["baseline"].startswith("fastsim simple timeline")
        for field in ("fastsim_per_s", "baseline_per_s", "ratio", "fastsim_s", "baseline_s"):
            assert isinstance(row[field], float) and math.isfinite(row[field]) and row[field] > 0, (name, field)
        assert row["fastsim_per_s"] == pytest.approx(row["tokens"] / row["fastsim_s"])
        assert row["ratio"] == pytest.approx(row["fastsim_per_s"] / row["baseline_per_s"])
        assert row["tokens"] == 400 and row["option"] == OPTIONS[name[len("execution-"):]][0]
