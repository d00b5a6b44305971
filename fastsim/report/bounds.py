"""The report's bound section (SPEC section 8): for every cache setting of a table swept with
``bound = true``, the lower bound beside each configuration's latency and its share of the
headroom ``(on-demand - strategy) / (on-demand - bound)``, as a table and a figure with the bound
drawn as a line (``docs/bounds.md``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import markdown as md
from .tables import Summary

__all__ = ["TITLE", "has_section", "bound_groups", "bound_section", "bound_figure"]

TITLE = "Lower bound and headroom"


def has_section(table: pa.Table) -> bool:
    return "bound_total_time_s" in table.column_names and table.column("bound_total_time_s").null_count < table.num_rows


def _means(table: pa.Table) -> dict[int, tuple[float, float]]:
    """``{config_id: (mean bound in ms, mean headroom share)}`` over each configuration's runs."""
    ids = table.column("config_id").to_pylist()
    bounds = table.column("bound_total_time_s").to_pylist()
    shares = table.column("headroom_share").to_pylist()
    acc: dict[int, tuple[list, list]] = {}
    for cid, b, h in zip(ids, bounds, shares):
        bs, hs = acc.setdefault(cid, ([], []))
        if b is not None:
            bs.append(b * 1000.0)
        if h is not None:
            hs.append(h)
    return {cid: (float(np.mean(bs)) if bs else math.nan, float(np.mean(hs)) if hs else math.nan)
            for cid, (bs, hs) in acc.items()}


def bound_groups(table: pa.Table, summaries: list[Summary]) -> dict[tuple, list[tuple[Summary, float, float]]]:
    """Configurations with a bound, grouped by what the bound depends on: ``{(trace, model,
    hardware, batch, cache, partition, pins): [(summary, bound ms, headroom share)]}``, each
    group fastest first."""
    means = _means(table)
    out: dict[tuple, list] = {}
    for s in summaries:
        b, h = means.get(s.config_id, (math.nan, math.nan))
        if math.isnan(b) or not s.runs:
            continue
        key = (s.trace, s.model, s.hardware, s.batch_size, s.cache_request, s.partition_label, s.pins_label)
        out.setdefault(key, []).append((s, b, h))
    for rows in out.values():
        rows.sort(key=lambda r: r[0].latency_mean)
    return out


def _ms(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:,.2f}"


def _share(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:,.0f}%"


def _title(key: tuple) -> str:
    trace, model, hw, batch, cache, partition, pins = key
    text = f"`{trace}`, `{model}` on `{hw}`, batch {batch}, cache {cache}"
    if partition != "global":
        text += f", partition {partition}"
    if pins != "none":
        text += f", pins {pins}"
    return text


def _label(s: Summary) -> str:
    text = s.label
    if s.eviction_label != "lru":
        text += f", {s.eviction_label}"
    if s.max_prefetch_loads is not None:
        text += f", max {s.max_prefetch_loads}"
    return text


def bound_section(table: pa.Table, summaries: list[Summary], figures: dict | None = None) -> str:
    """The Markdown section; ``figures`` maps a group key to a figure's relative path."""
    figures = figures or {}
    out = [f"## {TITLE}", "",
           "The bound is a lower bound on the latency of *every* strategy and eviction policy at that cache, "
           "link and compute (SPEC section 8; `docs/bounds.md` proves it and says where it is loose). "
           "*Headroom share* is `(on-demand - strategy) / (on-demand - bound)`: 0% is no better than on-demand "
           "at the same cache, 100% reaches the bound, negative is slower than on-demand.", ""]
    for key, rows in bound_groups(table, summaries).items():
        b = rows[0][1]
        best = rows[0][0]
        out += [f"### {_title(key)}", "",
                f"Bound {_ms(b)} ms; the fastest configuration, {_label(best)}, takes {_ms(best.latency_mean)} ms "
                f"({best.latency_mean / b:.3g}x the bound)." if b > 0 else f"Bound {_ms(b)} ms.", ""]
        body = [[_label(s), _ms(s.latency_mean), _ms(bb), _share(h)] for s, bb, h in rows]
        out += [md.table(["configuration", "latency (ms)", "bound (ms)", "headroom share"], body), ""]
        if key in figures and figures[key]:
            out += [f"![Latency of each configuration against the bound]({figures[key]})", ""]
    return "\n".join(out).rstrip() + "\n"


def bound_figure(rows: list[tuple[Summary, float, float]], title: str, path: Path, max_bars: int = 16) -> Path | None:
    """Horizontal bars of each configuration's latency with the bound as a dashed line."""
    from .plots import _plt, _save

    if not rows:
        return None
    rows = rows[:max_bars]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2))
    labels = [_label(s) for s, _, _ in rows][::-1]
    values = [s.latency_mean for s, _, _ in rows][::-1]
    ax.barh(range(len(rows)), values, color="#7570b3", height=0.6)
    ax.axvline(rows[0][1], color="#d95f02", ls="--", lw=1.5, label=f"lower bound {rows[0][1]:,.2f} ms")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    if max(values) > 20 * min(rows[0][1], min(values)):
        ax.set_xscale("log")  # a slow outlier would squash every other bar against the bound
    ax.set_xlabel("latency (ms)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, path)
