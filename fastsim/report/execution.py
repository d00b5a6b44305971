"""The report's "Execution options" section: the same configuration under different SPEC section 7
options (layer anatomy, link order, where misses run, overflow, prefill), with findings.

A *group* is one configuration but for its execution options (trace, profiles, strategy and
parameters, cache, eviction, partition, pins, prefetch cap, batch size); the section appears when
some group ran under more than one set of options. Every finding names the options it compares
and is computed from the same summaries as the table beneath it.
"""
from __future__ import annotations

import math

import numpy as np

from .markdown import _cache_text, execution_cells, execution_columns, ms, pct, table, x
from .tables import Summary

__all__ = ["TITLE", "has_section", "groups", "findings", "execution_section"]

TITLE = "Execution options"
DEFAULT = "default"


def _group_key(s: Summary) -> tuple:
    return (s.trace, s.model, s.hardware, s.label, _cache_text(s), s.eviction_label, s.partition_label,
            s.pins_label, s.max_prefetch_loads, s.batch_size)


def groups(summaries: list[Summary]) -> dict:
    """``{group key: {execution label: Summary}}`` for groups run under two or more option sets."""
    out: dict = {}
    for s in summaries:
        out.setdefault(_group_key(s), {})[s.execution_label] = s
    return {k: v for k, v in out.items() if len(v) > 1}


def has_section(summaries: list[Summary]) -> bool:
    return bool(groups(summaries))


def _ok(s: Summary | None) -> bool:
    return s is not None and s.runs > 0 and not math.isnan(s.latency_mean) and s.latency_mean > 0


def _ratios(gs: dict) -> dict:
    """``{label: [(group, default latency / its latency), ...]}`` where the default ran too."""
    out: dict = {}
    for g, by in gs.items():
        base = by.get(DEFAULT)
        if not _ok(base):
            continue
        for label, s in by.items():
            if label != DEFAULT and _ok(s):
                out.setdefault(label, []).append((g, base.latency_mean / s.latency_mean))
    return out


def _where(g: tuple) -> str:
    trace, model, hw, strategy, cache, *_rest, batch = g
    return f"{strategy}, {cache}, batch {batch} (`{trace}`, `{model}` on `{hw}`)"


def findings(summaries: list[Summary]) -> list[str]:
    """One bullet per option set against the defaults (speed over the default's: its latency over
    this one's, ratio of mean latencies), and the fastest set of each group without a default."""
    gs = groups(summaries)
    out = []
    for label, pairs in _ratios(gs).items():
        vals = [r for _, r in pairs]
        lo = min(pairs, key=lambda p: p[1])
        hi = max(pairs, key=lambda p: p[1])
        faster = sum(r > 1 + 1e-12 for r in vals)
        slower = sum(r < 1 - 1e-12 for r in vals)
        text = (f"`{label}` against the defaults (SPEC section 3's timeline) over {len(pairs)} configuration"
                f"{'s' if len(pairs) != 1 else ''}: speed (default latency / its latency) mean "
                f"{x(float(np.mean(vals)))}, faster in {faster}, slower in {slower}")
        if len(pairs) > 1:
            text += f"; from {x(lo[1])} ({_where(lo[0])}) to {x(hi[1])} ({_where(hi[0])})"
        out.append(text + ".")
    for g, by in gs.items():
        if DEFAULT in by:
            continue
        ran = {label: s for label, s in by.items() if _ok(s)}
        if len(ran) > 1:
            best = min(ran, key=lambda label: ran[label].latency_mean)
            out.append(f"{_where(g)}: the fastest options are `{best}` ({ms(ran[best].latency_mean)} ms), of "
                       + ", ".join(f"`{label}`" for label in ran) + ".")
    return out


def execution_section(summaries: list[Summary]) -> str:
    """The section: what it compares, findings, and one table of every group's option sets."""
    gs = groups(summaries)
    members = [s for by in gs.values() for s in by.values()]
    xcols = execution_columns(members)
    out = [f"## {TITLE}", "",
           "The same configuration replayed under different execution options (docs/model.md, \"Execution\"): "
           "`default` is SPEC section 3's timeline; *vs default* is the default's mean latency over this row's "
           "(above 1×: faster). TTFT and TPOT are means over runs of each run's mean and 99th percentile.", "",
           "### Findings", ""]
    out += [f"- {f}" for f in findings(summaries)] or ["- No configuration ran both the defaults and another set."]
    out += [""]
    head = ["strategy", "cache", "eviction", "batch", "execution", "latency ms", "vs default", "hit rate"] + xcols
    rows = []
    for g, by in gs.items():
        base = by.get(DEFAULT)
        for label, s in sorted(by.items(), key=lambda kv: (kv[0] != DEFAULT, kv[0])):
            vs = base.latency_mean / s.latency_mean if _ok(base) and _ok(s) else math.nan
            rows.append([s.label, _cache_text(s), s.eviction_label, str(s.batch_size), label, ms(s.latency_mean),
                         x(vs), pct(s.hit_rate)] + execution_cells(s, xcols))
    out += [table(head, rows, "lllrl" + "r" * (3 + len(xcols)))]
    return "\n".join(out)
