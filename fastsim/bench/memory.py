"""Memory: how much peak resident memory a replay adds, against the routing array it replays."""
from __future__ import annotations

from .registry import register_case
from .subprocess_probe import run_probe


@register_case(
    "memory",
    "peak RSS growth of schedule build + on-demand replay (LRU, Belady) in a fresh process, "
    "per byte of routing array",
    target="reported only",
)
def memory(ctx) -> dict:
    out: dict = {
        "fastsim_per_s": None, "baseline": None, "baseline_per_s": None, "ratio": None, "unit": "bytes",
    }
    for eviction in ("lru", "belady"):
        ctx.log(f"memory: {eviction} in a fresh process")
        res = run_probe("memory", "--tokens", str(ctx.tokens), "--eviction", eviction)
        routing = res["routing_bytes"]
        out["routing_bytes"] = routing
        out["tokens"] = res["tokens"]
        out["method"] = res["method"]
        for field in ("schedule_array_bytes", "schedule_growth_bytes", "kernel_growth_bytes", "replay_growth_bytes"):
            out[f"{eviction}_{field}"] = res[field]
        out[f"{eviction}_growth_per_routing_byte"] = res["replay_growth_bytes"] / routing if routing else None
    return out
