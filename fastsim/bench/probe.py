"""Measurements that need a fresh process; each prints one JSON object as its last output line.

``python -m fastsim.bench.probe memory --tokens N --eviction E``
    Growth of peak resident memory while building the schedule and while running the on-demand
    kernel on a generated switch-base-128 trace (256 slots), against the routing array's size.
``python -c COMPILE_SCRIPT N`` (compile)
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


#: Run by ``python -c`` so that nothing of fastsim is imported before the clock starts (``-m``
#: would import the ``fastsim`` package first).
COMPILE_SCRIPT = (
    "import sys, time; t0 = time.perf_counter(); import numba; t1 = time.perf_counter(); "
    "import fastsim; t2 = time.perf_counter(); from fastsim.bench.probe import compile_probe; "
    "compile_probe(int(sys.argv[1]), t0, t1, t2)"
)


def compile_probe(tokens: int, t0: float, t1: float, t2: float) -> None:
    """The ``compile`` measurement; ``t0..t2`` are clock readings before and after the imports."""
    import fastsim

    from .replay_cases import HARDWARE, SLOTS, kernel_call

    t3 = time.perf_counter()
    tiny = _tiny_trace(12, 128)
    fastsim.replay(tiny, "on-demand", model=MODEL, hardware=HARDWARE, cache_slots=SLOTS)
    t4 = time.perf_counter()
    from ..strategies.on_demand import replay as entry

    cache_hits = sum(entry.stats.cache_hits.values())
    cache_misses = sum(entry.stats.cache_misses.values())
    trace = _generated(tokens)
    t5 = time.perf_counter()
    result = fastsim.replay(trace, "on-demand", model=MODEL, hardware=HARDWARE, cache_slots=SLOTS)
    t6 = time.perf_counter()
    call, sched = kernel_call(trace, "lru")
    t7 = time.perf_counter()
    call()
    t8 = time.perf_counter()
    # a second trace object: the schedule alone, without the memo the replay above left
    from ..timeline.schedule import build_schedule

    fresh = _generated(tokens)
    t9 = time.perf_counter()
    build_schedule(fresh, 1, next_use=False)
    t10 = time.perf_counter()
    fresh.fingerprint()
    t11 = time.perf_counter()
    out = {
        "numba_import_s": t1 - t0,
        "fastsim_import_s": t2 - t1 + (t3 - t2),
        "first_replay_s": t4 - t3,
        "warm_load_s": t4 - t1,
        "entry_cache_hits": int(cache_hits),
        "entry_cache_misses": int(cache_misses),
        "tokens": trace.num_tokens,
        "accesses": int(result.metrics["accesses"]),
        "replay_s": t6 - t5,
        "kernel_s": t8 - t7,
        "schedule_s": t10 - t9,
        "fingerprint_s": t11 - t10,
    }
    sys.stdout.write(json.dumps(out) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastsim.bench.probe")
    parser.add_argument("kind", choices=("memory",))
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--eviction", choices=("lru", "belady"), default="lru")
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(memory(args.tokens, args.eviction)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
