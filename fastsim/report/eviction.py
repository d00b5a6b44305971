"""The report's "Eviction policies" section: policy x partition against cache size, with findings.

Present when a results table holds more than one eviction policy. Per trace, profiles, strategy
and batch size it tabulates the hit rate and tokens/s (means over runs) against the cache, one row
per policy x partition (x pin set, when those vary), the best value at each cache in bold and
failed configurations as ``–`` with a footnote saying why; figures draw the hit rate against the
cache per trace, one panel per strategy. The findings are computed from the same summaries:
the best policy at each cache and its margin over ``lru`` on the global cache, per-layer against
global for the same policy, and LFRU at a cache ``C`` against LRU at ``2C`` (a claim made for
vLLM's expert cache). Nothing here is hand-written about particular results.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .markdown import bytes_text, pct, table
from .tables import Summary, request_bytes

__all__ = [
    "TITLE", "has_section", "groups", "cache_value", "lfru_vs_double_lru", "best_at", "winner_runs", "partition_gaps",
    "findings",
    "eviction_section", "figure_groups", "figure_title", "eviction_figure",
]

TITLE = "Eviction policies"
BASE = ("lru", "global")  # the reference row: LRU on one cache for all layers
_TIE = 1e-12
_MARKS = "¹²³⁴⁵⁶⁷⁸⁹"


def has_section(summaries: list[Summary]) -> bool:
    return len({s.eviction for s in summaries}) > 1


# --- what is compared ---------------------------------------------------------------------------


def cache_value(s: Summary) -> tuple[str, float] | None:
    """The cache's size as ``(unit, value)``: ``("bytes", n)`` for a byte request, ``("slots", n)``
    for a slot request; None for the working-set cache (its size depends on the trace)."""
    nbytes = request_bytes(s.cache_request)
    if nbytes is not None:
        return ("bytes", float(nbytes))
    if s.cache_request.endswith(" slots"):
        try:
            return ("slots", float(int(s.cache_request.split()[0])))
        except ValueError:
            return None
    return None


def _cache_label(s: Summary) -> str:
    v = cache_value(s)
    if v is None:
        return s.cache_request
    return bytes_text(int(v[1])) if v[0] == "bytes" else f"{int(v[1]):,} slots"


def _strategy_label(s: Summary) -> str:
    """The strategy, its prefetch cap and its execution options (SPEC section 7) where not the defaults."""
    return (s.label + (f", max {s.max_prefetch_loads} loads" if s.max_prefetch_loads is not None else "")
            + (f", {s.execution_label}" if s.execution else ""))


def group_key(s: Summary) -> tuple:
    """One table of the section: trace, model, GPU, strategy (with parameters), batch size."""
    return (s.trace, s.model, s.hardware, _strategy_label(s), s.batch_size)


def row_key(s: Summary) -> tuple:
    """One row: the policy (with parameters), the partition and the pin set."""
    return (s.eviction_label, s.partition_label, s.pins_label)


def groups(summaries: list[Summary]) -> dict:
    """``{group key: {row key: {cache value: Summary}}}`` for caches of a definite size that at
    least two rows ran at; rows in the order the summaries come (policy order of the sweep)."""
    out: dict = {}
    for s in summaries:
        c = cache_value(s)
        if c is None:
            continue
        out.setdefault(group_key(s), {}).setdefault(row_key(s), {})[c] = s
    for g, rows in list(out.items()):
        counts: dict = {}
        for cells in rows.values():
            for c in cells:
                counts[c] = counts.get(c, 0) + 1
        keep = {c for c, n in counts.items() if n > 1}
        rows = {r: {c: s for c, s in cells.items() if c in keep} for r, cells in rows.items()}
        rows = {r: cells for r, cells in rows.items() if cells}
        if len(rows) > 1:
            out[g] = dict(sorted(rows.items(), key=lambda kv: _row_order(kv[0], kv[1])))
        else:
            del out[g]
    return out


def _row_order(key: tuple, cells: dict) -> tuple:
    s = next(iter(cells.values()))
    part = s.cache_partition or "global"
    return (_POLICY_ORDER.get(s.eviction, len(_POLICY_ORDER)), s.eviction, key[0],
            0 if part == "global" else 1 if part == "per-layer" else 2, key[1], key[2])


_POLICY_ORDER = {p: i for i, p in enumerate(("lru", "belady", "fifo", "lfu", "lfru", "activation-aware", "score-aware"))}


def _ok(s: Summary | None) -> bool:
    return s is not None and s.runs > 0 and not math.isnan(s.hit_rate)


def _metric(s: Summary, metric: str) -> float:
    return s.hit_rate if metric == "hit_rate" else s.tokens_per_s


def _caches(rows: dict) -> list:
    return sorted({c for cells in rows.values() for c in cells}, key=lambda c: (c[0], c[1]))


def best_at(rows: dict, cache, metric: str, exclude: tuple = ()) -> tuple[list, float]:
    """The row keys with the highest ``metric`` at ``cache`` (ties all returned) and that value."""
    vals = {r: _metric(cells[cache], metric) for r, cells in rows.items()
            if _ok(cells.get(cache)) and cells[cache].eviction not in exclude
            and not math.isnan(_metric(cells[cache], metric))}
    if not vals:
        return [], math.nan
    top = max(vals.values())
    return [r for r, v in vals.items() if v >= top - _TIE * max(1.0, abs(top))], top


def _base_row(rows: dict):
    return next((r for r, cells in rows.items()
                 if (next(iter(cells.values())).eviction, r[1]) == BASE and r[2] == "none"), None)


def partition_gaps(rows: dict) -> list[tuple]:
    """``(policy label, pins, cache, per-layer hit rate - global hit rate)`` for every policy and
    cache where both partitions ran."""
    out = []
    for (ev, part, pins), cells in rows.items():
        if part != "per-layer":
            continue
        other = rows.get((ev, "global", pins), {})
        for c, s in cells.items():
            if _ok(s) and _ok(other.get(c)):
                out.append((ev, pins, c, s.hit_rate - other[c].hit_rate))
    return out


def lfru_vs_double_lru(summaries: list[Summary]) -> list[dict]:
    """Every pair (LFRU at cache C, LRU at cache 2C) of the same trace, profiles, strategy, batch,
    partition and pins where both ran: the two hit rates and tokens/s. Sizes are the requests
    (bytes or slots), not the slots they resolved to."""
    pairs = []
    for g, rows in groups(summaries).items():
        for (ev, part, pins), cells in rows.items():
            first = next(iter(cells.values()))
            if first.eviction != "lfru":
                continue
            lru_row = next((c2 for (e2, p2, q2), c2 in rows.items()
                            if next(iter(c2.values())).eviction == "lru" and p2 == part and q2 == pins), None)
            if lru_row is None:
                continue
            for c, s in sorted(cells.items()):
                twice = (c[0], 2 * c[1])
                big = lru_row.get(twice)
                if _ok(s) and _ok(big):
                    pairs.append({"group": g, "partition": part, "pins": pins, "cache": c, "lfru": s, "lru": big})
    return pairs


# --- Markdown -----------------------------------------------------------------------------------


def _num(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    if abs(v) < 10:
        return f"{v:.2f}"
    if abs(v) < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def _reason(errors: list[str]) -> str:
    """Why a configuration failed, in one line (the first run's message, classified)."""
    e = (errors[0] if errors else "no successful run").strip().splitlines()[0]
    if "smaller than the working set" in e:
        return ("below a layer's working set: the per-layer split gives a layer fewer slots than one step "
                f"of it needs (\"{e}\")")
    return e if len(e) < 200 else e[:197] + "..."


def _kind(errors: list[str]) -> str:
    e = errors[0] if errors else ""
    return "working-set" if "smaller than the working set" in e else e


def _metric_table(rows: dict, caches: list, metric: str) -> tuple[str, list[str]]:
    """One table of ``metric`` against the cache, best per column in bold; failed cells ``–`` with
    a footnote mark. Returns the table and its footnotes."""
    best = {c: set(best_at(rows, c, metric)[0]) for c in caches}
    show_pins = len({r[2] for r in rows}) > 1
    notes: dict = {}  # reason kind -> (mark, first message)
    out_rows = []
    for r, cells in rows.items():
        line = [r[0], r[1]] + ([r[2]] if show_pins else [])
        for c in caches:
            s = cells.get(c)
            if s is None:
                line.append("not run")
            elif not _ok(s):
                kind = _kind(s.errors)
                if kind not in notes:
                    notes[kind] = (_MARKS[len(notes) % len(_MARKS)], _reason(s.errors), _cache_label(s))
                line.append("–" + notes[kind][0])
            else:
                v = _metric(s, metric)
                text = pct(v) if metric == "hit_rate" else _num(v)
                if s.failed:
                    text += "*"
                line.append(f"**{text}**" if r in best[c] else text)
        out_rows.append(line)
    head = ["policy", "partition"] + (["pins"] if show_pins else []) + [_cache_label(next(
        s for cells in rows.values() for cc, s in cells.items() if cc == c)) for c in caches]
    foot = [f"{m} failed, {why}; first at {where}." for m, why, where in notes.values()]
    if any(s.failed and s.runs for cells in rows.values() for s in cells.values()):
        foot.append("\\* some runs failed: mean over the runs that succeeded.")
    return table(head, out_rows, "ll" + "l" * show_pins + "r" * len(caches)), foot


def _slots_line(rows: dict, caches: list) -> str:
    any_s = next(s for cells in rows.values() for s in cells.values())
    parts = []
    for c in caches:
        s = next((cells[c] for cells in rows.values() if c in cells and cells[c].cache_slots is not None), None)
        if s is not None and c[0] == "bytes" and s.cache_slots != int(c[1]):
            parts.append(f"{_cache_label(s)} = {s.cache_slots:,}")
    text = ""
    if parts:
        text = "Slots (experts the cache holds): " + ", ".join(parts) + ". "
    if any_s.shape and any(r[1] == "per-layer" for r in rows):
        L = any_s.shape[0]
        k = any_s.shape[2]
        b = any_s.batch_size
        need = f"{k} slots (top-{k})" if b == 1 else f"up to {k * b} slots (top-{k} × batch {b})"
        text += (f"*per-layer* splits the slots over the {L} layers (C // {L} each, the first C mod {L} one "
                 f"more); one step of a layer needs {need} at once, so a smaller share fails.")
    return text


def _pp(v: float) -> str:
    return "–" if math.isnan(v) else f"{100 * v:+.2f} pp"


def _row_text(r: tuple, show_pins: bool) -> str:
    return f"{r[0]} {r[1]}" + (f" (pins {r[2]})" if show_pins and r[2] != "none" else "")


def _span(labels: list[str], every: int) -> str:
    if len(labels) == every and every > 1:
        return f"all {every} caches"
    if len(labels) == 1:
        return labels[0]
    a, b = labels[0], labels[-1]
    unit = b.rsplit(" ", 1)[-1]
    if a.endswith(" " + unit):
        a = a[: -len(unit) - 1]
    return f"{a}–{b}"


def _range(vals: list[float], fmt) -> str:
    lo, hi = min(vals), max(vals)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}"


def winner_runs(rows: dict, metric: str, exclude: tuple = ()) -> list[dict]:
    """The best row(s) at each cache, consecutive caches with the same winners merged:
    ``{"rows": [row keys] or None (every row ties), "caches": [...], "values": [...], "margins": [...]}``,
    margins against lru global at the same cache (``metric`` difference for hit rate, ratio - 1 for
    tokens/s; NaN where lru global did not run)."""
    base = _base_row(rows)
    out: list[dict] = []
    for c in _caches(rows):
        top, v = best_at(rows, c, metric, exclude)
        if not top:
            continue
        n_ok = sum(_ok(cells.get(c)) and cells[c].eviction not in exclude for cells in rows.values())
        who = None if len(top) == n_ok and n_ok > 1 else top
        b = rows.get(base, {}).get(c) if base else None
        if not _ok(b):
            m = math.nan
        elif metric == "hit_rate":
            m = v - b.hit_rate
        else:
            m = v / b.tokens_per_s - 1 if b.tokens_per_s else math.nan
        if out and out[-1]["rows"] == who:
            run = out[-1]
        else:
            run = {"rows": who, "caches": [], "values": [], "margins": [], "base_best": False}
            out.append(run)
        run["caches"].append(c)
        run["values"].append(v)
        run["margins"].append(m)
        run["base_best"] = run["base_best"] or (base in top)
    return out


def _winners(rows: dict, metric: str, show_pins: bool, exclude: tuple = ()) -> str:
    every = len(_caches(rows))
    label_of = {c: _cache_label(s) for cells in rows.values() for c, s in cells.items()}
    parts = []
    for run in winner_runs(rows, metric, exclude):
        where = _span([label_of[c] for c in run["caches"]], every)
        if run["rows"] is None:
            name = "every policy and partition ties"
        else:
            name = " = ".join(_row_text(r, show_pins) for r in run["rows"][:3])
            name += f" and {len(run['rows']) - 3} more tied" if len(run["rows"]) > 3 else ""
        fmt_v = pct if metric == "hit_rate" else _num
        vals = _range(run["values"], fmt_v)
        margins = [m for m in run["margins"] if not math.isnan(m)]
        if run["rows"] is None:
            margin = ""
        elif not margins:
            margin = ", no lru global to compare"
        elif run["rows"] == [_base_row(rows)]:
            margin = ", the reference itself"
        elif all(abs(m) <= _TIE for m in margins):
            margin = ", tied with lru global"
        else:
            fmt_m = _pp if metric == "hit_rate" else (lambda m: f"{100 * m:+.1f}%")
            margin = f", {_range(margins, fmt_m)} over lru global"
        parts.append(f"{name} at {where} ({vals}{margin})")
    return "; ".join(parts)


def _best_text(rows: dict, metric: str, show_pins: bool) -> str:
    text = _winners(rows, metric, show_pins)
    if any(r["rows"] and any(rows[k][c].eviction == "belady" for k in r["rows"] for c in r["caches"] if c in rows[k])
           for r in winner_runs(rows, metric)):
        online = _winners(rows, metric, show_pins, exclude=("belady",))
        if online:
            text += f"; without belady: {online}"
    return text


def _group_title(g: tuple) -> str:
    trace, model, hw, strategy, batch = g
    return f"`{trace}`, `{model}` on `{hw}`, {strategy}, batch {batch}"


def findings(summaries: list[Summary], traces: dict | None = None) -> list[str]:
    """The findings bullets (Markdown, without the leading ``- ``); ``traces`` maps a trace's name
    to ``{"source": trace_source}`` (as the report's setup has it), for what the findings rest on."""
    gs = groups(summaries)
    out = rests_on(summaries, traces)
    for g, rows in gs.items():
        show_pins = len({r[2] for r in rows}) > 1
        out.append(f"{_group_title(g)}: highest hit rate: {_best_text(rows, 'hit_rate', show_pins)}. "
                   f"Highest tokens/s: {_best_text(rows, 'tokens_per_s', show_pins)}.")
    # per-layer against global
    for g, rows in gs.items():
        gaps = partition_gaps(rows)
        if not gaps:
            continue
        by_policy: dict = {}
        for ev, pins, c, d in gaps:
            by_policy.setdefault(ev, []).append(d)
        means = {ev: float(np.mean(v)) for ev, v in by_policy.items()}
        lo = min(means, key=means.get)
        hi = max(means, key=means.get)
        better = sum(d > _TIE for *_, d in gaps)
        worse = sum(d < -_TIE for *_, d in gaps)
        caches = sorted({c for _, _, c, _ in gaps})
        out.append(
            f"Per-layer against global, {_group_title(g)}: hit rate per-layer − global, mean over "
            f"{len(gaps)} (policy, cache) pairs at {len(caches)} cache size{'s' if len(caches) != 1 else ''} "
            f"where both ran: {_pp(float(np.mean([d for *_, d in gaps])))}; per-layer higher in {better}, lower in "
            f"{worse}; by policy from {_pp(means[lo])} ({lo}) to {_pp(means[hi])} ({hi})."
        )
    pairs = lfru_vs_double_lru(summaries)
    if pairs:
        wins = sum(p["lfru"].hit_rate > p["lru"].hit_rate + _TIE for p in pairs)
        ties = sum(abs(p["lfru"].hit_rate - p["lru"].hit_rate) <= _TIE for p in pairs)
        tps = [p for p in pairs if not math.isnan(p["lfru"].tokens_per_s) and not math.isnan(p["lru"].tokens_per_s)]
        tps_wins = sum(p["lfru"].tokens_per_s > p["lru"].tokens_per_s for p in tps)
        diffs = [p["lfru"].hit_rate - p["lru"].hit_rate for p in pairs]
        zero = sum(abs(p["lfru"].hit_rate - p["lru"].hit_rate) <= _TIE and p["lru"].hit_rate == 0 for p in pairs)
        tie_text = f" ({zero} of them both at 0.00%)" if zero else ""
        strategies = sorted({p["group"][3] for p in pairs})
        per = []
        for st in strategies:
            mine = [p for p in pairs if p["group"][3] == st]
            per.append(f"{st} {sum(p['lfru'].hit_rate > p['lru'].hit_rate + _TIE for p in mine)} of {len(mine)}")
        out.append(
            f"**A small LFRU against an LRU twice its size** (a claim made for vLLM): over the {len(pairs)} pairs "
            f"(LFRU at cache C, LRU at 2C; same trace, strategy and partition) where both ran, LFRU has the "
            f"higher hit rate in **{wins}** ({', '.join(per)}), ties in {ties}{tie_text}, and the higher tokens/s in "
            f"{tps_wins} of {len(tps)}; LFRU − LRU(2C) hit rate from {_pp(min(diffs))} to {_pp(max(diffs))}, "
            f"mean {_pp(float(np.mean(diffs)))}. Every pair is in the table below."
        )
    return out


def rests_on(summaries: list[Summary], traces: dict | None = None) -> list[str]:
    """What the findings rest on: generated or recorded traces, synthetic router weights, runs."""
    out = []
    gen, rec, synth = [], [], []
    for name, info in (traces or {}).items():
        d = _source(info.get("source") if isinstance(info, dict) else info)
        if d.get("generator"):
            gen.append((name, d.get("preset") or d.get("model")))
            if d.get("router_scores"):
                synth.append(name)
        else:
            rec.append(name)
    runs = sorted({s.runs + s.failed for s in summaries})
    batches = sorted({s.batch_size for s in summaries})
    hws = sorted({s.hardware for s in summaries})
    if gen:
        out.append(
            "**What this rests on.** The traces are generated by fastsim's presets ("
            + ", ".join(f"`{n}`: `{p}`" for n, p in gen)
            + "), calibrated stand-ins, not recorded routing logs"
            + (f" (recorded: {', '.join(f'`{n}`' for n in rec)})" if rec else "")
            + f"; {'/'.join(str(r) for r in runs)} runs (generator seeds) per configuration, batch "
            f"{', '.join(str(b) for b in batches)}, GPU profile {', '.join(f'`{h}`' for h in hws)}. "
            "Hit rates and tokens/s are means over runs."
        )
    elif rec:
        out.append(f"**What this rests on.** Recorded traces ({', '.join(f'`{n}`' for n in rec)}); "
                   f"{'/'.join(str(r) for r in runs)} runs per configuration. Hit rates and tokens/s are means over runs.")
    failed = [s for s in summaries if s.runs == 0 and s.failed and cache_value(s) is not None]
    if failed:
        kinds: dict = {}
        for s in failed:
            kinds.setdefault(_kind(s.errors), []).append(s)
        why = "; ".join(
            (f"{len(v)} below a layer's working set: a per-layer share too small for one step" if k == "working-set"
             else f"{len(v)}: {_reason(v[0].errors)}") for k, v in kinds.items())
        runs = sum(s.failed for s in failed)
        out.append(f"{len(failed)} configurations ({runs} runs) failed ({why}); they are `–` in the tables and "
                   "left out of every comparison.")
    if any(s.eviction == "score-aware" for s in summaries):
        if synth:
            out.append("`score-aware` reads the trace's router weights, and these are synthetic "
                       f"(`router_scores = true` in the spec, for {', '.join(f'`{n}`' for n in synth)}): an "
                       "assumed distribution drawn by the generator, not a model's router, so its rows show how "
                       "the policy behaves on that distribution, not on a real router's.")
        else:
            out.append("`score-aware` reads the trace's router weights (`scores`) as recorded.")
    labels = list(dict.fromkeys(s.execution_label for s in summaries))
    if labels != ["default"] and labels:
        out.append("Execution options (docs/model.md, \"Execution\"): " + "; ".join(f"`{label}`" for label in labels)
                   + " (`default`: SPEC section 3's timeline); each table below holds one set of them, named in its title.")
    if any(s.eviction == "belady" for s in summaries):
        out.append("`belady` evicts the key needed farthest in the future: it reads the schedule ahead and "
                   "no serving system can run it; it is the bound the online policies are measured against.")
    return out


def _source(src) -> dict:
    try:
        d = json.loads(src) if isinstance(src, str) else (src or {})
    except (json.JSONDecodeError, TypeError):
        return {}
    return d if isinstance(d, dict) else {}


def _pairs_table(pairs: list[dict]) -> str:
    rows = []
    for p in pairs:
        trace, model, hw, strategy, batch = p["group"]
        a, b = p["lfru"], p["lru"]
        d = a.hit_rate - b.hit_rate
        rows.append([f"`{trace}`", strategy, p["partition"], _cache_label(a), pct(a.hit_rate), _cache_label(b),
                     pct(b.hit_rate), _pp(d), _num(a.tokens_per_s), _num(b.tokens_per_s),
                     "LFRU" if d > _TIE else "tie" if abs(d) <= _TIE else "LRU 2C"])
    return table(["trace", "strategy", "partition", "LFRU cache", "LFRU hit rate", "LRU cache", "LRU hit rate",
                  "difference", "LFRU tokens/s", "LRU tokens/s", "higher hit rate"], rows, "lllrrrrrrrl")


def eviction_section(summaries: list[Summary], meta: dict | None = None, figures: dict | None = None,
                     traces: dict | None = None) -> str:
    """The whole section: what it compares, findings, then per trace a figure and per strategy
    the hit-rate and tokens/s tables."""
    figures = figures or {}
    gs = groups(summaries)
    policies = list(dict.fromkeys(s.eviction_label for s in sorted(
        summaries, key=lambda s: _POLICY_ORDER.get(s.eviction, len(_POLICY_ORDER)))))
    parts = sorted(dict.fromkeys(s.partition_label for s in summaries),
                   key=lambda p: (0 if p == "global" else 1 if p == "per-layer" else 2, p))
    out = [f"## {TITLE}", ""]
    out.append(
        f"The eviction policies ({', '.join(f'`{p}`' for p in policies)}) on the cache partitions "
        f"({', '.join(f'`{p}`' for p in parts)}) against the cache size, lru on the global cache as the "
        "reference. *global* is one cache for every "
        "layer's experts; *per-layer* gives each layer its own share of the slots, as mixtral-offloading, "
        "llama.cpp and vLLM keep one LRU per layer. *Hit rate* is hits / accesses (a key still in flight "
        "when needed is late, not a hit) and *tokens/s* is tokens / the replay's total time, both means over "
        "runs; the best value at each cache is in bold (ties all bold). The policies' rules are in "
        "`docs/model.md`, \"Cache organisation\"."
    )
    out += ["", "### Findings", ""]
    out += [f"- {f}" for f in findings(summaries, traces)]
    pairs = lfru_vs_double_lru(summaries)
    if pairs:
        out += ["", "**LFRU at C against LRU at 2C** (cache requests; same trace, strategy, partition):", "",
                _pairs_table(pairs)]
    out.append("")
    done_fig = set()
    for g, rows in gs.items():
        fkey = (g[0], g[1], g[2], f"b{g[4]}")
        if fkey not in done_fig and figures.get(fkey):
            done_fig.add(fkey)
            out += [f"![Hit rate against cache size, `{g[0]}`]({figures[fkey]})", ""]
        caches = _caches(rows)
        out += [f"### {_group_title(g)}", ""]
        line = _slots_line(rows, caches)
        if line:
            out += [line, ""]
        for metric, name in (("hit_rate", "Hit rate"), ("tokens_per_s", "Tokens/s")):
            tab, foot = _metric_table(rows, caches, metric)
            out += [f"**{name}** (mean over runs)", "", tab, ""]
            if foot:
                out += [f + "  " for f in foot[:-1]] + [foot[-1], ""]
    return "\n".join(out).rstrip()


# --- figures ------------------------------------------------------------------------------------


def figure_groups(summaries: list[Summary]) -> dict:
    """``{(trace, model, hardware, "b<batch>"): summaries}`` of the settings the section tabulates."""
    keys = {(g[0], g[1], g[2], g[4]) for g in groups(summaries)}
    out: dict = {}
    for s in summaries:
        if (s.trace, s.model, s.hardware, s.batch_size) in keys and cache_value(s) is not None:
            out.setdefault((s.trace, s.model, s.hardware, f"b{s.batch_size}"), []).append(s)
    return out


def figure_title(key: tuple) -> str:
    trace, model, hw, b = key
    return f"{trace}: {model} on {hw}, batch {b[1:]}: hit rate against cache size"


_POLICY_COLOURS = {
    "lru": "#4d4d4d", "belady": "#000000", "fifo": "#1f78b4", "lfu": "#33a02c", "lfru": "#e31a1c",
    "activation-aware": "#ff7f00", "score-aware": "#6a3d9a",
}
_OTHER = ("#b15928", "#a6cee3", "#fb9a99", "#b2df8a", "#fdbf6f", "#cab2d6")


def eviction_figure(summaries: list[Summary], title: str, path: Path) -> Path | None:
    """Hit rate against the cache (GB for byte requests, else slots), one line per policy x
    partition, one panel per strategy; failed points are left out."""
    from .plots import _plt, _save

    by_strategy: dict = {}
    for s in summaries:
        by_strategy.setdefault(_strategy_label(s), []).append(s)
    if not by_strategy:
        return None
    units = {cache_value(s)[0] for s in summaries}
    in_gb = units == {"bytes"}
    plt = _plt()
    n = len(by_strategy)
    fig, axes = plt.subplots(1, n, figsize=(min(4.6 * n, 13.0), 3.9), sharey=True, squeeze=False)
    others = sorted({s.eviction for s in summaries} - set(_POLICY_COLOURS))
    styles = {"global": "-", "per-layer": "--"}
    handles = {}
    for ax, (strategy, mine) in zip(axes[0], by_strategy.items()):
        lines: dict = {}
        for s in mine:
            lines.setdefault(row_key(s), []).append(s)
        for (ev, part, pins), pts in sorted(lines.items(), key=lambda kv: _row_order(kv[0], {0: kv[1][0]})):
            pts = sorted((p for p in pts if _ok(p)), key=lambda p: cache_value(p)[1])
            if not pts:
                continue
            pol = pts[0].eviction
            colour = _POLICY_COLOURS.get(pol) or _OTHER[others.index(pol) % len(_OTHER)]
            xs = [cache_value(p)[1] / (1e9 if in_gb else 1.0) for p in pts]
            name = f"{ev}, {part}" + (f", pins {pins}" if pins != "none" else "")
            (h,) = ax.plot(xs, [100 * p.hit_rate for p in pts], color=colour, ls=styles.get(part, ":"), marker="o",
                           ms=3, lw=1.3, label=name)
            handles.setdefault(name, h)
        ax.set_title(strategy, fontsize=9)
        ax.set_xlabel("cache, GB (10⁹ bytes)" if in_gb else "cache, slots")
        ax.set_ylim(-2, 102)
    axes[0][0].set_ylabel("hit rate, % (mean over runs)")
    fig.suptitle(title, fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="lower center", bbox_to_anchor=(0.5, -0.02),
               ncol=min(4, len(handles)), fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.05 + 0.04 * math.ceil(len(handles) / 4), 1, 1))
    return _save(fig, path)
