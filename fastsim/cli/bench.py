"""``fastsim bench``: time fastsim against its baselines and print a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(subparsers) -> None:
    from ..bench.context import DEFAULT_REPEAT, DEFAULT_TOKENS

    p = subparsers.add_parser(
        "bench",
        help="time fastsim against libCacheSim, the reference and pyarrow",
        description=(
            "Run benchmark cases, each timing fastsim and its baseline side by side in this run, "
            "and report medians and their ratio. Targets are reported, not enforced."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--cases", metavar="NAME,...",
        help="comma-separated cases to run (default: all; --list-cases names them)",
    )
    p.add_argument("--list-cases", action="store_true", help="list the cases and exit")
    p.add_argument(
        "--tokens", type=_positive_int, default=DEFAULT_TOKENS, metavar="N",
        help=f"tokens of the large generated traces (default {DEFAULT_TOKENS})",
    )
    p.add_argument(
        "--repeat", type=_positive_int, default=DEFAULT_REPEAT, metavar="N",
        help=f"timed runs per measurement, medians reported (default {DEFAULT_REPEAT})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench import format_table, get_cases, run_bench

    if args.list_cases:
        for case in get_cases().values():
            target = f" [target: {case.target}]" if case.target else ""
            print(f"{case.name}: {case.description}{target}")
        return 0
    names = None
    if args.cases is not None:
        names = args.cases.split(",")
        if not any(n.strip() for n in names):
            raise ConfigError("--cases is empty: give comma-separated case names (see --list-cases)")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"fastsim bench: {message}", file=sys.stderr, flush=True)

    result = run_bench(names, tokens=args.tokens, repeat=args.repeat, log=log)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    return 0
