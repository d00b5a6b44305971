"""Resuming a sweep killed with SIGKILL gives the table of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from fastsim.sweep import run_sweep

REPO = Path(__file__).resolve().parents[1]

# about 40 top-k replays of a 6000-token trace: a few seconds, one task per configuration
SPEC = """\
runs = 2
caches = [48]

[[traces]]
name = "g"
model = "switch-base-128-decoder"
tokens = 6000
sequences = 4

[strategies.top-k]
k = [2, 4, 8, 16, 32]
decay_factor = [0.9, 0.99]
window = [10, 20]
"""


def _cli(spec: Path, out: Path, *extra):
    return [sys.executable, "-m", "fastsim.cli.main", "sweep", str(spec), "--out", str(out), "-q", *extra]


def test_resume_after_sigkill(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    out = tmp_path / "killed"
    shards = out / "shards"
    proc = subprocess.Popen(
        _cli(spec, out, "--chunk-size", "1"), cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if shards.is_dir() and len(list(shards.glob("shard-*.parquet"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.parquet").exists()
    kept = len(list(shards.glob("shard-*.parquet")))
    assert kept >= 3

    resumed = subprocess.run(_cli(spec, out, "--resume"), cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    final = pq.read_table(out / "results.parquet")

    fresh = run_sweep(spec, n_jobs=1, out=tmp_path / "fresh")
    assert final.num_rows == fresh.table.num_rows == (1 + 20) * 2
    assert final.drop(["wall_s"]).equals(fresh.table.drop(["wall_s"]))

    # a second resume finds every row done and runs nothing
    again = run_sweep(spec, n_jobs=1, out=out, resume=True)
    assert again.tasks == [] and again.skipped == final.num_rows
    assert again.table.drop(["wall_s"]).equals(final.drop(["wall_s"]))


# the SPEC section 6 axes: evictions with parameters, partitions, pin counts and pin lists
ORG_SPEC = """\
runs = 2
caches = [24]
evictions = ["lru", {name = "activation-aware", smoothing = [0.5, 2.0]}]
cache_partitions = ["global", "per-layer"]
pinned = [0, 3, [1, 130]]
pin_profiles = [1.0, 0.5]

[[traces]]
name = "g"
model = "switch-base-128-decoder"
tokens = 300
sequences = 3

[strategies.on-demand]

[strategies.top-k]
k = [2]
"""


def test_resume_with_cache_organisation_axes(tmp_path):
    spec = tmp_path / "org.toml"
    spec.write_text(ORG_SPEC)
    fresh = run_sweep(spec, n_jobs=1, out=tmp_path / "fresh", chunk_size=4)
    # 3 evictions x 2 partitions x 4 pin requests x 2 strategies, + 1 baseline, x 2 runs
    assert fresh.table.num_rows == (3 * 2 * 4 * 2 + 1) * 2
    assert not fresh.failures
    assert len(set(fresh.table["pin_request"].to_pylist())) == 4

    # an interrupted run: the same shards, some of them lost
    import shutil

    out = tmp_path / "cut"
    shutil.copytree(tmp_path / "fresh", out)
    (out / "results.parquet").unlink()
    shards = sorted((out / "shards").glob("shard-*.parquet"))
    lost = shards[::2]
    lost_rows = sum(pq.read_metadata(p).num_rows for p in lost)
    for p in lost:
        p.unlink()
    resumed = run_sweep(spec, n_jobs=1, out=out, resume=True, chunk_size=4)
    assert resumed.skipped == fresh.table.num_rows - lost_rows
    assert sum(len(t.rows) for t in resumed.tasks) == lost_rows
    assert resumed.table.drop(["wall_s"]).equals(fresh.table.drop(["wall_s"]))

    again = run_sweep(spec, n_jobs=1, out=out, resume=True)
    assert again.tasks == [] and again.skipped == fresh.table.num_rows
