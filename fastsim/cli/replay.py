"""``fastsim replay``: one replay of a trace file, printed as a table or JSON."""
from __future__ import annotations

import argparse
import json

from ..errors import ConfigError


def _strategy_param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        low = value.strip().lower()
        if low in ("true", "false"):
            return name, float(low == "true")
        raise argparse.ArgumentTypeError(f"parameter {name!r} needs a number, got {value!r}") from None
    return name, int(number) if number.is_integer() else number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay a trace under one strategy, cache and GPU",
        description="Replay a routing trace through the expert cache and transfer timeline (SPEC section 3).",
    )
    p.add_argument("--trace", required=True, help="Parquet trace file")
    p.add_argument("--strategy", default="on-demand", help="strategy name (default: on-demand)")
    p.add_argument("--model", help="model profile: built-in name or TOML file (default: the trace's)")
    p.add_argument("--hardware", default="rtx3090", help="hardware profile: built-in name or TOML file")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-gb", type=float, help="cache size in GB (1 GB = 1e9 bytes)")
    cache.add_argument("--cache-slots", help="cache size in experts, or 'working-set'")
    p.add_argument("--eviction", default="lru", choices=["lru", "belady"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--max-prefetch-loads", type=int, help="cap on prefetch loads per step and layer")
    p.add_argument(
        "--param", "-p", action="append", type=_strategy_param, default=[], metavar="NAME=VALUE",
        help="strategy parameter (repeatable), e.g. -p k=16 -p decay_factor=0.99",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object: config and metrics")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..replay import METRICS, replay
    from ..trace import read_trace

    trace = read_trace(args.trace)
    cache_slots = None
    cache_bytes = None
    if args.cache_gb is not None:
        if args.cache_gb < 0:
            raise ConfigError(f"--cache-gb must be zero or positive, got {args.cache_gb}")
        cache_bytes = int(args.cache_gb * 1e9)
    elif args.cache_slots is not None:
        cache_slots = args.cache_slots
        if cache_slots != "working-set":
            try:
                cache_slots = int(cache_slots)
            except ValueError:
                raise ConfigError(f"--cache-slots must be a number or 'working-set', got {cache_slots!r}") from None
    result = replay(
        trace, strategy=args.strategy, model=args.model, hardware=args.hardware, cache_slots=cache_slots,
        cache_bytes=cache_bytes, eviction=args.eviction, batch_size=args.batch_size,
        max_prefetch_loads=args.max_prefetch_loads, **dict(args.param),
    )
    if args.json:
        print(json.dumps({"config": result.config, "metrics": result.metrics}, indent=2))
        return 0
    cfg = result.config
    print(
        f"{cfg['strategy']} on {cfg['model']} / {cfg['hardware']}: cache {cfg['cache_slots']} experts "
        f"({cfg['cache_request']}), {cfg['eviction']}, batch {cfg['batch_size']}"
    )
    width = max(len(k) for k in METRICS)
    for key in METRICS:
        value = result.metrics[key]
        text = f"{value:.6g}" if isinstance(value, float) else f"{value}"
        print(f"  {key:<{width}}  {text}")
    return 0
