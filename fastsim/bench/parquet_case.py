"""Parquet load: ``fastsim.read_trace`` (read, validate, build the routing array) vs pyarrow alone."""
from __future__ import annotations

import gc

import numpy as np

from .registry import register_case
from .timing import median, timed

MODEL = "qwen2-57b-a14b"


@register_case(
    "parquet-load",
    "load a generated qwen2-57b-a14b trace (28 layers, top-8) from Parquet vs pyarrow.parquet.read_table",
    target="reported only",
)
def parquet_load(ctx) -> dict:
    import pyarrow.parquet as pq

    from ..trace.parquet import read_trace

    trace = ctx.trace(MODEL)
    ids = int(trace.experts.size)
    shape = trace.experts.shape
    # keep a fingerprint, not the array: the loads below need the memory
    digest = trace.fingerprint()
    path = ctx.file(f"{MODEL}-{ctx.tokens}.parquet", trace.write)
    ctx.drop_trace(MODEL)
    del trace
    gc.collect()
    f_times, b_times = [], []
    same = None
    for i in range(ctx.repeat):
        ctx.log(f"parquet-load: run {i + 1} of {ctx.repeat}")
        seconds, loaded = timed(lambda: read_trace(path))
        f_times.append(seconds)
        if same is None:
            same = loaded.experts.shape == shape and loaded.fingerprint() == digest
        del loaded
        gc.collect()
        seconds, table = timed(lambda: pq.read_table(path))
        b_times.append(seconds)
        del table
        gc.collect()
    f_s = median(f_times)
    b_s = median(b_times)
    return {
        "fastsim_per_s": ids / f_s,
        "baseline": "pyarrow.parquet.read_table",
        "baseline_per_s": ids / b_s,
        "ratio": b_s / f_s,
        "unit": "ids/s",
        "fastsim_s": f_s,
        "baseline_s": b_s,
        "ids": ids,
        "tokens": int(shape[0]),
        "file_bytes": path.stat().st_size,
        "round_trip_equal": bool(same),
    }
