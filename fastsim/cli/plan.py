"""``fastsim plan``: which cache and which strategy for a trace, model and GPU (:func:`fastsim.plan`),
answered on the terminal and, with ``--out``, as a Markdown page, a plot and the table."""
from __future__ import annotations

import math

from ..errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan",
        help="the smallest cache meeting a target and the best configuration under a budget, measured",
        description=(
            "Replay the trace under strategies x evictions x partitions x cache sizes, bound every size, and answer: "
            "per strategy the smallest cache that reaches --target-tokens-per-s, the fastest configuration within "
            "--budget-gb, tokens/s against cache GB. See docs/plan.md."
        ),
    )
    p.add_argument("--trace", required=True, metavar="F", help="Parquet trace file")
    p.add_argument("--model", metavar="M", help="model profile: built-in name or TOML file (default: the trace's)")
    p.add_argument("--hardware", required=True, metavar="H", help="hardware profile: built-in name or TOML file")
    p.add_argument("--target-tokens-per-s", metavar="X", help="throughput to reach (tokens/s)")
    p.add_argument("--budget-gb", metavar="G", help="GPU memory for the expert cache, GB (1 GB = 1e9 bytes)")
    p.add_argument("--out", metavar="DIR", help="write plan.md, plan.png and plan.parquet there")
    p.add_argument("--strategies", metavar="S,S,...",
                   help="strategies, each NAME or NAME:PARAM=VALUE:... (default on-demand, top-k at 1x and 2x the "
                        "routing top-k, cross-layer)")
    p.add_argument("--evictions", metavar="E,E,...", help="eviction policies (default lru,activation-aware)")
    p.add_argument("--partitions", metavar="P,P", help="global and/or per-layer (default both)")
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--cache-slots", metavar="N,N,...", help="cache sizes in experts")
    sizes.add_argument("--cache-gb", metavar="X,X,...", help="cache sizes in GB (rounded down to whole experts)")
    sizes.add_argument("--sizes", metavar="N",
                       help="how many sizes from the working set to what the GPU holds (default 8)")
    p.add_argument("--batch-size", default="1", metavar="B", help="continuous-batching slots (default 1)")
    p.add_argument("--horizon", metavar="N", help="positions the bound looks ahead (default 8; 'all': the whole trace)")
    p.add_argument("--jobs", default="1", metavar="N", help="worker processes (default 1; -1: one per CPU)")
    p.set_defaults(func=run)


def _number(text, flag: str, kind=float):
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{flag} needs a {'number' if kind is float else 'whole number'}, got {text!r}") from None
    return value


def _positive(text, flag: str, what: str):
    value = _number(text, flag)
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag} must be a positive number of {what}, got {text!r}")
    return value


def _names(text):
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def plan_kwargs(args) -> dict:
    """Keyword arguments of :func:`fastsim.plan` from the flags; one ConfigError naming the flag
    for a malformed value."""
    from ..plan import DEFAULT_HORIZON
    from ..plan.grid import DEFAULT_SIZES

    kwargs = dict(
        model=args.model, hardware=args.hardware,
        target_tokens_per_s=_positive(args.target_tokens_per_s, "--target-tokens-per-s", "tokens/s"),
        budget_gb=_positive(args.budget_gb, "--budget-gb", "GB"),
        strategies=_names(args.strategies), evictions=_names(args.evictions), partitions=_names(args.partitions),
        batch_size=_number(args.batch_size, "--batch-size", int), n_jobs=_number(args.jobs, "--jobs", int),
        sizes=DEFAULT_SIZES if args.sizes is None else _number(args.sizes, "--sizes", int),
        horizon=DEFAULT_HORIZON, progress=None,
    )
    if args.cache_slots is not None:
        kwargs["cache_slots"] = [_number(t, "--cache-slots", int) for t in _names(args.cache_slots)]
    if args.cache_gb is not None:
        kwargs["cache_gb"] = [_positive(t, "--cache-gb", "GB") for t in _names(args.cache_gb)]
    if args.horizon is not None:
        kwargs["horizon"] = None if args.horizon.strip().lower() == "all" else _number(args.horizon, "--horizon", int)
    return kwargs


def run(args) -> int:
    from ..plan import plan
    from ..plan.page import answer_lines
    from ..trace import read_trace

    kwargs = plan_kwargs(args)
    trace = read_trace(args.trace)
    result = plan(trace, trace_name=args.trace, **kwargs)
    print("\n".join(answer_lines(result)))
    if args.out:
        paths = result.write(args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
