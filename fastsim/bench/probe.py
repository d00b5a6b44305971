"""Measurements that need a fresh process: ``python -m fastsim.bench.probe KIND --tokens N``.

Prints one JSON object on its last line of standard output.

``memory --eviction E``
    Growth of peak resident memory while building the schedule and while running the on-demand
    kernel on a generated switch-base-128 trace (256 slots), against the routing array's size.
``compile``
    Time to import fastsim and run a first tiny replay from a warm compilation cache (after
    ``import numba``), then the time of a full replay of the generated trace.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time

MODEL = "switch-base-128"


def _tiny_trace(num_layers: int, num_experts: int):
    import numpy as np

    from ..trace.model import Trace

    ids = (np.arange(64 * num_layers) % num_experts).astype(np.int16).reshape(64, num_layers, 1)
    return Trace.from_arrays(ids, num_experts=num_experts)


def _generated(tokens: int):
    from ..trace.generate import generate_trace
    from .context import SEED, SEQUENCE_TOKENS

    return generate_trace(MODEL, tokens=tokens, sequences=max(1, -(-tokens // SEQUENCE_TOKENS)), seed=SEED)


def memory(tokens: int, eviction: str) -> dict:
    from . import rss
    from .replay_cases import SLOTS, kernel_call

    trace = _generated(tokens)
    # load the compiled kernels first: their code is not part of the replay's growth
    warm, _ = kernel_call(_tiny_trace(trace.num_layers, trace.num_experts), eviction)
    warm()
    gc.collect()
    can_reset = rss.reset_peak()
    before = rss.current_bytes()
    call, sched = kernel_call(trace, eviction)
    schedule_peak = rss.peak_bytes()
    after_schedule = rss.current_bytes()
    if can_reset:
        rss.reset_peak()
    call()
    kernel_peak = rss.peak_bytes()
    schedule_arrays = sum(a.nbytes for a in sched if hasattr(a, "nbytes"))
    return {
        "eviction": eviction,
        "tokens": trace.num_tokens,
        "cache_slots": SLOTS,
        "routing_bytes": int(trace.experts.nbytes),
        "schedule_array_bytes": int(schedule_arrays),
        "schedule_growth_bytes": max(0, schedule_peak - before),
        "kernel_growth_bytes": max(0, kernel_peak - after_schedule),
        "replay_growth_bytes": max(0, max(schedule_peak, kernel_peak) - before),
        "method": rss.METHOD if can_reset else "getrusage ru_maxrss",
    }


def compile_probe(tokens: int) -> dict:
    t0 = time.perf_counter()
    import numba  # noqa: F401  (its own import time is not fastsim's)

    t1 = time.perf_counter()
    import fastsim
    from .replay_cases import HARDWARE, SLOTS, kernel_call

    t2 = time.perf_counter()
    tiny = _tiny_trace(12, 128)
    fastsim.replay(tiny, "on-demand", model=MODEL, hardware=HARDWARE, cache_slots=SLOTS)
    t3 = time.perf_counter()
    from ..strategies.on_demand import replay as entry

    cache_hits = sum(entry.stats.cache_hits.values())
    cache_misses = sum(entry.stats.cache_misses.values())
    trace = _generated(tokens)
    t4 = time.perf_counter()
    result = fastsim.replay(trace, "on-demand", model=MODEL, hardware=HARDWARE, cache_slots=SLOTS)
    t5 = time.perf_counter()
    call, sched = kernel_call(trace, "lru")
    t6 = time.perf_counter()
    call()
    t7 = time.perf_counter()
    return {
        "numba_import_s": t1 - t0,
        "fastsim_import_s": t2 - t1,
        "first_replay_s": t3 - t2,
        "warm_load_s": t3 - t1,
        "entry_cache_hits": int(cache_hits),
        "entry_cache_misses": int(cache_misses),
        "tokens": trace.num_tokens,
        "accesses": int(result.metrics["accesses"]),
        "replay_s": t5 - t4,
        "kernel_s": t7 - t6,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastsim.bench.probe")
    parser.add_argument("kind", choices=("memory", "compile"))
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--eviction", choices=("lru", "belady"), default="lru")
    args = parser.parse_args(argv)
    out = memory(args.tokens, args.eviction) if args.kind == "memory" else compile_probe(args.tokens)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
