"""Assembling a report: read the table, aggregate, draw, write ``report.md`` atomically."""
from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from . import eviction as evmod
from . import execution as exmod
from . import markdown as md
from . import seed as seedmod
from .tables import ReportError, check_table, read_results, summarise, table_meta

__all__ = ["ReportResult", "write_report", "REPORT_NAME", "FIGURES"]

REPORT_NAME = "report.md"
FIGURES = "figures"


@dataclass
class ReportResult:
    """What :func:`write_report` wrote: the Markdown file and the figures (PNG paths)."""

    markdown: Path
    figures: list = field(default_factory=list)
    plots_skipped: str | None = None  # why no figures were drawn, if none were
    summaries: list = field(default_factory=list)


def _slug(*parts) -> str:
    text = "-".join(str(p) for p in parts).lower()
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        _public(path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _traces(table: pa.Table) -> dict:
    names = table.column("trace").to_pylist()
    runs = table.column("run").to_pylist()
    src = table.column("trace_source").to_pylist() if "trace_source" in table.column_names else [None] * len(names)
    seeds = table.column("seed").to_pylist() if "seed" in table.column_names else [None] * len(names)
    tokens = table.column("tokens").to_pylist() if "tokens" in table.column_names else [None] * len(names)
    out: dict = {}
    for n, r, s, sd, t in zip(names, runs, src, seeds, tokens):
        info = out.setdefault(n, {"runs": set(), "seeds": set(), "tokens": [], "source": None})
        info["runs"].add(r)
        if sd is not None:
            info["seeds"].add(sd)
        if t is not None and r not in {x[0] for x in info["tokens"]}:
            info["tokens"].append((r, t))
        if info["source"] is None and s:
            info["source"] = s
    for info in out.values():
        info["runs"] = len(info["runs"])
        info["seeds"] = sorted(info["seeds"])
        toks = [t for _, t in info["tokens"]]
        info["tokens"] = sum(toks) / len(toks) if toks else math.nan
    return out


def _baseline_text(spec: dict) -> str:
    b = spec.get("baseline", True) if spec else True
    if b is False:
        return "none (no speedup column)"
    if not isinstance(b, dict):
        b = {}
    cache = b.get("cache", "working-set")
    params = b.get("params") or {}
    ptext = f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""
    return f"{b.get('strategy', 'on-demand')}{ptext} with a {cache} cache, {b.get('eviction', 'lru')} eviction"


def write_report(source, out=None, *, published=None, plots: bool = True) -> ReportResult:
    """Write a Markdown report (and figures) for a sweep's results table.

    Parameters
    ----------
    source : path or pyarrow.Table
        ``results.parquet`` of a sweep (or the table itself).
    out : path, optional
        Folder for ``report.md`` and ``figures/``; default the table's folder (required for a
        table given in memory).
    published : path, False or None
        Folder with the seed's published CSVs; ``None`` looks for ``seed-published`` beside the
        table's folder, then ``results/seed-published``; ``False`` leaves the comparison out. The
        comparison appears only for tables with a ``seed-switch`` or ``seed-qwen`` model.
    plots : bool
        Draw figures (needs matplotlib, the ``fastsim[plot]`` extra; without it the report says
        so and is written without figures).

    Raises
    ------
    ReportError
        Not a results table (not Parquet, columns missing, no rows).
    """
    table_path = None
    if isinstance(source, pa.Table):
        check_table(source)
        table, meta = source, table_meta(source)
        if out is None:
            raise ReportError("write_report: give out= for a table held in memory")
    else:
        table_path = Path(source)
        table, meta = read_results(table_path)
    out = Path(out) if out is not None else table_path.parent
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: output folder is a file")
    spec = meta.get("spec") or {}
    summaries = summarise(table)
    settings: dict = {}
    for s in summaries:
        settings.setdefault(s.setting, []).append(s)

    # What the table reproduces: the spec's ``reproduces`` flag, else (older tables) a guess from
    # the seed's model profile names and the model shapes.
    flagged = seedmod.REPRODUCES.get(meta.get("reproduces") or "")
    pubs: dict = {}
    if published is not False:
        folder = seedmod.find_published(table_path, published)
        if published is not None and (folder is None or not Path(folder).is_dir()):
            raise ReportError(f"{published}: no such folder of published figures")
        if folder is not None and (flagged or any(s.model in seedmod.SEED_MODELS for s in summaries)):
            pubs = seedmod.load_published(folder)

    figures: list[Path] = []
    skipped = None
    draw = plots
    if plots:
        from . import plots as pl

        if not pl.have_matplotlib():
            draw = False
            skipped = "matplotlib is not installed: `pip install fastsim[plot]` for the figures"
    fig_dir = out / FIGURES

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        figures.append(p)
        return f"{FIGURES}/{p.name}"

    name = spec.get("name") or (table_path.parent.name if table_path else "sweep")
    lines = [f"# Sweep report: {name}", ""]
    if spec.get("description"):
        lines += [spec["description"].strip(), ""]
    n_fail = sum(s.failed for s in summaries)
    version = meta.get("version") or (table.column("fastsim_version")[0].as_py() if "fastsim_version" in table.column_names else None)
    src_name = table_path.name if table_path else "results table"
    lines.append(
        f"`{src_name}`: {table.num_rows:,} rows, {len(summaries):,} configurations"
        + (f", {n_fail} failed runs" if n_fail else "")
        + (f"; fastsim {version}" if version else "")
        + (f", spec hash `{meta['spec_hash']}`" if meta.get("spec_hash") else "")
        + "."
    )
    lines.append("")
    if skipped:
        lines += [f"> **Note:** no figures: {skipped}.", ""]

    contents = []
    body: list[str] = []
    if flagged:
        kinds = [flagged] if flagged in pubs else []
    else:
        kinds = [k for k in ("switch", "qwen") if k in pubs and any(seedmod.kind_of(s) == k for s in summaries)]
    for kind in kinds:
        pub = pubs[kind]
        keys = seedmod.seed_profile_first(settings)
        mine = {k: settings[k] for k in keys if flagged or seedmod.kind_of(settings[k][0]) == kind}
        fig = None
        if draw:
            fig = rel(pl.seed_figure(_seed_bars(pub, mine), f"{seedmod.TITLES[kind]}: speedup at batch 1",
                                     fig_dir / f"seed-{kind}-speedup.png"))
        section = md.seed_section(kind, pub, mine, fig)
        contents.append(section.splitlines()[0][3:])
        body += [section, ""]

    head, overview, align = md.overview_table(settings)
    if overview and len(overview) > 1:
        contents.append("Best configuration per setting")
        body += ["## Best configuration per setting", "", md.table(head, overview, align), ""]

    if evmod.has_section(summaries):
        fig_of = {}
        if draw:
            for key, group in evmod.figure_groups(summaries).items():
                fig_of[key] = rel(evmod.eviction_figure(group, evmod.figure_title(key),
                                                        fig_dir / f"eviction-{_slug(*key)}.png"))
        section = evmod.eviction_section(summaries, meta, fig_of, _traces(table))
        contents.append(evmod.TITLE)
        body += [section, ""]

    if exmod.has_section(summaries):
        contents.append(exmod.TITLE)
        body += [exmod.execution_section(summaries), ""]

    from . import bounds as bdmod  # the lower bound (SPEC section 8) of tables swept with bound = true

    if bdmod.has_section(table):
        fig_of = {}
        if draw:
            for key, group in bdmod.bound_groups(table, summaries).items():
                fig_of[key] = rel(bdmod.bound_figure(group, f"{key[0]}: {key[1]} on {key[2]}, batch {key[3]}, cache {key[4]}",
                                                     fig_dir / f"bound-{_slug(*key)}.png"))
        contents.append(bdmod.TITLE)
        body += [bdmod.bound_section(table, summaries, fig_of), ""]

    for (trace, model, hw), mine in settings.items():
        title = f"Results: `{trace}`, `{model}` on `{hw}`"
        contents.append(title)
        body += [f"## {title}", "", md.results_table(mine), ""]
        if draw:
            f1 = rel(pl.batch_figure(mine, f"{trace}: {model} on {hw}", fig_dir / f"batch-{_slug(trace, model, hw)}.png"))
            f2 = rel(pl.pareto_figure(mine, f"{trace}: {model} on {hw} (every configuration and batch size)",
                                      fig_dir / f"pareto-{_slug(trace, model, hw)}.png"))
            if f1:
                body += [f"![Latency and hit rate against batch size]({f1})", ""]
            if f2:
                body += [f"![Speedup against cache memory]({f2})", ""]
        for strategy, px, py, group in md.heatmap_groups(mine):
            g0 = group[0]
            label = f"{strategy}: {py} × {px}, cache {g0.cache_request}, batch {g0.batch_size}"
            if draw:
                f3 = rel(pl.heatmap_figure(group, px, py, f"{trace}, {model} on {hw}\n{label}",
                                           fig_dir / f"heat-{_slug(trace, model, hw, strategy, px, py, g0.cache_request, g0.batch_size, *_organisation(g0))}.png"))
                if f3:
                    body += [f"![Speedup over {label}]({f3})", ""]

    lines.append("Contents: " + " · ".join(f"[{c}](#{md.anchor(c)})" for c in ["Setup"] + contents))
    lines.append("")
    lines.append(md.setup_section(summaries, _traces(table), meta, _baseline_text(spec)))
    lines += [md.HOW_TO_READ, ""]
    lines += body
    text = "\n".join(lines).rstrip() + "\n"
    path = out / REPORT_NAME
    _write_text(path, text)
    return ReportResult(path, figures, skipped, summaries)


def _organisation(s) -> list:
    """The eviction policy, and the partition and pins where they are not the default, for file names."""
    out = [s.eviction_label]
    if s.partition_label != "global":
        out.append(s.partition_label)
    if s.pins_label != "none":
        out.append("pins-" + s.pins_label)
    if s.execution:
        out.append(s.execution_label)
    return out


def _seed_bars(pub: seedmod.Published, settings: dict) -> list[tuple]:
    # settings come seed profiles first (seed_profile_first): the first is the seed's, the last the real one
    values = list(settings.values())
    seed_set = values[0] if values else None
    real_set = values[-1] if len(values) > 1 else None
    rows = []
    for strategy in list(seedmod.LETTERS.values())[1:]:
        vals = [pub.speedup(strategy, 1)]
        for mine in (seed_set, real_set):
            s = seedmod.pick(mine, strategy, 1, seedmod.strategy_cache(mine)) if mine else None
            vals.append(s.speedup if s else math.nan)
        rows.append((strategy, *vals))
    return rows


def _public(path: Path) -> None:
    """Give a renamed temporary file the permissions a plain new file would have (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
