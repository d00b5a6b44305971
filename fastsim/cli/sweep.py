"""``fastsim sweep SPEC``: run a sweep spec in parallel and write ``DIR/results.parquet``."""
from __future__ import annotations

import sys
import time

_MAX_LISTED = 20


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("expected a non-zero integer (-1: one job per CPU)")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a sweep spec (TOML) and write its results table",
        description=(
            "Expand a sweep spec into replay configurations, run them in parallel and write one "
            "Parquet row per configuration and run to DIR/results.parquet. Exit status 1 when "
            "some configurations failed (their rows carry the message), 2 for a bad spec."
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="sweep spec (TOML), see docs/sweeps.md")
    p.add_argument("--jobs", "-j", type=_positive, default=1, help="worker processes (-1: one per CPU; default 1)")
    p.add_argument("--backend", choices=["loky", "dask"], default="loky", help="where tasks run (default loky)")
    p.add_argument("--scheduler", metavar="ADDR", help="dask scheduler address (default: a local cluster on 127.0.0.1)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the spec's out, else results/<name>)")
    p.add_argument("--resume", action="store_true", help="keep finished shards of an interrupted run; run the rest")
    p.add_argument("--chunk-size", type=_positive, metavar="N", help="configurations per task (default: automatic)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..sweep import run_sweep

    if args.scheduler and args.backend != "dask":
        raise ConfigError("--scheduler needs --backend dask")
    start = time.perf_counter()
    result = run_sweep(
        args.spec, n_jobs=args.jobs, backend=args.backend, scheduler=args.scheduler, out=args.out,
        resume=args.resume, progress=None if not args.quiet else False, chunk_size=args.chunk_size,
    )
    elapsed = time.perf_counter() - start
    rows = result.table.num_rows
    if not args.quiet:
        resumed = f", {result.skipped} resumed" if result.skipped else ""
        print(
            f"fastsim sweep: {rows} rows ({len(result.failures)} failed{resumed}) in {elapsed:.1f} s "
            f"-> {result.out_dir / 'results.parquet'}",
            file=sys.stderr,
        )
    if result.failures:
        print(f"fastsim sweep: {len(result.failures)} configuration run(s) failed:", file=sys.stderr)
        for row, message in result.failures[:_MAX_LISTED]:
            print(f"  config {row.config_id}, run {row.run} ({row.config.label()}): {message}", file=sys.stderr)
        if len(result.failures) > _MAX_LISTED:
            print(f"  ... and {len(result.failures) - _MAX_LISTED} more (see the error column)", file=sys.stderr)
        return 1
    return 0
