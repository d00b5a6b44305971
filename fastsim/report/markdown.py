"""The report's Markdown: setup, per-setting result tables, the seed comparison, figure links.

Everything is GitHub-flavoured Markdown: pipe tables with right-aligned numbers, relative image
links, and no HTML. Numbers are formatted here once (:func:`ms`, :func:`pct`, :func:`x`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable

import numpy as np

from . import seed as seedmod
from .tables import Summary, request_bytes, varying_identity

__all__ = ["table", "ms", "pct", "x", "mb", "results_table", "setup_section", "seed_section", "anchor"]


def ms(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{v:,.1f}" if abs(v) < 1e5 else f"{v:,.0f}"


def pct(v: float, digits: int = 2) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.{digits}f}%"


def x(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.2f}×"


def mb(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:,.0f}"


def pm(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "–"
    return f"{ms(mean)} ± {ms(std)}"


def table(header: list[str], rows: Iterable[list[str]], align: str | None = None) -> str:
    """A pipe table; ``align`` has one of ``l``/``r`` per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def anchor(title: str) -> str:
    """GitHub's heading anchor for ``title``."""
    out = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return out.replace(" ", "-")


def _cache_text(s: Summary) -> str:
    if s.cache_request == "working-set":
        return f"working set ({s.cache_slots})" if s.cache_slots is not None else "working set"
    if s.cache_request.endswith(" slots"):
        return f"{s.cache_slots} slots" if s.cache_slots is not None else s.cache_request
    nbytes = request_bytes(s.cache_request)
    if nbytes is None:
        return s.cache_request
    # a cache counted in bytes (per-layer expert sizes) has no slot count; an unresolved one neither
    if s.cache_slots is None or s.cache_slots == nbytes:
        return bytes_text(nbytes)
    return f"{bytes_text(nbytes)} ({s.cache_slots} slots)"


def bytes_text(n: int) -> str:
    """A byte count as the sweep spec would write it: ``12 GB`` (10⁹), ``512 MB`` (10⁶), else bytes."""
    if n and n % 10**9 == 0:
        return f"{n // 10**9:,} GB"
    if n and n % 10**6 == 0:
        return f"{n // 10**6:,} MB"
    return f"{n:,} B"


def execution_columns(summaries: list[Summary]) -> list[str]:
    """The execution metric columns a table gains (SPEC section 7): TTFT where some row ran
    prefill steps, TPOT and the decode hit rate where some row measured them, the CPU and
    zero-copy execution counts where some row has any."""
    def some(attr, nonzero=False):
        return any(not math.isnan(getattr(s, attr)) and (getattr(s, attr) > 0 or not nonzero) for s in summaries)

    cols = []
    if any(s.execution.get("prefill") for s in summaries) and some("ttft_ms"):
        cols += ["TTFT ms", "TTFT p99 ms"]
    if some("tpot_ms"):
        cols += ["TPOT ms", "TPOT p99 ms"]
    if some("decode_hit_rate"):
        cols.append("decode hit rate")
    if some("cpu_executions", nonzero=True):
        cols.append("CPU runs")
    if some("zero_copy_executions", nonzero=True):
        cols.append("zero-copy runs")
    return cols


def execution_cells(s: Summary, cols: list[str]) -> list[str]:
    """``s``'s cells of :func:`execution_columns` (``–`` where its runs did not measure one;
    TTFT where it ran no prefill steps)."""
    prefill = bool(s.execution.get("prefill"))
    value = {
        "TTFT ms": ms(s.ttft_ms) if prefill else "–", "TTFT p99 ms": ms(s.ttft_p99_ms) if prefill else "–",
        "TPOT ms": _ms3(s.tpot_ms), "TPOT p99 ms": _ms3(s.tpot_p99_ms), "decode hit rate": pct(s.decode_hit_rate),
        "CPU runs": _count(s.cpu_executions), "zero-copy runs": _count(s.zero_copy_executions),
    }
    return [value[c] for c in cols]


def _ms3(v: float) -> str:
    """A per-token latency in ms: three significant figures (a token takes well under a ms to seconds)."""
    return "–" if v is None or math.isnan(v) else f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _count(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:,.0f}"


def execution_note(summaries: list[Summary]) -> str:
    """What execution options (SPEC section 7) a table's rows ran, when not all the defaults: a
    line naming them when every row shares them (the table has no column for them), else a
    pointer to the execution column."""
    labels = list(dict.fromkeys(s.execution_label for s in summaries))
    if labels == ["default"] or not labels:
        return ""
    if len(labels) == 1:
        return f"*Execution:* every row ran with `{labels[0]}` (docs/model.md, \"Execution\"); the rest at their defaults."
    return ("*Execution:* the execution column names the options (docs/model.md, \"Execution\") that differ from "
            "the defaults (`default`: SPEC section 3's timeline).")


def results_table(summaries: list[Summary]) -> str:
    """Per configuration and batch size: latency mean ± std, p95, p99, hit rate, memory, speedup,
    and the execution metrics where the table has them (:func:`execution_columns`)."""
    vary = varying_identity(summaries)
    extra_ev = vary["eviction"]
    extra_cap = any(s.max_prefetch_loads is not None for s in summaries)
    xcols = execution_columns(summaries)
    header = ["strategy", "cache"] + (["eviction"] if extra_ev else []) + identity_header(vary)
    header += ["max loads"] if extra_cap else []
    header += ["batch", "latency ms (mean ± std)", "p95 ms", "p99 ms", "hit rate", "memory MB", "speedup"]
    header += xcols + ["runs"]
    rows = []
    for s in summaries:
        r = [s.label, _cache_text(s)]
        if extra_ev:
            r.append(s.eviction_label)
        r += identity_cells(s, vary)
        if extra_cap:
            r.append("–" if s.max_prefetch_loads is None else str(s.max_prefetch_loads))
        runs = str(s.runs) + (f" ({s.failed} failed)" if s.failed else "")
        r += [str(s.batch_size), pm(s.latency_mean, s.latency_std), ms(s.latency_p95), ms(s.latency_p99),
              pct(s.hit_rate), mb(s.memory_mb), x(s.speedup)] + execution_cells(s, xcols) + [runs]
        rows.append(r)
    align = "ll" + "l" * extra_ev + "l" * len(identity_header(vary)) + "r" * extra_cap + "r" * (8 + len(xcols))
    out = table(header, rows, align)
    notes = [n for n in (pins_note(summaries), execution_note(summaries)) if n]
    return "\n\n".join([out] + notes)


def identity_header(vary: dict) -> list[str]:
    """The ``partition``, ``pins`` and ``execution`` columns, for tables whose configurations
    differ in them."""
    return ((["partition"] if vary["partition"] else []) + (["pins"] if vary["pins"] else [])
            + (["execution"] if vary.get("execution") else []))


def identity_cells(s: Summary, vary: dict) -> list[str]:
    return (([s.partition_label] if vary["partition"] else []) + ([s.pins_label] if vary["pins"] else [])
            + ([s.execution_label] if vary.get("execution") else []))


def pins_note(summaries: list[Summary]) -> str:
    """What a count of pins means (``docs/model.md``, "Pinning"), when a table holds one."""
    if not any((s.pin_request or "").startswith("top ") for s in summaries):
        return ""
    return ("*Pins:* `top N over F of the trace` pins the N keys demanded most often in the first F of the "
            "replayed trace's tokens: chosen on the trace itself, so an oracle placement unless F is a prefix "
            "followed by unseen traffic.")


def _source_summary(source: str | None) -> str:
    if not source:
        return "–"
    try:
        d = json.loads(source)
    except (json.JSONDecodeError, TypeError):
        return source if len(source) < 80 else source[:77] + "..."
    if not isinstance(d, dict):
        return str(d)
    if d.get("generator"):
        keys = ("preset", "model", "tokens", "sequences", "zipf_s", "zipf_q", "floor", "reuse", "affinity",
                "topic_shift", "lengths", "length_mean")
        parts = [f"{k}={d[k]}" for k in keys if d.get(k) not in (None, "", 0.0) or k in ("reuse",) and k in d]
        return f"generated ({', '.join(parts)})"
    return ", ".join(f"{k}={v}" for k, v in list(d.items())[:6])


def setup_section(summaries: list[Summary], traces: dict, meta: dict, baseline: str) -> str:
    """Traces, profiles, runs, and what each column means."""
    out = ["## Setup", ""]
    rows = []
    for name, info in traces.items():
        seeds = info.get("seeds") or []
        seed_text = "–" if not seeds else (f"{min(seeds)}–{max(seeds)}" if len(seeds) > 1 else str(seeds[0]))
        rows.append([f"`{name}`", _source_summary(info.get("source")), f"{info.get('tokens', math.nan):,.0f}",
                     str(info.get("runs", "–")), seed_text])
    out += [table(["trace", "source", "tokens per run", "runs", "generator seeds"], rows, "llrrr"), ""]
    models = list(dict.fromkeys((s.model, s.hardware) for s in summaries))
    out.append("Model and GPU profiles: " + ", ".join(f"`{m}` on `{h}`" for m, h in models) + ".")
    out += ["", f"Speedups are against the baseline: {baseline}, on the same trace run, model, GPU and batch size.", ""]
    return "\n".join(out)


HOW_TO_READ = """\
**Reading the tables.** One row is one configuration (strategy and parameters, cache, batch size)
aggregated over its runs; each run replays a different trace (for generated traces, a different
generator seed). *Latency* is the replay's total time for the whole trace (`total_time_s`), in ms:
mean ± sample standard deviation over runs, and the 95th and 99th percentiles over runs (linear
interpolation). *Hit rate* is hits / accesses (an expert still in flight when needed counts as
late, not as a hit), mean over runs. *Memory* is the peak cache occupancy in bytes (peak resident
keys × expert bytes), MB = 10⁶ bytes, mean over runs. *Speedup* is the baseline's latency over
this configuration's on the same run, averaged over runs (1.00× is the baseline itself). The
cache column gives the request and, in brackets, the slots (keys) it resolved to."""


def seed_rows(kind: str, pub: seedmod.Published, mine: list[Summary], cache: str | None) -> list[list[str]]:
    """Rows of the side-by-side table: the seed's figure, then fastsim's, per strategy and batch."""
    rows = []
    for strategy in seedmod.LETTERS.values():
        for b in pub.batch_sizes:
            p = pub.get(strategy, b)
            ours = seedmod.pick(mine, strategy, b, "working-set" if strategy == "on-demand" else cache)
            if p is None and ours is None:
                continue
            rows.append([
                strategy, str(b),
                pm(p.latency_mean, p.latency_std) if p else "–",
                pm(ours.latency_mean, ours.latency_std) if ours else "–",
                pct(p.hit_rate) if p else "–", pct(ours.hit_rate) if ours else "–",
                mb(p.memory_mb) if p else "–", mb(ours.memory_mb) if ours else "–",
                x(pub.speedup(strategy, b)), x(ours.speedup) if ours else "–",
            ])
    return rows


def attribution_rows(settings: dict, batch: int, only_seed_cache: bool = False) -> list[list[str]]:
    """Speedup split into cache and prediction at one batch size, per setting and strategy.

    For strategy S with cache C: ``T(on-demand, working set) / T(S, C)`` =
    ``[T(on-demand, ws) / T(on-demand, C)]`` x ``[T(on-demand, C) / T(S, C)]``, mean latencies.
    With ``only_seed_cache``, C is only the seed's cache (:func:`seed.strategy_cache`).
    """
    rows = []
    for (trace, model, hw), mine in settings.items():
        base = seedmod.pick(mine, "on-demand", batch, "working-set")
        caches = seedmod.strategy_caches(mine)
        for cache in caches[:1] if only_seed_cache else caches:
            at_c = seedmod.pick(mine, "on-demand", batch, cache)
            for strategy in seedmod.LETTERS.values():
                if strategy == "on-demand":
                    continue
                s = seedmod.pick(mine, strategy, batch, cache)
                if s is None or base is None:
                    continue
                total = base.latency_mean / s.latency_mean
                cache_f = base.latency_mean / at_c.latency_mean if at_c else math.nan
                pred_f = at_c.latency_mean / s.latency_mean if at_c else math.nan
                rows.append([f"`{model}` on `{hw}`", _cache_text(s), strategy, x(total), x(cache_f), x(pred_f),
                             pct(at_c.hit_rate) if at_c else "–", pct(s.hit_rate)])
    return rows


def differences(kind: str, pub: seedmod.Published, seed_setting: list[Summary], cache: str | None) -> list[str]:
    """Bullet points on why fastsim's figures differ from the seed's, with numbers from both tables."""
    out = []
    base_p = pub.get("on-demand", 1)
    ours_base = seedmod.pick(seed_setting, "on-demand", 1, "working-set")
    any_s = next((s for s in seed_setting if s.cache_request == cache), None)
    shape = (any_s or ours_base).shape if (any_s or ours_base) else None
    # 1. the cache's keys
    prefetch_mem = [pub.get(s, 1).memory_mb for s in ("oracle", "top-k") if pub.get(s, 1)]
    if shape and any_s and any_s.cache_slots:
        L, E, _ = shape
        seed_slots = ""
        if prefetch_mem and any_s.expert_bytes:
            n = prefetch_mem[0] * 1e6 / any_s.expert_bytes
            seed_slots = f"The seed's {mb(prefetch_mem[0])} MB cache is {n:.0f} experts of {any_s.expert_bytes / 1e6:g} MB. "
        out.append(
            f"**One cache of expert ids vs one key per layer.** {seed_slots}The seed's cache held expert *ids* "
            f"shared by all {L} layers, so {E} slots hold every expert of every layer once warm. fastsim keys "
            f"the cache by (layer, expert): {any_s.cache_slots} slots hold {any_s.cache_slots} of the "
            f"{L * E:,} keys ({any_s.cache_slots / (L * E):.1%}), so the same memory gives far fewer hits."
        )
    # 2. the per-access cost
    if base_p and base_p.misses and ours_base is not None:
        per_miss = base_p.latency_mean / base_p.misses
        ours_per = ours_base.latency_mean / ours_base.misses if ours_base.misses else math.nan
        out.append(
            f"**Costs.** The seed charged fixed per-access costs: its on-demand run at batch 1 is "
            f"{ms(base_p.latency_mean)} ms for {base_p.misses:,.0f} misses, {per_miss:.3f} ms per miss. fastsim "
            f"derives costs from the profiles: one expert load is {ours_base.load_ms:.3f} ms here, plus the dense "
            f"and expert compute of every layer and step; its on-demand run takes {ms(ours_base.latency_mean)} ms "
            f"for {ours_base.misses:,.0f} misses ({ours_per:.3f} ms per miss, compute included)."
        )
    # 3. batching
    b_hi = max(pub.batch_sizes) if pub.batch_sizes else None
    p_hi = pub.get("on-demand", b_hi) if b_hi else None
    o_hi = seedmod.pick(seed_setting, "on-demand", b_hi, "working-set") if b_hi else None
    if base_p and p_hi and b_hi and b_hi > 1:
        ratio = p_hi.latency_mean / base_p.latency_mean
        if abs(ratio - b_hi) < 0.01 * b_hi:
            how = f"exactly {b_hi}× batch 1: the seed took a token's slowest layer as its latency and multiplied by the batch size"
        else:
            how = f"{ratio:.2f}× batch 1: the seed's batch size barely changed its runs"
        ours_ratio = ""
        if o_hi is not None and ours_base is not None:
            ours_ratio = (f" In fastsim, batch {b_hi} on-demand takes {o_hi.latency_mean / ours_base.latency_mean:.2f}× "
                          f"the batch-1 time: {b_hi} sequences decode in lockstep (continuous batching), a step "
                          f"loads the union of their experts once, and compute grows with the tokens served.")
        out.append(f"**Batch size.** The seed's on-demand latency at batch {b_hi} is {how}.{ours_ratio}")
    # 4. the link and the overlap
    prefetchers = [seedmod.pick(seed_setting, s, 1, cache) for s in ("oracle", "multi-look", "top-k", "intelligent")]
    prefetchers = [p for p in prefetchers if p is not None]
    if prefetchers:
        worst = max(prefetchers, key=lambda p: p.prefetch_loads if not math.isnan(p.prefetch_loads) else -1)
        useful = worst.prefetch_useful / worst.prefetch_loads if worst.prefetch_loads else math.nan
        pub_w = pub.get(worst.strategy, 1)
        pub_loads = f" (the seed counted {pub_w.loads:,.0f} expert loads per run)" if pub_w and not math.isnan(pub_w.loads) else ""
        out.append(
            f"**One host-to-device link.** fastsim serialises every load, demand or prefetch, on one FIFO link "
            f"and overlaps transfers with compute; a wrong prefetch delays the next miss behind it. At batch 1, "
            f"{worst.strategy} issues {worst.prefetch_loads:,.0f} prefetch loads per run{pub_loads}, "
            f"{pct(useful, 1)} of them used before eviction; its compute waits {ms(worst.stall_ms)} ms "
            f"of its {ms(worst.latency_mean)} ms on transfers."
        )
    # 4b. what the seed's prefetches would have cost on a link
    fastest = min(
        (r for r in (pub.get(s, 1) for s in ("oracle", "multi-look", "top-k", "intelligent")) if r is not None),
        key=lambda r: r.latency_mean, default=None,
    )
    if fastest is not None and ours_base is not None and not math.isnan(fastest.loads) and fastest.loads > 0 \
            and not math.isnan(ours_base.load_ms):
        link_ms = fastest.loads * ours_base.load_ms
        s0 = base_p.latency_mean / fastest.latency_mean if base_p else math.nan
        s1 = base_p.latency_mean / (fastest.latency_mean + link_ms) if base_p else math.nan
        mine_f = seedmod.pick(seed_setting, fastest.strategy, 1, cache)
        ours = ""
        if mine_f is not None and not math.isnan(mine_f.prefetch_loads) and not math.isnan(mine_f.misses):
            ours = (f" fastsim's {fastest.strategy} at {_cache_text(mine_f)} moves {mine_f.prefetch_loads + mine_f.misses:,.0f} "
                    f"experts per run ({mine_f.prefetch_loads:,.0f} prefetches, {mine_f.misses:,.0f} misses), "
                    f"{ms((mine_f.prefetch_loads + mine_f.misses) * ours_base.load_ms)} ms of link time: the rest of "
                    f"the gap is the per-layer keys above.")
        out.append(
            f"**Prefetches were free in the seed.** Its {fastest.strategy} run at batch 1 loaded "
            f"{fastest.loads:,.0f} experts in {ms(fastest.latency_mean)} ms ({pct(fastest.hit_rate, 1)} hits) and "
            f"charged those loads no transfer time. At this profile's {ours_base.load_ms:.3f} ms per expert they "
            f"hold one link for {ms(link_ms)} ms; added to its run unoverlapped, they would cut its speedup from "
            f"{x(s0)} to {x(s1)}.{ours}"
        )
        topk = next((p for p in prefetchers if p.strategy == "top-k" and "k" in p.params), None)
        if topk is not None and shape and topk.cache_slots:
            k = int(topk.params["k"])
            want = shape[0] * k
            if topk.prefetch_loads == 0:
                out.append(
                    f"**Top-k never prefetched.** It recomputes its top-k list every "
                    f"{_int(topk.params.get('update_frequency'))} calls of a layer; a run of "
                    f"{topk.tokens:,.0f} tokens makes fewer calls than that, so top-k stays on-demand here."
                )
            elif want > topk.cache_slots:
                out.append(
                    f"**Per-layer predictions against a shared budget.** Each seed strategy keeps one state per "
                    f"layer and prefetches for its own layer: top-k keeps its k = {k} most frequent experts "
                    f"per layer, {shape[0]} × {k} = {want:,} keys, more than the {topk.cache_slots} slots, so "
                    f"each layer's prefetch evicts what the other layers' prefetches loaded (top-k at batch 1: "
                    f"{topk.prefetch_loads:,.0f} prefetch loads per run, "
                    f"{pct(topk.prefetch_useful / topk.prefetch_loads if topk.prefetch_loads else math.nan, 1)} "
                    f"used). With one cache of ids, as in the seed, the {k} ids cost {k} slots in total."
                )
    # 5. the traces
    if ours_base is not None:
        acc = f"{ours_base.accesses:,.0f}" if not math.isnan(ours_base.accesses) else "–"
        seed_acc = ""
        if base_p and base_p.misses and base_p.hit_rate < 1:
            seed_acc = f" (the seed's runs: about {base_p.misses / (1 - base_p.hit_rate):,.0f} accesses)"
        out.append(
            f"**Traces.** fastsim replays generated routing, not the seed's recorded traces, sized to match: "
            f"{ours_base.tokens:,.0f} tokens and {acc} expert accesses per run at batch 1{seed_acc}. Its "
            f"working-set baseline holds the largest set one layer needs in one step "
            f"({ours_base.cache_slots} key{'s' if ours_base.cache_slots != 1 else ''}, {mb(ours_base.memory_mb)} MB); the seed's on-demand memory was "
            f"{mb(base_p.memory_mb) if base_p else '–'} MB."
        )
    return out


def _int(v) -> str:
    return "–" if v is None else f"{int(v):,}"


def seed_section(kind: str, pub: seedmod.Published, settings: dict, figure: str | None) -> str:
    """The side-by-side comparison with the seed's published table for one model."""
    title = f"Beside the seed: {seedmod.TITLES[kind]}"
    # settings come with the seed's own profiles first (seed.seed_profile_first)
    key, mine = next(iter(settings.items()))
    cache = seedmod.strategy_cache(mine)
    out = [f"## {title}", ""]
    out.append(
        f"The seed's published figures (`{pub.file}`, identified by its batch-1 on-demand row) beside fastsim "
        f"on `{key[1]}` / `{key[2]}` (trace `{key[0]}`): on-demand with the working-set cache, the other "
        f"strategies with the cache {cache or '–'}, as the seed ran them. The seed's speedup is its on-demand "
        f"mean latency over the strategy's; fastsim's is the mean over runs of the per-run ratio."
    )
    out += ["", table(
        ["strategy", "batch", "seed latency ms", "fastsim latency ms", "seed hit rate", "fastsim hit rate",
         "seed MB", "fastsim MB", "seed speedup", "fastsim speedup"],
        seed_rows(kind, pub, mine, cache), "lr" + "r" * 8), ""]
    if figure:
        out += [f"![Batch-1 speedup: the seed beside fastsim]({figure})", ""]
    b1 = min(pub.batch_sizes) if pub.batch_sizes else 1
    attr = attribution_rows(settings, b1, only_seed_cache=True)
    if attr:
        out += [
            f"### How much is the cache, how much the prediction (batch {b1})", "",
            "fastsim also runs on-demand at the strategies' cache, so each speedup splits into two factors: "
            "*cache* = on-demand (working set) / on-demand (strategies' cache), *prediction* = on-demand "
            "(strategies' cache) / strategy; their product is the speedup (ratios of mean latencies).", "",
            table(["profiles", "cache", "strategy", "speedup", "cache factor", "prediction factor",
                   "on-demand hit rate at that cache", "strategy hit rate"], attr, "lll" + "r" * 5),
            "",
        ]
    ladder = crossover_section(settings, b1)
    if ladder:
        out += [ladder, ""]
    notes = differences(kind, pub, mine, cache)
    if notes:
        out += ["### Why the numbers differ", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def _slots_of(summaries: list[Summary], cache: str) -> int:
    return next((s.cache_slots for s in summaries if s.cache_request == cache and s.cache_slots is not None), 0)


def crossover_rows(settings: dict, batch: int) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Per setting and prefetching strategy at ``batch``, over every cache the strategies ran with
    (smallest first): the speedup over the baseline (on-demand, working set), and the ratio
    on-demand at the same cache / strategy; each row ends with the smallest cache where the value
    exceeds 1 (``–`` if none).

    Returns ``(cache labels, baseline rows, same-cache rows)``.
    """
    all_s = [s for v in settings.values() for s in v]
    caches = sorted(seedmod.strategy_caches(all_s), key=lambda c: _slots_of(all_s, c))
    labels = [f"{_slots_of(all_s, c):,} slots" if c.endswith(" slots") else c for c in caches]
    vs_base, vs_same = [], []
    for (trace, model, hw), mine in settings.items():
        base = seedmod.pick(mine, "on-demand", batch, "working-set")
        for strategy in list(seedmod.LETTERS.values())[1:]:
            r1, r2 = [f"`{model}` on `{hw}`", strategy], [f"`{model}` on `{hw}`", strategy]
            first1 = first2 = None
            for cache, label in zip(caches, labels):
                s = seedmod.pick(mine, strategy, batch, cache)
                od = seedmod.pick(mine, "on-demand", batch, cache)
                v1 = base.latency_mean / s.latency_mean if s and base else math.nan
                v2 = od.latency_mean / s.latency_mean if s and od else math.nan
                r1.append(x(v1))
                r2.append(x(v2))
                if first1 is None and v1 > 1:
                    first1 = label
                if first2 is None and v2 > 1:
                    first2 = label
            if len(r1) > 2:
                vs_base.append(r1 + [first1 or "–"])
                vs_same.append(r2 + [first2 or "–"])
    return labels, vs_base, vs_same


def crossover_section(settings: dict, batch: int) -> str:
    """Which cache makes each strategy beat on-demand: the two :func:`crossover_rows` tables and
    a sentence per setting naming the sizes."""
    labels, vs_base, vs_same = crossover_rows(settings, batch)
    if len(labels) < 2 or not vs_base:
        return ""
    head = ["profiles", "strategy"] + labels
    out = [
        f"### Which cache makes each strategy beat on-demand (batch {batch})", "",
        "The strategies ran at every cache below; on-demand ran at the same caches and at its working set. "
        "The first table is each strategy's speedup over the baseline (on-demand at its working set, ratio of "
        "mean latencies); the second is on-demand at the *same* cache over the strategy, the part its "
        "predictions add (below 1×: its prefetches cost more link time than their hits save). The last column "
        "names the smallest cache at which the strategy wins.", "",
        "**Over on-demand at its working set**", "",
        table(head + ["wins from"], vs_base, "ll" + "r" * (len(labels) + 1)), "",
        "**Over on-demand at the same cache**", "",
        table(head + ["wins from"], vs_same, "ll" + "r" * (len(labels) + 1)), "",
    ]
    findings = []
    for (trace, model, hw) in settings:
        prof = f"`{model}` on `{hw}`"
        b = [(r[1], r[-1]) for r in vs_base if r[0] == prof]
        sm = [(r[1], r[-1]) for r in vs_same if r[0] == prof]
        if not b:
            continue
        parts = "; ".join(f"{st} from {w}" if w != "–" else f"{st} at none up to {labels[-1]}" for st, w in b)
        parts2 = "; ".join(f"{st} from {w}" if w != "–" else f"{st} never" for st, w in sm)
        findings.append(f"- {prof}: beats the working-set baseline: {parts}. Beats on-demand at the same cache: {parts2}.")
    out += ["**Finding.**", ""] + findings
    return "\n".join(out)


def heatmap_groups(summaries: list[Summary]) -> list[tuple[str, str, str, list[Summary]]]:
    """Two-parameter grids: ``(strategy, x, y, summaries)`` per strategy, cache, batch and eviction
    where exactly two of the strategy's parameters vary."""
    out = []
    groups: dict[tuple, list[Summary]] = {}
    for s in summaries:
        groups.setdefault((s.strategy, s.cache_request, s.batch_size, s.eviction_label, s.partition_label,
                           s.pins_label, s.max_prefetch_loads, s.execution_label), []).append(s)
    for (strategy, *_), group in groups.items():
        names = list(group[0].label_params)
        varying = [k for k in names if len({s.params.get(k) for s in group}) > 1]
        if len(varying) == 2 and all(k in s.params for s in group for k in varying):
            out.append((strategy, varying[0], varying[1], group))
    return out


def overview_table(settings: dict) -> tuple[list[str], list[list[str]], str]:
    """``(header, rows, align)`` of the best-configuration table; eviction, partition and pins
    columns join it when the table's configurations differ in them."""
    all_s = [s for v in settings.values() for s in v]
    vary = varying_identity(all_s)
    extra = (["eviction"] if vary["eviction"] else []) + identity_header(vary)
    header = ["trace", "profiles", "batch", "best", "cache"] + extra + ["speedup", "latency ms", "hit rate"]
    rows = overview_rows(settings)
    if extra:
        best = overview_rows(settings, with_summary=True)
        rows = [r[:5] + ([b.eviction_label] if vary["eviction"] else []) + identity_cells(b, vary) + r[5:]
                for r, b in best]
    return header, rows, "lllll" + "l" * len(extra) + "rrr"


def overview_rows(settings: dict, with_summary: bool = False) -> list:
    """The best configuration per setting and batch size (highest mean speedup); with
    ``with_summary``, ``(row, summary)`` pairs."""
    rows = []
    for (trace, model, hw), mine in settings.items():
        for b in sorted({s.batch_size for s in mine}):
            cand = [s for s in mine if s.batch_size == b and s.runs and not math.isnan(s.speedup)]
            if not cand:
                continue
            best = max(cand, key=lambda s: s.speedup)
            row = [f"`{trace}`", f"`{model}` on `{hw}`", str(b), best.label, _cache_text(best),
                   x(best.speedup), ms(best.latency_mean), pct(best.hit_rate)]
            rows.append((row, best) if with_summary else row)
    return rows


def np_mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan
