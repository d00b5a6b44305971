"""``fastsim replay``: one replay of a trace file, printed as a table or JSON."""
from __future__ import annotations

import json

from ..errors import ConfigError


def _number(text: str, what: str):
    """``text`` as an int or float (``true``/``false`` as 1/0); ConfigError naming ``what``."""
    try:
        number = float(text)
    except ValueError:
        low = text.strip().lower()
        if low in ("true", "false"):
            return float(low == "true")
        raise ConfigError(f"{what} needs a number, got {text!r}") from None
    return int(number) if number.is_integer() else number


def _name_value(text: str, flag: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"{flag} expects NAME=VALUE, got {text!r}")
    return name, _number(value, f"{flag} {name}")


def _int_list(text: str, flag: str) -> list[int]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise ConfigError(f"{flag} expects comma-separated integers, got {text!r}")
    try:
        return [int(t) for t in items]
    except ValueError:
        raise ConfigError(f"{flag} expects comma-separated integers, got {text!r}") from None


def _count(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag} needs an integer, got {text!r}") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay a trace under one strategy, cache and GPU",
        description="Replay a routing trace through the expert cache and transfer timeline (SPEC sections 3 and 6).",
    )
    p.add_argument("--trace", required=True, help="Parquet trace file")
    p.add_argument("--strategy", default="on-demand", help="strategy name (default: on-demand)")
    p.add_argument("--model", help="model profile: built-in name or TOML file (default: the trace's)")
    p.add_argument("--hardware", default="rtx3090", help="hardware profile: built-in name or TOML file")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-gb", help="cache size in GB (1 GB = 1e9 bytes)")
    cache.add_argument("--cache-slots", help="cache size in experts, or 'working-set'")
    p.add_argument(
        "--eviction", default="lru", metavar="NAME",
        help="eviction policy: lru (default), belady, fifo, lfu, lfru, activation-aware, score-aware or a registered one",
    )
    p.add_argument(
        "--eviction-param", action="append", default=[], metavar="NAME=VALUE",
        help="eviction policy parameter (repeatable), e.g. --eviction-param alpha=0.3",
    )
    p.add_argument(
        "--cache-partition", default="global", metavar="global|per-layer|N,N,...",
        help="split of the cache between layers: global (default), per-layer, or one size per layer",
    )
    p.add_argument("--pinned", metavar="N", help="pin the N most used keys of the trace's first --pin-profile tokens")
    p.add_argument("--pinned-keys", metavar="K,K,...", help="pin these keys (layer * num_experts + expert)")
    p.add_argument("--pin-profile", metavar="F", help="fraction of the trace's tokens --pinned counts on (default 1.0)")
    p.add_argument("--batch-size", default="1", metavar="B", help="continuous-batching slots (default 1)")
    p.add_argument("--max-prefetch-loads", metavar="N", help="cap on prefetch loads per step and layer")
    p.add_argument(
        "--param", "-p", action="append", default=[], metavar="NAME=VALUE",
        help="strategy parameter (repeatable), e.g. -p k=16 -p decay_factor=0.99",
    )
    p.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import MODULE first (repeatable): user strategies and eviction policies register there",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object: config and metrics")
    p.set_defaults(func=run)


def replay_kwargs(args) -> dict:
    """The keyword arguments of :func:`fastsim.replay` that the flags give (the trace aside).

    Every malformed value raises one :class:`ConfigError` naming its flag.
    """
    cache_slots = None
    cache_bytes = None
    if args.cache_gb is not None:
        try:
            gb = float(args.cache_gb)
        except ValueError:
            raise ConfigError(f"--cache-gb needs a number of GB, got {args.cache_gb!r}") from None
        if not gb >= 0 or gb == float("inf"):
            raise ConfigError(f"--cache-gb must be zero or positive, got {args.cache_gb}")
        cache_bytes = int(gb * 1e9)
    elif args.cache_slots is not None:
        cache_slots = args.cache_slots
        if cache_slots != "working-set":
            try:
                cache_slots = int(cache_slots)
            except ValueError:
                raise ConfigError(f"--cache-slots must be a number or 'working-set', got {cache_slots!r}") from None
    partition = args.cache_partition.strip()
    if partition not in ("global", "per-layer"):
        try:
            partition = _int_list(partition, "--cache-partition")
        except ConfigError:
            raise ConfigError(
                f"--cache-partition must be global, per-layer or comma-separated sizes (one per layer), got {args.cache_partition!r}"
            ) from None
    pinned = None
    if args.pinned is not None and args.pinned_keys is not None:
        raise ConfigError("give one of --pinned N and --pinned-keys K,K,..., not both")
    if args.pinned is not None:
        try:
            pinned = int(args.pinned)
        except ValueError:
            raise ConfigError(f"--pinned needs a count of keys, got {args.pinned!r}") from None
        if pinned < 0:
            raise ConfigError(f"--pinned needs a count >= 0, got {pinned}")
    elif args.pinned_keys is not None:
        pinned = _int_list(args.pinned_keys, "--pinned-keys")
    pin_profile = 1.0
    if args.pin_profile is not None:
        if args.pinned is None:
            raise ConfigError("--pin-profile needs --pinned N (it sets the fraction of the trace the count is chosen on)")
        try:
            pin_profile = float(args.pin_profile)
        except ValueError:
            raise ConfigError(f"--pin-profile must be a fraction in (0, 1], got {args.pin_profile!r}") from None
        if not 0.0 < pin_profile <= 1.0:
            raise ConfigError(f"--pin-profile must be a fraction in (0, 1], got {args.pin_profile!r}")
    batch = _count(args.batch_size, "--batch-size")
    cap = None if args.max_prefetch_loads is None else _count(args.max_prefetch_loads, "--max-prefetch-loads")
    params = dict(_name_value(t, "--param") for t in args.param)
    ev_params = dict(_name_value(t, "--eviction-param") for t in args.eviction_param)
    return dict(
        strategy=args.strategy, model=args.model, hardware=args.hardware, cache_slots=cache_slots,
        cache_bytes=cache_bytes, eviction=args.eviction, batch_size=batch,
        max_prefetch_loads=cap, eviction_params=ev_params or None,
        cache_partition=partition, pinned=pinned, pin_profile=pin_profile, **params,
    )


def run(args) -> int:
    from ..replay import METRICS, replay
    from ..sweep.axes import eviction_choice
    from ..trace import read_trace

    import importlib

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"--import {module}: cannot import it: {exc}") from None
    kwargs = replay_kwargs(args)
    try:  # the policy and its parameters are checked before the trace is read
        eviction_choice(kwargs["eviction"], kwargs["eviction_params"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    trace = read_trace(args.trace)
    result = replay(trace, **kwargs)
    if args.json:
        print(json.dumps({"config": result.config, "metrics": result.metrics}, indent=2))
        return 0
    cfg = result.config
    line = (
        f"{cfg['strategy']} on {cfg['model']} / {cfg['hardware']}: cache {cfg['cache_slots']} experts "
        f"({cfg['cache_request']}), {cfg['eviction']}, batch {cfg['batch_size']}"
    )
    if cfg.get("eviction_params"):
        line += " (" + ", ".join(f"{k}={v:g}" for k, v in cfg["eviction_params"].items()) + ")"
    if cfg.get("cache_partition", "global") != "global":
        line += f", partition {cfg['cache_partition']} {cfg['partition_sizes']}"
    if cfg.get("pinned"):
        line += f", {len(cfg['pinned'])} pinned ({cfg['pin_request']})"
    print(line)
    width = max(len(k) for k in METRICS)
    for key in METRICS:
        value = result.metrics[key]
        text = f"{value:.6g}" if isinstance(value, float) else f"{value}"
        print(f"  {key:<{width}}  {text}")
    return 0
