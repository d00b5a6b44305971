"""Strategy A, on-demand: no prefetching; experts load only when demanded (the seed's baseline).

The seed's baseline cache holds only the working set (``cache_slots="working-set"``,
``C = max |R|``).
"""
import numpy as np

from .._jit import kernel
from ..timeline.core import CFG_SINGLE
from ..timeline.demand import run_demand_only, run_demand_single
from . import StrategyDef


@kernel
def init(num_layers, num_experts, top_k, params):
    return (np.zeros(1, np.int64),)


@kernel
def observe(state, params, sched, s, l, experts, counts, out):
    return 0


@kernel
def replay(sched, cost, config, params):
    # never prefetches: with one global LRU or Belady cache, no pins and one expert size, the
    # demand-only timelines give the general core's results, faster
    if config[CFG_SINGLE] != 0:
        return run_demand_single(sched, cost, config)
    return run_demand_only(sched, cost, config)


STRATEGY = StrategyDef(
    name="on-demand",
    init=init,
    observe=observe,
    params=(),
    replay=replay,
    builtin=True,
    description="no prefetching: the seed's baseline (strategy A)",
)
