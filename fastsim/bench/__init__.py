"""``fastsim bench``: fastsim against its baselines, side by side in one run.

Each case (see :mod:`fastsim.bench.registry`) times fastsim and a baseline in the same process
and reports medians and their ratio::

    from fastsim.bench import run_bench, format_table
    result = run_bench(["lru-vs-libcachesim"], tokens=100_000, repeat=3)
    print(format_table(result))

Cases: ``lru-vs-libcachesim``, ``belady-vs-libcachesim`` (libCacheSim on the same key stream),
``kernel-vs-reference`` (the pure-Python reference), ``parquet-load`` (pyarrow alone), ``memory``
(peak RSS growth per routing byte) and ``compile`` (warm cache load in a fresh process).
"""
from .context import DEFAULT_REPEAT, DEFAULT_TOKENS, BenchContext
from .registry import BenchCase, get_cases, register_case
from .report import format_table
from .runner import COMMON_FIELDS, machine_info, run_bench

__all__ = [
    "BenchCase", "BenchContext", "COMMON_FIELDS", "DEFAULT_REPEAT", "DEFAULT_TOKENS",
    "format_table", "get_cases", "machine_info", "register_case", "run_bench",
]
