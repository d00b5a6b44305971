"""The ``bound-vs-replay`` bench case end to end on a tiny trace (no timing assertions)."""
from __future__ import annotations

import contextlib
import io
import json

from fastsim.bench import get_cases
from fastsim.cli.main import main


def test_bound_case_runs():
    assert "bound-vs-replay" in get_cases()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--json", "--quiet", "--tokens", "2000", "--repeat", "1", "--cases", "bound-vs-replay"])
    assert code == 0
    (row,) = json.loads(out.getvalue())["cases"]
    assert row["case"] == "bound-vs-replay" and row["unit"] == "positions/s"
    for field in ("bound_s", "replay_s", "positions", "horizon", "bound_total_time_s", "replay_total_time_s"):
        assert row[field] is not None, field
    assert row["tokens"] == 400 and row["positions"] == 400 * 12
    assert 0 < row["bound_total_time_s"] <= row["replay_total_time_s"]
    assert row["ratio"] > 0
