"""``fastsim report TABLE``: a Markdown report (and figures) for a sweep's results table."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a Markdown report for a sweep's results table",
        description=(
            "Aggregate a sweep's results table over its runs (latency mean, std, p95, p99; hit rate; "
            "memory; speedup) and write DIR/report.md with figures in DIR/figures (matplotlib, the "
            "fastsim[plot] extra). Tables with the seed's profiles (seed-switch, seed-qwen) are set "
            "beside the seed's published figures. Exit status 2 for a table that is not a results table."
        ),
    )
    p.add_argument("table", metavar="TABLE", help="results.parquet written by fastsim sweep")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the table's folder)")
    p.add_argument("--published", metavar="DIR",
                   help="folder of the seed's published CSVs (default: seed-published beside the table's "
                        "folder, else results/seed-published)")
    p.add_argument("--no-published", action="store_true", help="leave out the comparison with the seed")
    p.add_argument("--no-plots", action="store_true", help="write the Markdown only")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    published = False if args.no_published else args.published
    result = write_report(args.table, args.out, published=published, plots=not args.no_plots)
    print(f"fastsim report: {result.markdown} ({len(result.figures)} figures)", file=sys.stderr)
    if result.plots_skipped:
        print(f"fastsim report: {result.plots_skipped}", file=sys.stderr)
    return 0
