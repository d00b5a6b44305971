"""The dask backend gives the loky backend's table."""
from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed", reason="the dask backend needs the fastsim[dask] extra")

from fastsim.sweep import run_sweep  # noqa: E402

SPEC = {
    "runs": 2,
    "batch_sizes": [1, 3],
    "caches": ["working-set", 30],
    "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 400, "sequences": 4}],
    "strategies": {
        "on-demand": {},
        "top-k": {"k": [4, 8], "decay_factor": [0.9, 0.999]},
        "oracle": {"lookahead": [2], "evictions": ["lru", "belady"]},
    },
}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address=None,
    ) as c:
        yield c


def test_dask_table_equals_loky(tmp_path, cluster):
    loky = run_sweep(SPEC, n_jobs=2, out=tmp_path / "loky", chunk_size=4)
    dask = run_sweep(SPEC, n_jobs=2, backend="dask", scheduler=cluster.scheduler_address, out=tmp_path / "dask", chunk_size=3)
    assert not loky.failures and not dask.failures
    assert loky.table.num_rows == 2 * 2 * (2 + 4 * 2 + 2 * 2)
    assert dask.table.drop(["wall_s"]).equals(loky.table.drop(["wall_s"]))
    assert dask.worker_compilations == 0 and len(dask.tasks) > 1


def test_dask_client_and_resume(tmp_path, cluster):
    with distributed.Client(cluster) as client:
        first = run_sweep(SPEC, backend="dask", scheduler=client, out=tmp_path / "o", chunk_size=5)
        again = run_sweep(SPEC, backend="dask", scheduler=client, out=tmp_path / "o", resume=True)
    assert again.tasks == [] and again.skipped == first.table.num_rows
    assert again.table.drop(["wall_s"]).equals(first.table.drop(["wall_s"]))


ORG_SPEC = {
    "runs": 1,
    "batch_sizes": [1, 2],
    "caches": [30],
    "evictions": ["lru", "belady", {"name": "activation-aware", "smoothing": 2.0}],
    "cache_partitions": ["global", "per-layer"],
    "pinned": [0, 4, [2, 140]],
    "traces": [{"name": "g", "model": "switch-base-128-decoder", "tokens": 300, "sequences": 3}],
    "strategies": {"on-demand": {}, "top-k": {"k": [2]}},
}


def test_dask_cache_organisation_equals_loky(tmp_path, cluster):
    """Pin counts travel to dask workers as the keys the parent chose; schedules carry what
    the policies read."""
    loky = run_sweep(ORG_SPEC, n_jobs=1, out=tmp_path / "loky")
    dask = run_sweep(ORG_SPEC, n_jobs=2, backend="dask", scheduler=cluster.scheduler_address, out=tmp_path / "dask", chunk_size=7)
    assert not loky.failures and not dask.failures
    assert dask.table.drop(["wall_s"]).equals(loky.table.drop(["wall_s"]))
    assert dask.worker_compilations == 0
