"""Report figures (matplotlib, the ``fastsim[plot]`` extra, imported only when plotting).

Each function draws one PNG and returns its path; files are written under a temporary name in
the target folder and renamed into place. Figures are sized for a GitHub page (about 900 px wide
at 100 dpi) and kept small.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .tables import STRATEGY_ORDER, Summary

__all__ = ["have_matplotlib", "batch_figure", "pareto_figure", "heatmap_figure", "seed_figure", "pareto_front"]

_COLOURS = {
    "on-demand": "#4d4d4d", "oracle": "#1b9e77", "multi-look": "#d95f02", "top-k": "#7570b3",
    "intelligent": "#e7298a",
}
_EXTRA = ("#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b2df8a")
_DPI = 100


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": _DPI})
    return plt


def _colour(strategy: str, others: list[str]) -> str:
    if strategy in _COLOURS:
        return _COLOURS[strategy]
    return _EXTRA[others.index(strategy) % len(_EXTRA)] if strategy in others else _EXTRA[0]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=_DPI, bbox_inches="tight")
        os.replace(tmp, path)
        _public(path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def _series(summaries: list[Summary]) -> dict[str, list[Summary]]:
    """Lines of a batch-size plot: one per configuration but the batch size, ordered."""
    lines: dict[str, list[Summary]] = {}
    for s in summaries:
        name = s.label if s.cache_request == "working-set" and s.strategy == "on-demand" else f"{s.label}, {s.cache_request}"
        if s.eviction_label != "lru":
            name += f", {s.eviction_label}"
        if s.partition_label != "global":
            name += f", {s.partition_label}"
        if s.pins_label != "none":
            name += f", pins {s.pins_label}"
        if s.max_prefetch_loads is not None:
            name += f", max {s.max_prefetch_loads}"
        lines.setdefault(name, []).append(s)
    for v in lines.values():
        v.sort(key=lambda s: s.batch_size)
    return lines


def batch_figure(summaries: list[Summary], title: str, path: Path, max_lines: int = 12) -> Path | None:
    """Latency (mean with p95 whisker) and hit rate against batch size, one line per configuration.

    Returns None when there is a single batch size (nothing to draw a line through).
    """
    if len({s.batch_size for s in summaries}) < 2:
        return None
    plt = _plt()
    lines = _series([s for s in summaries if s.runs])
    if len(lines) > max_lines:  # keep the figure legible: the fastest configurations
        ranked = sorted(lines, key=lambda k: np.nanmin([s.latency_mean for s in lines[k]]))
        lines = {k: lines[k] for k in ranked[:max_lines]}
    others = sorted({s.strategy for v in lines.values() for s in v} - set(STRATEGY_ORDER))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    for name, pts in lines.items():
        strategy = pts[0].strategy
        k = seen.get(strategy, 0)
        seen[strategy] = k + 1
        c = _colour(strategy, others)
        x = [s.batch_size for s in pts]
        y = np.array([s.latency_mean for s in pts])
        p95 = np.array([s.latency_p95 for s in pts])
        ax1.errorbar(x, y, yerr=[np.zeros_like(y), np.maximum(p95 - y, 0)], color=c, ls=styles[k % 4], marker="o",
                     ms=3, capsize=2, lw=1.3, label=name)
        ax2.plot(x, [100 * s.hit_rate for s in pts], color=c, ls=styles[k % 4], marker="o", ms=3, lw=1.3)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({s.batch_size for v in lines.values() for s in v}))
        ax.get_xaxis().set_major_formatter(_int_formatter())
        ax.set_xlabel("batch size")
    ax1.set_yscale("log")
    ax1.set_ylabel("latency per run, ms (mean; whisker to p95)")
    ax2.set_ylabel("hit rate, %")
    ax2.set_ylim(-2, 102)
    fig.suptitle(title, fontsize=10)
    fig.legend(loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=min(3, len(lines)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.045 * math.ceil(len(lines) / 3), 1, 1))
    return _save(fig, path)


def _int_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{int(v)}" if v >= 1 else f"{v:g}")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: less or equal memory and more speedup.

    ``points`` are ``(memory, speedup)``; the front is returned by increasing memory.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        m, s = points[i]
        if math.isnan(m) or math.isnan(s):
            continue
        if s > best:
            front.append(i)
            best = s
    return front


def pareto_figure(summaries: list[Summary], title: str, path: Path) -> Path | None:
    """Mean speedup against mean peak cache memory, one marker per configuration, front drawn."""
    pts = [s for s in summaries if s.runs and not math.isnan(s.speedup) and not math.isnan(s.memory_mb)]
    if len(pts) < 2:
        return None
    plt = _plt()
    others = sorted({s.strategy for s in pts} - set(STRATEGY_ORDER))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for strategy in dict.fromkeys(s.strategy for s in pts):
        mine = [s for s in pts if s.strategy == strategy]
        ax.scatter([s.memory_mb for s in mine], [s.speedup for s in mine], s=22, alpha=0.85,
                   color=_colour(strategy, others), label=strategy, edgecolors="none")
    front = pareto_front([(s.memory_mb, s.speedup) for s in pts])
    fx = [pts[i].memory_mb for i in front]
    fy = [pts[i].speedup for i in front]
    ax.step(fx, fy, where="post", color="black", lw=1, alpha=0.7, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("peak cache memory, MB (mean over runs)")
    ax.set_ylabel("speedup over the baseline (mean over runs)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def heatmap_figure(summaries: list[Summary], x: str, y: str, title: str, path: Path) -> Path | None:
    """Mean speedup over a two-parameter grid (``x`` across, ``y`` down), values printed."""
    xs = sorted({s.params[x] for s in summaries})
    ys = sorted({s.params[y] for s in summaries})
    if len(xs) < 2 or len(ys) < 2:
        return None
    grid = np.full((len(ys), len(xs)), np.nan)
    for s in summaries:
        grid[ys.index(s.params[y]), xs.index(s.params[x])] = s.speedup
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.9 * len(xs), 9.0), min(1.2 + 0.5 * len(ys), 7.0)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    ax.grid(False)
    ax.set_xticks(range(len(xs)), [_tick(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_tick(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    finite = grid[np.isfinite(grid)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if grid[i, j] > mid else "white")
    fig.colorbar(im, ax=ax, label="speedup")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _tick(v) -> str:
    if isinstance(v, float):
        return f"{int(v)}" if v.is_integer() else f"{v:g}"
    return str(v)


def seed_figure(rows: list[tuple[str, float, float, float]], title: str, path: Path) -> Path | None:
    """Batch-1 speedup per strategy: the seed's published figure beside fastsim's.

    ``rows`` holds ``(strategy, seed speedup, fastsim on the seed's profiles, fastsim on real
    profiles)``; NaN leaves a bar out.
    """
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    x = np.arange(len(rows))
    w = 0.27
    series = (("seed (published)", "#999999"), ("fastsim, seed profiles", "#1f78b4"), ("fastsim, real profiles", "#33a02c"))
    for k, (name, colour) in enumerate(series):
        vals = np.array([r[k + 1] for r in rows], dtype=float)
        bars = ax.bar(x + (k - 1) * w, np.where(np.isfinite(vals), vals, 0), w, label=name, color=colour)
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.text(b.get_x() + b.get_width() / 2, max(v, 0), f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [r[0] for r in rows])
    ax.set_yscale("log")
    finite = [v for r in rows for v in r[1:] if np.isfinite(v) and v > 0]
    if finite:
        ax.set_ylim(min(finite) / 2, max(finite) * 6)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_ylabel("speedup at batch 1 (log)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, ncol=3, loc="upper center")
    fig.tight_layout()
    return _save(fig, path)


def _public(path: Path) -> None:
    """Give a renamed temporary file the permissions a plain new file would have (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
