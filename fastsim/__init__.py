"""fastsim: a Numba-JIT sweep engine for Mixture-of-Experts expert-prefetching research.

The public API (SPEC section 5)::

    trace = fastsim.Trace.from_arrays(experts, num_experts=E, sequence_lengths=None)
    trace = fastsim.read_trace("trace.parquet"); trace.write("trace.parquet")
    result = fastsim.replay(trace, strategy="on-demand", model="switch-base-128",
                            hardware="rtx3090", cache_slots="working-set")
    result.metrics
    floor = fastsim.bound(trace, "switch-base-128", "rtx3090", cache_slots=256, batch_size=1)
    floor.total_time_s   # no strategy or eviction beats it (SPEC section 8, docs/bounds.md)
    again = fastsim.replay_row("results/seed-switch/results.parquet", 17)
    again.reproduces     # the row's configuration, replayed again, gives the row's metrics
    plan = fastsim.plan(trace, "mixtral-8x7b", "rtx3090", target_tokens_per_s=2, budget_gb=16)
    plan.smallest, plan.best, plan.to_markdown()   # measured answers (docs/plan.md)
"""
from ._version import __version__
from .errors import ConfigError, FastsimError, ProfileError, SpecError, TraceError
from .replay import ReplayResult, replay
# the function replaces the module of the same name as the package's attribute
from .replay_row import RowReplay, replay_row
from .trace import Trace, read_trace

__all__ = [
    "__version__", "Trace", "read_trace", "replay", "ReplayResult", "replay_row", "RowReplay",
    "FastsimError", "TraceError", "ProfileError", "ConfigError", "SpecError",
]


def __getattr__(name):
    # Heavier parts load on first use so ``import fastsim`` stays quick.
    if name == "sweep":
        from .sweep import sweep

        return sweep
    if name == "replay_many":
        from .sweep import replay_many

        return replay_many
    if name == "cache_curve":
        from .curve import cache_curve

        return cache_curve
    if name == "bound":
        import importlib

        return importlib.import_module(".bound", __name__)
    if name == "plan":
        import importlib

        return importlib.import_module(".plan", __name__)
    if name == "trace_stats":
        from .trace.stats import trace_stats

        return trace_stats
    if name == "capture":
        import importlib

        return importlib.import_module(".capture", __name__)
    raise AttributeError(f"module 'fastsim' has no attribute {name!r}")
