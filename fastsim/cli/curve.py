"""``fastsim curve``: metrics against cache size from one pass (:func:`fastsim.curve.cache_curve`),
as a table on the terminal, a Parquet/CSV file and optionally a plot."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser(
        "curve",
        help="hit rate and tokens/s against cache size, from one pass where LRU's stack property holds",
        description=(
            "Every metric of a replay at many cache sizes. On-demand replay with lru eviction (global or per-layer) "
            "takes one pass over the trace (LRU stack distances) and equals one replay per size exactly; other "
            "configurations replay each size. See docs/model.md, 'Cache-size curves'."
        ),
    )
    p.add_argument("trace", help="Parquet trace file")
    p.add_argument("--model", help="model profile (default: the trace's)")
    p.add_argument("--hardware", default="rtx3090", help="hardware profile (default rtx3090)")
    sizes = p.add_mutually_exclusive_group(required=True)
    sizes.add_argument("--cache-slots", metavar="C,C,...", help="cache sizes in experts, comma-separated")
    sizes.add_argument("--cache-range", metavar="LO:HI:STEP", help="cache sizes LO, LO+STEP, ... up to HI")
    p.add_argument("--strategy", default="on-demand", help="strategy (default on-demand; others replay per size)")
    p.add_argument("--eviction", default="lru", help="eviction policy (default lru; others replay per size)")
    p.add_argument("--cache-partition", default="global", metavar="global|per-layer", help="cache partition")
    p.add_argument("--batch-size", default="1", metavar="B", help="continuous-batching slots (default 1)")
    p.add_argument("--method", default="auto", metavar="auto|stack|replay",
                   help="auto (default): one pass where it is exact; stack: insist on it; replay: one replay per size")
    p.add_argument("--out", metavar="FILE", help="write the table (.parquet or .csv)")
    p.add_argument("--plot", metavar="FILE", help="draw hit rate and tokens/s against cache size (.png, .pdf, .svg)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)


def _sizes(args) -> list[int]:
    if args.cache_slots is not None:
        try:
            sizes = [int(t) for t in args.cache_slots.split(",")]
        except ValueError:
            raise ConfigError(f"--cache-slots expects comma-separated integers, got {args.cache_slots!r}") from None
    else:
        try:
            lo, hi, step = (int(t) for t in args.cache_range.split(":"))
        except ValueError:
            raise ConfigError(f"--cache-range expects LO:HI:STEP integers, got {args.cache_range!r}") from None
        if step <= 0 or hi < lo:
            raise ConfigError(f"--cache-range needs HI >= LO and STEP > 0, got {args.cache_range!r}")
        sizes = list(range(lo, hi + 1, step))
    if not sizes or any(s < 1 for s in sizes):
        raise ConfigError("cache sizes must be positive integers")
    return sizes


def run(args) -> int:
    from ..curve import cache_curve
    from ..trace import read_trace

    sizes = _sizes(args)
    try:
        batch = int(args.batch_size)
    except ValueError:
        raise ConfigError(f"--batch-size needs an integer, got {args.batch_size!r}") from None
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out must end in .parquet or .csv, got {args.out!r}")
    plot = Path(args.plot) if args.plot else None
    if plot is not None and plot.suffix not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"--plot must end in .png, .pdf or .svg, got {args.plot!r}")
    trace = read_trace(args.trace)
    curve = cache_curve(trace, sizes, strategy=args.strategy, model=args.model, hardware=args.hardware,
                        eviction=args.eviction, batch_size=batch, cache_partition=args.cache_partition,
                        method=args.method)
    if out is not None:
        _write(curve, out)
    if plot is not None:
        _plot(curve, plot, args)
    if args.json:
        print(json.dumps({"method": curve.method, "config": curve.config, "rows": curve.rows}))
    else:
        print(f"# {args.strategy}, {args.eviction}, {args.cache_partition}, batch {batch} ({curve.method})")
        print(f"{'cache_slots':>11}  {'hit_rate':>8}  {'misses':>9}  {'tokens/s':>10}  {'stall_s':>10}")
        for r in curve.rows:
            print(f"{r['cache_slots']:>11}  {r['hit_rate']:>8.4f}  {r['misses']:>9}  {r['tokens_per_s']:>10.2f}  "
                  f"{r['stall_s']:>10.4f}")
    return 0


def _write(curve, out: Path) -> None:
    """Write through a temporary file so a failure leaves no partial table."""
    table = curve.to_table()
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, tmp)
    tmp.replace(out)


def _plot(curve, path: Path, args) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'fastsim[plot]'") from None
    x = [r["cache_slots"] for r in curve.rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(x, [r["hit_rate"] for r in curve.rows], marker=".")
    a.set_xlabel("cache (experts)")
    a.set_ylabel("hit rate")
    b.plot(x, [r["tokens_per_s"] for r in curve.rows], marker=".")
    b.set_xlabel("cache (experts)")
    b.set_ylabel("tokens/s")
    fig.suptitle(f"{args.strategy}, {args.eviction}, {args.cache_partition} on {args.hardware}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
