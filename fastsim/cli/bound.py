"""``fastsim bound``: the lower bound on a trace's total time (SPEC section 8), as text or JSON."""
from __future__ import annotations

import json
import math

from ..errors import ConfigError
from .replay import _batching, _count, add_cache_layout_flags, cache_kwargs


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bound",
        help="a lower bound on total time for every strategy and eviction",
        description=(
            "A lower bound on total_time_s that every strategy and every eviction policy obeys at this cache, "
            "link and compute (SPEC section 8; the proof is docs/bounds.md)."
        ),
    )
    p.add_argument("trace", help="Parquet trace file")
    p.add_argument("--model", help="model profile: built-in name or TOML file (default: the trace's)")
    p.add_argument("--hardware", default="rtx3090", help="hardware profile: built-in name or TOML file")
    cache = p.add_mutually_exclusive_group(required=True)
    cache.add_argument("--cache-slots", help="cache size in experts, or 'working-set'")
    cache.add_argument("--cache-gb", help="cache size in GB (1 GB = 1e9 bytes; one expert size only)")
    p.add_argument("--batch-size", default="1", metavar="B", help="continuous-batching slots (default 1)")
    p.add_argument(
        "--batching", metavar="continuous|recorded",
        help="continuous batching over --batch-size slots, or one step per recorded pass (default: the trace's, "
             "as fastsim replay takes it)",
    )
    add_cache_layout_flags(p)
    p.add_argument("--horizon", metavar="N",
                   help="positions each window of the bound looks ahead (default 64; 'all' for the whole trace)")
    p.add_argument("--exact", action="store_true",
                   help="also solve the exact optimum (an integer program; tiny traces only; needs SciPy)")
    p.add_argument("--time-limit", default="60", metavar="S", help="seconds the exact solver may take (default 60)")
    p.add_argument("--json", action="store_true", help="print one JSON object: config and figures")
    p.set_defaults(func=run)


def bound_kwargs(args) -> dict:
    """Keyword arguments of :func:`fastsim.bound` from the flags; one ConfigError naming the flag
    for a malformed value."""
    from ..bound import DEFAULT_HORIZON

    cache = cache_kwargs(args, allow_auto=False)  # the bound counts slots: no auto budget
    horizon = DEFAULT_HORIZON
    if args.horizon is not None:
        if args.horizon.strip().lower() == "all":
            horizon = None
        else:
            horizon = _count(args.horizon, "--horizon")
            if horizon < 0:
                raise ConfigError(f"--horizon needs a count of positions >= 0 or 'all', got {args.horizon!r}")
    try:
        limit = float(args.time_limit)
    except ValueError:
        raise ConfigError(f"--time-limit needs a number of seconds, got {args.time_limit!r}") from None
    if not (limit > 0 and math.isfinite(limit)):
        raise ConfigError(f"--time-limit must be a positive number of seconds, got {args.time_limit!r}")
    return dict(
        model=args.model, hardware=args.hardware, **cache, batch_size=_count(args.batch_size, "--batch-size"),
        batching=_batching(args), horizon=horizon, exact=args.exact, time_limit_s=limit,
    )


def run(args) -> int:
    from ..bound import bound
    from ..trace import read_trace

    kwargs = bound_kwargs(args)
    trace = read_trace(args.trace)
    result = bound(trace, **kwargs)
    if args.json:
        print(json.dumps({"config": {**result.config, "horizon": result.horizon}, "bound": result.as_dict()}, indent=2))
        return 0
    cfg = result.config
    line = (
        f"bound on {cfg['model']} / {cfg['hardware']}: cache {cfg['cache_slots']} experts ({cfg['cache_request']}), "
        f"{'recorded batching' if cfg['batching'] == 'recorded' else 'batch ' + str(cfg['batch_size'])}, horizon {'all' if result.horizon is None else result.horizon}"
    )
    if cfg["cache_partition"] != "global":
        line += f", partition {cfg['cache_partition']} {cfg['partition_sizes']}"
    if cfg["pinned"]:
        line += f", {len(cfg['pinned'])} pinned"
    print(line)
    rows = [("bound_total_time_s", result.total_time_s), ("compute_s", result.compute_s),
            ("load_floor_s", result.load_floor_s)]
    if result.exact_s is not None:
        rows.append(("exact_total_time_s", result.exact_s))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value:.9g}")
    return 0
