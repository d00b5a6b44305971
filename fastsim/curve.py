"""Cache-size curves: the metrics of many cache sizes from one pass over the trace.

"How big a cache do I need?" is a curve, and one replay per size wastes the fact that LRU is a
*stack algorithm* (Mattson et al., "Evaluation techniques for storage hierarchies", IBM Systems
Journal 9(2), 1970): the keys a cache of ``C`` holds are always the ``C`` most recent, so one pass
that measures each access's *stack distance* (1 + the distinct keys used since its last use)
answers every size at once: an access hits exactly in the caches larger than or equal to its
distance.

That holds under SPEC section 3's rules for on-demand replay with LRU (``docs/model.md``,
"Cache-size curves", proves it for set-valued demand, where keys of ``R`` are never victims: the
cache after each position is the ``C`` most recent keys, ties inside a position by demand order),
with a global cache or per-layer partitions (one stack per layer), one expert size and no pins.
Its timing follows from the hits: with no prefetch the link is idle at every ``g``, so a
position's misses load back to back from ``g`` and its stall is the sum of their load times.
Anything else (prefetching strategies, other policies, byte budgets, pins, the execution
options) breaks the stack property or the timing argument, and the curve falls back to one
replay per size (``method`` says which ran).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import kernel
from .errors import ConfigError
from .replay import METRICS, replay, resolve_config, table_tokens
from .timeline.durations import layer_cost_tables
from .timeline.layout import GLOBAL, PER_LAYER

__all__ = ["cache_curve", "CacheCurve", "stack_distances"]

COLD = np.iinfo(np.int64).max  # distance of a first use: a miss at every size


@njit(nogil=True, inline="always")
def _fenwick_add(tree, i, v):
    n = tree.shape[0]
    i += 1
    while i < n:
        tree[i] += v
        i += i & (-i)


@njit(nogil=True, inline="always")
def _fenwick_prefix(tree, i):
    """Sum of entries 0..i."""
    s = 0
    i += 1
    while i > 0:
        s += tree[i]
        i -= i & (-i)
    return s


@kernel
def _compact(tree, last, keys_lo, keys_hi, stride):
    """Renumber the live markers of one stream 0..n-1 in tick order and rebuild the tree: the
    tree then spans a few times the stream's keys instead of its whole length, and stays in
    cache. Returns the next tick."""
    n = 0
    for key in range(keys_lo, keys_hi, stride):
        if last[key] >= 0:
            n += 1
    keys = np.empty(n, np.int64)
    ticks = np.empty(n, np.int64)
    i = 0
    for key in range(keys_lo, keys_hi, stride):
        if last[key] >= 0:
            keys[i] = key
            ticks[i] = last[key]
            i += 1
    order = np.argsort(ticks)
    tree[:] = 0
    for rank in range(n):
        last[keys[order[rank]]] = rank
        _fenwick_add(tree, rank, 1)
    return n


@kernel
def stack_histogram(r_ptr, r_experts, num_layers, num_experts, per_layer, want_dist):
    """LRU stack distances of every access, as ``(hist, first, dist)``.

    ``hist[l, d]``: accesses of layer ``l`` at distance ``d`` (1 + the distinct keys of its
    stream used since the key's last use; ``d = L * E + 1`` for a first use, a miss at every
    size); ``first``: per key the position of its first use (-1 if never); ``dist`` (with
    ``want_dist``): per entry its distance, ``COLD`` on first use.

    Recency is the tick order of SPEC section 3 (positions in order, ``R`` ascending inside
    one). All of a position's distances are taken before any of its keys moves, because keys
    of ``R`` are never victims of their own position.
    """
    positions = r_ptr.shape[0] - 1
    entries = r_experts.shape[0]
    num_keys = num_layers * num_experts
    cold = np.iinfo(np.int64).max
    hist = np.zeros((num_layers, num_keys + 2), np.int64)
    dist = np.empty(entries if want_dist else 0, np.int64)
    first = np.full(num_keys, -1, np.int64)
    last = np.full(num_keys, -1, np.int64)  # tick of each key's last use
    streams = num_layers if per_layer else 1
    span = num_experts if per_layer else num_keys
    cap = max(64, 4 * span)
    tree = np.zeros(cap + 2, np.int64)
    for stream in range(streams):
        tree[:] = 0
        markers = 0
        tick = 0
        for p in range(positions):
            l = p % num_layers
            if per_layer and l != stream:
                continue
            base = l * num_experts
            lo = r_ptr[p]
            hi = r_ptr[p + 1]
            if tick + (hi - lo) > cap:
                if per_layer:
                    tick = _compact(tree, last, base, base + num_experts, 1)
                else:
                    tick = _compact(tree, last, 0, num_keys, 1)
            for j in range(lo, hi):
                key = base + r_experts[j]
                if last[key] < 0:
                    d = num_keys + 1
                    if want_dist:
                        dist[j] = cold
                else:
                    d = 1 + markers - _fenwick_prefix(tree, last[key])
                    if want_dist:
                        dist[j] = d
                hist[l, d] += 1
            for j in range(lo, hi):
                key = base + r_experts[j]
                if last[key] >= 0:
                    _fenwick_add(tree, last[key], -1)
                else:
                    first[key] = p
                    markers += 1
                _fenwick_add(tree, tick, 1)
                last[key] = tick
                tick += 1
    return hist, first, dist


def stack_distances(r_ptr, r_experts, num_layers, num_experts, per_layer):
    """Per entry of ``R``: its LRU stack distance (``COLD`` on first use), and per key the
    position of its first use (-1 if never)."""
    _, first, dist = stack_histogram(r_ptr, r_experts, num_layers, num_experts, per_layer, True)
    return dist, first


class CacheCurve:
    """Metrics of one configuration at many cache sizes.

    ``rows``: one dict per size (``cache_slots`` and every SPEC section 3 metric), in the
    order asked; ``method``: ``"stack"`` (one pass) or ``"replay"`` (one replay per size).
    """

    def __init__(self, rows, method, config):
        self.rows = rows
        self.method = method
        self.config = config

    def to_table(self):
        import pyarrow as pa

        columns = {"cache_slots": [r["cache_slots"] for r in self.rows]}
        for name in METRICS:
            columns[name] = [r[name] for r in self.rows]
        table = pa.table(columns)
        meta = {"fastsim.curve_method": self.method, **{f"fastsim.{k}": str(v) for k, v in self.config.items()}}
        return table.replace_schema_metadata(meta)


def _one_pass_ok(strategy, eviction, cache_partition, options) -> bool:
    return (strategy == "on-demand" and eviction == "lru" and cache_partition in (GLOBAL, PER_LAYER)
            and not options)


def cache_curve(trace, cache_slots, strategy="on-demand", model=None, hardware="rtx3090", eviction="lru",
                batch_size=1, *, cache_partition="global", method="auto", **options) -> CacheCurve:
    """Every SPEC section 3 metric at each of ``cache_slots`` (a list of sizes in experts).

    ``method="auto"`` takes the one-pass stack-distance path where it is exact (on-demand,
    ``lru``, global or per-layer, one expert size, no pins or execution options) and one replay
    per size otherwise; ``"stack"`` insists on the former (:class:`~fastsim.errors.ConfigError`
    where it does not hold), ``"replay"`` on the latter. Further keywords go to
    :func:`fastsim.replay` (and force the replay path). The rows equal the per-size replays'
    metrics exactly.
    """
    sizes = list(cache_slots)
    if not sizes:
        raise ConfigError("cache_curve needs at least one cache size")
    if method not in ("auto", "stack", "replay"):
        raise ConfigError(f"method must be 'auto', 'stack' or 'replay', got {method!r}")
    stack = method == "stack" or (method == "auto" and _one_pass_ok(strategy, eviction, cache_partition, options))
    config = {"strategy": strategy, "eviction": eviction, "batch_size": batch_size, "cache_partition": cache_partition}
    if stack:
        if not _one_pass_ok(strategy, eviction, cache_partition, options):
            raise ConfigError(
                "the one-pass curve holds for on-demand replay with lru eviction, a global or per-layer cache and no "
                "further options; use method='replay' for this configuration"
            )
        # validates the profiles, the batch and the largest size against the trace once
        cfg, sched = resolve_config(trace, strategy, model, hardware, max(int(s) for s in sizes), None, eviction,
                                    batch_size, None, {}, cache_partition=cache_partition)
        if not cfg.model.uniform_sizes:
            if method == "stack":
                raise ConfigError("the one-pass curve needs one expert size for every layer; use method='replay'")
            stack = False
    if not stack:
        rows = []
        for c in sizes:
            r = replay(trace, strategy, model, hardware, cache_slots=c, eviction=eviction, batch_size=batch_size,
                       cache_partition=cache_partition, **options)
            rows.append({"cache_slots": int(c), **r.metrics})
        return CacheCurve(rows, "replay", config)
    rows = [{"cache_slots": int(c), **m} for c, m in zip(sizes, _stack_metrics(trace, cfg, sched, sizes, cache_partition))]
    return CacheCurve(rows, "stack", config)


def _partition_sizes(total: int, L: int) -> list[int]:
    return [total // L + (1 if l < total % L else 0) for l in range(L)]


def _stack_metrics(trace, cfg, sched, sizes, partition):
    L, E = trace.num_layers, trace.num_experts
    per_layer = partition == PER_LAYER
    hist, first, _ = stack_histogram(sched.r_ptr, sched.r_experts, L, E, per_layer, False)
    load_ns, expert_ns, dense_ns = layer_cost_tables(cfg.model, cfg.hardware, table_tokens(cfg, sched))
    positions = sched.r_ptr.shape[0] - 1
    widths = np.diff(sched.r_ptr)
    entry_layer = np.repeat(np.arange(positions) % L, widths)
    # compute time does not depend on the cache: dense per position plus each expert's work
    base_ns = int(dense_ns[sched.active].sum()) * L + int(expert_ns[entry_layer, sched.r_counts].sum())
    # hits of layer l at C slots: accesses at distance <= C
    within = np.cumsum(hist, axis=1)
    layer_total = hist.sum(axis=1)
    firsts = [np.sort(first[l * E:(l + 1) * E][first[l * E:(l + 1) * E] >= 0]) for l in range(L)]
    all_firsts = np.sort(first[first >= 0])
    ws_layer = [int(widths[l::L].max()) if positions else 0 for l in range(L)]
    working_set = max(ws_layer, default=0)
    accesses = int(sched.r_experts.shape[0])
    out = []
    for c in sizes:
        c = int(c)
        if per_layer:
            caps = _partition_sizes(c, L)
            for l in range(L):
                if caps[l] < ws_layer[l]:
                    raise ConfigError(f"layer {l}'s partition of {caps[l]} slots ({c} slots, per-layer) is smaller than "
                                      f"its working set of {ws_layer[l]}")
        else:
            if c < working_set:
                raise ConfigError(f"a cache of {c} experts is smaller than the working set of {working_set}")
            caps = [min(c, L * E)] * L
        misses_l = [int(layer_total[l] - within[l, min(caps[l], L * E)]) for l in range(L)]
        misses = sum(misses_l)
        stall_ns = sum(m * int(load_ns[l]) for l, m in enumerate(misses_l))
        if per_layer:
            resident_sum = sum(int((positions - firsts[l][: caps[l]]).sum()) for l in range(L))
            peak = sum(min(caps[l], firsts[l].shape[0]) for l in range(L))
        else:
            resident_sum = int((positions - all_firsts[: caps[0]]).sum())
            peak = min(caps[0], all_firsts.shape[0])
        total_ns = base_ns + stall_ns
        total_s = total_ns / 1e9
        hits = accesses - misses
        tokens = trace.num_tokens
        out.append({
            "accesses": accesses, "hits": hits, "late": 0, "misses": misses,
            "hit_rate": hits / accesses if accesses else 0.0, "demand_loads": misses, "prefetch_loads": 0,
            "prefetch_useful": 0, "prefetch_wasted": 0, "h2d_bytes": misses * cfg.model.expert_bytes,
            "stall_s": stall_ns / 1e9, "total_time_s": total_s, "tokens": tokens, "steps": sched.num_steps,
            "tokens_per_s": tokens / total_s if total_s > 0 else 0.0,
            "mean_resident": resident_sum / positions if positions else 0.0, "peak_resident": peak,
            "peak_cache_bytes": peak * cfg.model.expert_bytes,
        })
    return out
