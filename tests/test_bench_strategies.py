"""The strategy and sweep cases of ``fastsim bench``, end to end at a tiny scale.

No timing assertions: the bench reports speed; these tests check that every case runs, reports
every field, replays the workload it claims and that its internal checks pass.
"""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from fastsim.bench import get_cases
from fastsim.bench import strategy_cases, sweep_case
from fastsim.bench.runner import COMMON_FIELDS
from fastsim.cli.main import main
from fastsim.trace.model import Trace

TOKENS = 2000
STRATEGIES = ("on-demand", "oracle", "multi-look", "top-k", "intelligent")
VS_REFERENCE = [f"{s}-vs-reference" for s in ("oracle", "multi-look", "top-k", "intelligent")]
THROUGHPUT = [f"{s}-throughput" for s in STRATEGIES]
CASES = VS_REFERENCE + THROUGHPUT + ["sweep"]
VS_FIELDS = (
    "fastsim_s", "baseline_s", "tokens", "accesses", "full_tokens", "full_accesses", "kernel_full_s",
    "kernel_full_per_s", "cache_slots", "hit_rate", "prefetch_loads", "metrics_agree",
)
EXTRA = {
    **{c: VS_FIELDS + ("ratio_full",) for c in VS_REFERENCE if c != "multi-look-vs-reference"},
    "multi-look-vs-reference": VS_FIELDS + (
        "layers", "short_prefix_tokens", "baseline_short_s", "baseline_full_s_extrapolated",
        "baseline_full_per_s_extrapolated", "ratio_full_extrapolated", "fit_linear_s_per_token",
        "fit_quadratic_s_per_token2",
    ),
    **{
        c: tuple(f"{t}_{f}" for t in ("switch", "qwen") for f in (
            "tokens", "accesses", "s", "per_s", "cache_slots", "hit_rate", "prefetch_loads",
        ))
        for c in THROUGHPUT
    },
    "sweep": (
        "one_job_s", "many_jobs_s", "no_worker_compilation", "configurations", "jobs", "failures",
        "tasks_per_run", "tokens", "cache_slots", "one_job_task_s", "many_jobs_task_s", "worker_pids",
        "worker_compilations", "worker_cache_loads", "in_process_compilations",
    ),
}
SIDE = 2  # a 2 x 2 top-k grid for the sweep case


@pytest.fixture(scope="module")
def rows():
    """Every new case once, at 2000 tokens, through ``fastsim bench --json``."""
    saved = sweep_case.GRID_SIDE
    sweep_case.GRID_SIDE = SIDE
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["bench", "--json", "--quiet", "--tokens", str(TOKENS), "--repeat", "1", "--cases", ",".join(CASES)])
    finally:
        sweep_case.GRID_SIDE = saved
    assert code == 0
    result = json.loads(out.getvalue())
    assert [r["case"] for r in result["cases"]] == CASES
    return {r["case"]: r for r in result["cases"]}


def test_cases_are_registered_by_name():
    names = list(get_cases())
    for case in CASES:
        assert case in names
    # on-demand's comparison with its reference is the older kernel-vs-reference case
    assert "on-demand-vs-reference" not in names


def test_every_field_is_reported(rows):
    for name, row in rows.items():
        for field in COMMON_FIELDS + EXTRA[name]:
            assert field in row, (name, field)
            assert row[field] is not None or field in ("baseline", "baseline_per_s", "ratio"), (name, field)


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_vs_reference_rates_and_agreement(rows):
    for name in VS_REFERENCE:
        row = rows[name]
        assert row["metrics_agree"] is True, name
        assert row["unit"] == "accesses/s"
        for field in ("fastsim_per_s", "baseline_per_s", "ratio", "fastsim_s", "baseline_s", "kernel_full_s"):
            assert _positive(row[field]), (name, field)
        assert row["fastsim_per_s"] == pytest.approx(row["accesses"] / row["fastsim_s"])
        assert row["baseline_per_s"] == pytest.approx(row["accesses"] / row["baseline_s"])
        assert row["ratio"] == pytest.approx(row["fastsim_per_s"] / row["baseline_per_s"])
        assert row["kernel_full_per_s"] == pytest.approx(row["full_accesses"] / row["kernel_full_s"])
        assert 0 < row["tokens"] <= row["full_tokens"]


def test_vs_reference_workloads(rows):
    # 2000 // 50 is below the floor of 400 tokens; switch is top-1 over 12 layers at batch 1,
    # and a generated trace loses no entries, so every token makes one access per layer
    full = max(strategy_cases.COMPARE_MIN_TOKENS, TOKENS // strategy_cases.COMPARE_DIVISOR)
    for name in ("oracle-vs-reference", "top-k-vs-reference", "intelligent-vs-reference"):
        row = rows[name]
        assert row["full_tokens"] == full
        assert row["full_accesses"] == 12 * full
        assert row["accesses"] == 12 * row["tokens"]
        assert row["cache_slots"] == 512
        assert row["prefetch_loads"] > 0
        assert row["ratio_full"] == pytest.approx(row["kernel_full_per_s"] / row["baseline_per_s"])
    ml = rows["multi-look-vs-reference"]
    assert ml["layers"] == 1 and ml["full_tokens"] == full
    assert ml["full_accesses"] == full and ml["accesses"] == ml["tokens"]
    assert ml["tokens"] == max(strategy_cases.MULTI_LOOK_MIN_PREFIX, TOKENS // strategy_cases.MULTI_LOOK_PREFIX_DIVISOR)
    assert ml["short_prefix_tokens"] == ml["tokens"] // 2
    assert ml["fit_quadratic_s_per_token2"] >= 0 and ml["fit_linear_s_per_token"] >= 0
    a, b, n = ml["fit_linear_s_per_token"], ml["fit_quadratic_s_per_token2"], ml["full_tokens"]
    assert ml["baseline_full_s_extrapolated"] == pytest.approx(a * n + b * n * n)
    assert ml["ratio_full_extrapolated"] == pytest.approx(ml["baseline_full_s_extrapolated"] / ml["kernel_full_s"])


def test_throughput_workloads(rows):
    qwen_tokens = TOKENS // strategy_cases.QWEN_DIVISOR
    for name in THROUGHPUT:
        row = rows[name]
        assert row["baseline"] is None and row["ratio"] is None
        assert row["switch_tokens"] == TOKENS and row["qwen_tokens"] == qwen_tokens
        # one access per layer and token at top-1; eight distinct experts per layer at top-8
        assert row["switch_accesses"] == 12 * TOKENS
        assert row["qwen_accesses"] == 28 * 8 * qwen_tokens
        assert (row["switch_cache_slots"], row["qwen_cache_slots"]) == (512, 1024)
        for label in ("switch", "qwen"):
            assert _positive(row[f"{label}_s"])
            assert row[f"{label}_per_s"] == pytest.approx(row[f"{label}_accesses"] / row[f"{label}_s"])
            assert 0 <= row[f"{label}_hit_rate"] <= 1
        assert row["fastsim_per_s"] == row["switch_per_s"]
    assert rows["on-demand-throughput"]["switch_prefetch_loads"] == 0
    assert rows["on-demand-throughput"]["qwen_prefetch_loads"] == 0
    assert rows["oracle-throughput"]["switch_prefetch_loads"] > 0


def test_sweep_case(rows):
    row = rows["sweep"]
    assert row["configurations"] == SIDE * SIDE
    assert row["failures"] == 0
    assert row["jobs"] == 2
    assert row["tokens"] == TOKENS // sweep_case.TRACE_DIVISOR
    assert row["worker_compilations"] == 0 and row["in_process_compilations"] == 0
    assert row["no_worker_compilation"] is True
    assert row["worker_pids"] >= 1
    assert row["ratio"] == pytest.approx(row["one_job_s"] / row["many_jobs_s"])
    assert row["fastsim_per_s"] == pytest.approx(row["configurations"] / row["many_jobs_s"])


def test_sweep_spec_is_the_issue_grid():
    spec = sweep_case.sweep_spec(100_000)
    grid = spec["strategies"]["top-k"]
    assert len(grid["k"]) == 16 and len(set(grid["k"])) == 16
    assert len(grid["decay_factor"]) == 16 and len(set(grid["decay_factor"])) == 16
    assert all(0 < d < 1 for d in grid["decay_factor"])
    # every k's prefetch set (one list per layer) fits in the cache
    assert 12 * max(grid["k"]) <= spec["caches"]
    assert spec["baseline"] is False and spec["traces"][0]["tokens"] == 100_000
    from fastsim.sweep import load_spec
    from fastsim.sweep.grid import expand

    loaded = load_spec(spec)
    configs, _ = expand(loaded, {t.name: (loaded.models or (_model(t),)) for t in loaded.traces})
    assert len(configs) == 256


def _model(t):
    from fastsim.profiles import model_profile

    return model_profile(t.model)


def test_prefix_cuts_sequences():
    experts = (np.arange(12) % 5).astype(np.int16).reshape(12, 1, 1)
    trace = Trace.from_arrays(experts, num_experts=5, sequence_lengths=[3, 4, 5])
    part = strategy_cases.prefix(trace, 5)
    assert part.sequence_lengths.tolist() == [3, 2]
    assert np.array_equal(part.experts, experts[:5])
    assert strategy_cases.prefix(trace, 7).sequence_lengths.tolist() == [3, 4]
    assert strategy_cases.prefix(trace, 8).sequence_lengths.tolist() == [3, 4, 1]
    assert strategy_cases.prefix(trace, 12) is trace


def test_quadratic_fit_recovers_the_curve():
    a, b = 2e-3, 5e-6
    t = lambda n: a * n + b * n * n  # noqa: E731
    fa, fb = strategy_cases.quadratic_fit(1000, t(1000), 2000, t(2000))
    assert fa == pytest.approx(a) and fb == pytest.approx(b)
    # a second point faster per token than the first cannot be a growing quadratic: linear fit
    fa, fb = strategy_cases.quadratic_fit(1000, 2.0, 2000, 3.0)
    assert fb == 0.0 and fa == pytest.approx(3.0 / 2000)
    # growth faster than quadratic (4.5x for twice the tokens) would need a < 0: pure parabola
    fa, fb = strategy_cases.quadratic_fit(1000, 2.0, 2000, 9.0)
    assert fa == 0.0 and fb == pytest.approx(9.0 / 2000**2)
