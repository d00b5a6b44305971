"""The plan as a Markdown page, its figure (tokens/s against cache GB) and the files ``--out``
writes: ``plan.md``, ``plan.png`` and ``plan.parquet``."""
from __future__ import annotations

import math
from pathlib import Path

from .answer import BOUND

__all__ = ["markdown", "answer_lines", "figure", "write"]

PAGE, FIGURE, TABLE = "plan.md", "plan.png", "plan.parquet"


def _gb(row) -> str:
    return f"{row['cache_gb']:.1f} GB ({row['cache_slots']} experts)"


def _tps(value: float) -> str:
    return "unbounded" if math.isinf(value) else f"{value:.3g}"


def _config(row) -> str:
    return f"{row['strategy_label']}, {row['eviction']}, {row['cache_partition']}"


def _target_lines(plan) -> list[str]:
    target = plan.target_tokens_per_s
    lines = [f"Target {target:g} tokens/s: the smallest cache that reaches it, per strategy"]
    curves = plan.curves
    for label, row in plan.smallest.items():
        if row is None:
            top = max(curves[label], key=lambda r: r["tokens_per_s"])
            lines.append(f"- {label}: not reached up to {_gb(curves[label][-1])}; at best "
                         f"{_tps(top['tokens_per_s'])} tokens/s ({_config(top)} at {_gb(top)})")
        else:
            lines.append(f"- {label}: {_gb(row)}, {row['eviction']}, {row['cache_partition']}: "
                         f"{_tps(row['tokens_per_s'])} tokens/s")
    for part, row in plan.bound_smallest.items():
        if row is None:
            lines.append(f"- bound ({part}): no cache of the grid lets any strategy reach it")
        else:
            lines.append(f"- bound ({part}): no strategy or eviction reaches it below {_gb(row)}")
    return lines


def _budget_lines(plan) -> list[str]:
    best = plan.best
    where = f"within {plan.budget_gb:g} GB" if plan.budget_gb is not None else "on this GPU"
    if best is None:
        smallest = min(plan.grid.sizes)
        return [f"Best configuration {where}: none; the smallest cache of the grid is {plan.grid.gb(smallest):.1f} GB"]
    line = (f"Best configuration {where}: {_config(best)} at {_gb(best)}: {_tps(best['tokens_per_s'])} tokens/s, "
            f"hit rate {best['hit_rate']:.3f}")
    bound = plan.bound_at(best["cache_partition"], best["cache_slots"])
    if bound is not None:
        line += f" (bound {_tps(bound['tokens_per_s'])} tokens/s)"
    base = _on_demand_at(plan, best)
    if base is not None and best["total_time_s"] > 0:
        line += f"; {base['total_time_s'] / best['total_time_s']:.2f}x on-demand lru at that cache"
    return [line]


def _on_demand_at(plan, row) -> dict | None:
    for r in plan.replays:
        if (r["strategy"] == "on-demand" and r["eviction"] == "lru" and r["cache_slots"] == row["cache_slots"]
                and r["cache_partition"] == row["cache_partition"]):
            return r
    return None


def answer_lines(plan) -> list[str]:
    """The answers as lines of text (the command line prints them)."""
    m = plan.meta
    lines = [f"plan for {m['trace']} on {m['model']} / {m['hardware']}: {len(plan.replays)} replays, "
             f"cache {plan.grid.gb(min(plan.grid.sizes)):.1f} to {plan.grid.gb(max(plan.grid.sizes)):.1f} GB"]
    if plan.target_tokens_per_s is not None:
        lines += _target_lines(plan)
    lines += _budget_lines(plan)
    if plan.failures:
        first = plan.failures[0]
        lines.append(f"{len(plan.failures)} replays failed; first: {_config(first)}: {first['error']}")
    return lines


def _curve_table(plan) -> list[str]:
    """Rows: cache sizes; columns: each strategy's best tokens/s there, then each partition's bound."""
    curves = plan.curves
    labels = list(curves)
    parts = [p for p in plan.grid.partitions if any(b["cache_partition"] == p for b in plan.bounds)]
    head = ["cache GB", "experts", *labels, *(f"bound ({p})" for p in parts)]
    out = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for slots in plan.grid.sizes:
        cells = [f"{plan.grid.gb(slots):.1f}", str(slots)]
        for label in labels:
            row = next((r for r in curves[label] if r["cache_slots"] == slots), None)
            cells.append("" if row is None else _tps(row["tokens_per_s"]))
        for p in parts:
            b = plan.bound_at(p, slots)
            cells.append("" if b is None else _tps(b["tokens_per_s"]))
        out.append("| " + " | ".join(cells) + " |")
    return out


def _bold_head(line: str) -> str:
    head, _, rest = line.partition(": ")
    return f"**{head}**: {rest}"


def _answer_markdown(plan) -> list[str]:
    lines = []
    if plan.target_tokens_per_s is not None:
        head, *items = _target_lines(plan)
        lines += [f"**{head}**:", "", *items, ""]
    for line in _budget_lines(plan):
        lines += [_bold_head(line), ""]
    if plan.failures:
        first = plan.failures[0]
        lines += [f"{len(plan.failures)} replays failed (their rows carry the message); the first, "
                  f"{_config(first)} at {first['cache_slots']} experts: `{first['error']}`", ""]
    return lines


def markdown(plan, plot: str | None = None) -> str:
    m, g = plan.meta, plan.grid
    lines = [
        f"# Cache plan: {m['trace']} on {m['model']} / {m['hardware']}", "",
        f"Trace `{m['trace']}` (fingerprint `{m['trace_fingerprint']}`): {m['tokens']} tokens in {m['sequences']} "
        f"sequences, {m['layers']} layers of {m['experts']} experts, top-{m['top_k']}. Model `{m['model']}` "
        f"({m['expert_bytes'] / 1e6:.1f} MB per expert), hardware `{m['hardware']}`, batch size {m['batch_size']}.", "",
        "## Answer", "",
    ]
    lines += _answer_markdown(plan)
    lines += ["## Tokens/s against cache size", ""]
    if plot:
        lines += [f"![tokens/s against cache GB]({plot})", ""]
    lines += ["Each strategy's best eviction and partition at each size; the bound is the tokens/s no strategy "
              "or eviction exceeds with that cache (`fastsim bound`, docs/bounds.md).", ""]
    lines += _curve_table(plan)
    lines += ["", "## Grid", "",
              f"- strategies: {', '.join(s.label for s in g.strategies)}",
              f"- evictions: {', '.join(g.evictions)}; partitions: {', '.join(g.partitions)}",
              f"- cache sizes (experts): {', '.join(str(c) for c in g.sizes)}; working set {g.working_set}, "
              f"per-layer needs {g.per_layer_min}",
              f"- bound horizon: {'whole trace' if m['horizon'] is None else m['horizon']} positions",
              *(f"- {n}" for n in g.notes), "",
              "Every figure is a replay of this trace or its bound (the table holds one row each, recording what "
              "made it). This replaces the seed write-up's hand-written `recommend_strategy` decision tree with "
              "measurements; see docs/plan.md.", ""]
    return "\n".join(lines)


def figure(plan, path: Path) -> Path | None:
    """Tokens/s against cache GB, one line per strategy (best eviction and partition), the bound
    dashed, the target and budget as guides; None without matplotlib."""
    from ..report.plots import _colour, _plt, _save, have_matplotlib

    if not have_matplotlib():
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    curves = plan.curves
    others = sorted({rows[0]["strategy"] for rows in curves.values()})
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    for label, rows in curves.items():
        k = seen.get(rows[0]["strategy"], 0)
        seen[rows[0]["strategy"]] = k + 1
        ax.plot([r["cache_gb"] for r in rows], [r["tokens_per_s"] for r in rows], marker="o", ms=3, lw=1.3,
                ls=styles[k % 4], color=_colour(rows[0]["strategy"], others), label=label)
    for part, style in (("global", "--"), ("per-layer", ":")):
        pts = [b for b in plan.bounds if b["cache_partition"] == part and math.isfinite(b["tokens_per_s"])]
        if pts:
            ax.plot([b["cache_gb"] for b in pts], [b["tokens_per_s"] for b in pts], color="black", lw=1, ls=style,
                    label=f"{BOUND} ({part})")
    if plan.target_tokens_per_s is not None:
        ax.axhline(plan.target_tokens_per_s, color="#b2182b", lw=0.8, label="target")
    if plan.budget_gb is not None:
        ax.axvline(plan.budget_gb, color="#2166ac", lw=0.8, label="budget")
    ax.set_yscale("log")
    ax.set_xlabel("expert cache, GB")
    ax.set_ylabel("tokens/s")
    m = plan.meta
    ax.set_title(f"{m['trace']}: {m['model']} on {m['hardware']}, batch {m['batch_size']}", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def write(plan, out: Path) -> dict:
    """``{"page": .., "figure": .., "table": ..}`` written under ``out`` (no figure without matplotlib)."""
    from ..sweep.results import write_table

    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / TABLE}
    write_table(plan.table, paths["table"])
    fig = figure(plan, out / FIGURE)
    if fig is not None:
        paths["figure"] = fig
    page = out / PAGE
    tmp = page.with_name(f".{PAGE}.tmp")
    tmp.write_text(markdown(plan, FIGURE if fig is not None else None), encoding="utf-8")
    tmp.replace(page)
    paths["page"] = page
    return paths
