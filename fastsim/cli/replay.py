"""``fastsim replay``: one replay of a trace file, printed as a table or JSON; or, with
``--from-row TABLE:N``, the configuration of a result row replayed again
(:func:`fastsim.replay_row`), with a verdict on whether it reproduces the row."""
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


def _name_value(text: str, flag: str, files: frozenset = frozenset()) -> tuple[str, float | str]:
    """``NAME=VALUE``: a number, or the path as given where ``NAME`` is in ``files`` (a strategy's
    file parameters)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"{flag} expects NAME=VALUE, got {text!r}")
    if name in files:
        return name, value
    return name, _number(value, f"{flag} {name}")


def _file_params(strategy) -> frozenset:
    """The names of a strategy's file parameters (none for a name that is not a strategy: the
    replay's own check names that)."""
    from ..strategies import get_strategy

    try:
        return frozenset(p.name for p in get_strategy(strategy).params if p.kind == "file")
    except ConfigError:
        return frozenset()


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


def _choice(text: str, flag: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise ConfigError(f"{flag} must be one of {', '.join(allowed)}, got {text!r}")
    return text


def _cap(text: str | None, flag: str, minimum: int):
    """An integer cap ``>= minimum``, ``None`` when the flag is absent or ``none``."""
    if text is None or text.strip().lower() == "none":
        return None
    value = _count(text, flag)
    if value < minimum:
        raise ConfigError(f"{flag} must be at least {minimum} (or none), got {value}")
    return value


def _bytes(text: str, flag: str, scale: float) -> int:
    """A byte count from a number of ``scale`` bytes (GB: 1e9), zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{flag} needs a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{flag} must be zero or positive, got {text}")
    if scale == 1 and not value.is_integer():
        raise ConfigError(f"{flag} needs a whole number of bytes, got {text}")
    return int(round(value * scale))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="replay a trace under one strategy, cache and GPU",
        description="Replay a routing trace through the expert cache and transfer timeline (SPEC sections 3, 6 and 7).",
    )
    p.add_argument("--trace", help="Parquet trace file (with --from-row: replaces the row's trace; same fingerprint)")
    p.add_argument("--from-row", metavar="TABLE:N",
                   help="replay row N (from 0) of a results table again, with the row's configuration, and say "
                        "whether it reproduces the row (exit 1 when it does not)")
    p.add_argument("--strategy", default="on-demand", help="strategy name (default: on-demand)")
    p.add_argument("--model", help="model profile: built-in name or TOML file (default: the trace's)")
    p.add_argument("--hardware", default="rtx3090", help="hardware profile: built-in name or TOML file")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-gb", help="cache size in GB (1 GB = 1e9 bytes), or 'auto' (GPU memory less dense "
                                          "weights, KV cache and a reserve)")
    cache.add_argument("--cache-bytes", help="cache size in bytes, or 'auto'")
    cache.add_argument("--cache-slots", help="cache size in experts, or 'working-set'")
    p.add_argument(
        "--eviction", default="lru", metavar="NAME",
        help="eviction policy: lru (default), belady, fifo, lfu, lfru, activation-aware, score-aware or a registered one",
    )
    p.add_argument(
        "--eviction-param", action="append", default=[], metavar="NAME=VALUE",
        help="eviction policy parameter (repeatable), e.g. --eviction-param alpha=0.3",
    )
    add_cache_layout_flags(p)
    p.add_argument("--batch-size", default="1", metavar="B", help="continuous-batching slots (default 1)")
    p.add_argument(
        "--batching", metavar="continuous|recorded",
        help="continuous batching over --batch-size slots, or one step per recorded pass (default: recorded "
             "for a trace imported with --on-restart new-step, else continuous)",
    )
    p.add_argument("--max-prefetch-loads", metavar="N", help="cap on prefetch loads per step and layer")
    p.add_argument(
        "--param", "-p", action="append", default=[], metavar="NAME=VALUE",
        help="strategy parameter (repeatable), e.g. -p k=16 -p decay_factor=0.99",
    )
    p.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import MODULE first (repeatable): user strategies and eviction policies register there",
    )
    x = p.add_argument_group("execution (SPEC section 7, docs/model.md)")
    x.add_argument("--timeline", default="simple", metavar="simple|layered",
                   help="layer anatomy: simple (default) or layered (attention and router before the experts)")
    x.add_argument("--link", default="fifo", metavar="fifo|demand-first",
                   help="host-to-device link order: fifo (default) or demand-first")
    x.add_argument("--max-inflight-prefetches", metavar="N", help="cap on prefetch transfers pending at once (N >= 1)")
    x.add_argument("--miss-execution", default="load", metavar="load|cpu|zero-copy",
                   help="where a miss runs: load (default), cpu (Fiddler) or zero-copy")
    x.add_argument("--max-uploads-per-layer", metavar="M",
                   help="with --miss-execution cpu or zero-copy: at most M demand loads per step and layer")
    x.add_argument("--overflow", default="error", metavar="error|exceed",
                   help="a layer's experts that do not fit the cache: error (default) or exceed")
    x.add_argument("--prefill", action="store_true", help="replay each prompt as one step (the trace must mark prompts)")
    reserve = x.add_mutually_exclusive_group()
    reserve.add_argument("--reserve-gb", metavar="GB", help="with an auto cache: workspace left free, GB (default 2 GiB)")
    reserve.add_argument("--reserve-bytes", metavar="BYTES", help="with an auto cache: workspace left free, bytes")
    x.add_argument("--context-tokens", metavar="N",
                   help="with an auto cache: context tokens per slot's KV cache (default: the trace's longest sequence)")
    p.add_argument("--json", action="store_true", help="print one JSON object: config and metrics")
    # the flags that set a configuration, which --from-row takes from its row instead
    own = {"trace", "from_row", "json", "imports", "help"}
    p.set_defaults(func=run, configuration_flags=tuple(
        (a.dest, a.default, a.option_strings[0]) for a in p._actions if a.dest not in own))


def add_cache_layout_flags(p) -> None:
    """The partition and pin flags of ``fastsim replay`` and ``fastsim bound`` (:func:`cache_kwargs` reads them)."""
    p.add_argument(
        "--cache-partition", default="global", metavar="global|per-layer|N,N,...",
        help="split of the cache between layers: global (default), per-layer, or one size per layer",
    )
    p.add_argument("--pinned", metavar="N", help="pin the N most used keys of the trace's first --pin-profile tokens")
    p.add_argument("--pinned-keys", metavar="K,K,...", help="pin these keys (layer * num_experts + expert)")
    p.add_argument("--pin-profile", metavar="F", help="fraction of the trace's tokens --pinned counts on (default 1.0)")


def replay_kwargs(args) -> dict:
    """The keyword arguments of :func:`fastsim.replay` that the flags give (the trace aside).

    Every malformed value raises one :class:`ConfigError` naming its flag.
    """
    cache = cache_kwargs(args)
    batch = _count(args.batch_size, "--batch-size")
    cap = None if args.max_prefetch_loads is None else _count(args.max_prefetch_loads, "--max-prefetch-loads")
    files = _file_params(args.strategy)
    params = dict(_name_value(t, "--param", files) for t in args.param)
    ev_params = dict(_name_value(t, "--eviction-param") for t in args.eviction_param)
    return dict(
        strategy=args.strategy, model=args.model, hardware=args.hardware, **cache, eviction=args.eviction,
        batch_size=batch, batching=_batching(args), max_prefetch_loads=cap, eviction_params=ev_params or None,
        **execution_kwargs(args, cache["cache_bytes"]), **params,
    )


def _batching(args):
    """``--batching`` checked, or None (the trace's default)."""
    from ..timeline.recorded import BATCHINGS

    return None if args.batching is None else _choice(args.batching, "--batching", BATCHINGS)


def cache_kwargs(args, allow_auto: bool = True) -> dict:
    """The cache's size, partition and pins from the flags ``fastsim replay`` and ``fastsim bound``
    share: ``cache_slots``, ``cache_bytes``, ``cache_partition``, ``pinned`` and ``pin_profile``.

    ``allow_auto=False`` (the bound, which counts slots) reads ``--cache-gb auto`` as a malformed
    number. Every malformed value raises one :class:`ConfigError` naming its flag.
    """
    cache_slots, cache_bytes = _cache_size(args, allow_auto)
    return dict(cache_slots=cache_slots, cache_bytes=cache_bytes, cache_partition=_partition(args),
                **_pins(args))


def _cache_size(args, allow_auto: bool):
    """``(cache_slots, cache_bytes)`` from ``--cache-bytes``, ``--cache-gb`` or ``--cache-slots``."""
    if getattr(args, "cache_bytes", None) is not None:
        cache_bytes = "auto" if args.cache_bytes.strip().lower() == "auto" else _bytes(args.cache_bytes, "--cache-bytes", 1)
        return None, cache_bytes
    if allow_auto and args.cache_gb is not None and args.cache_gb.strip().lower() == "auto":
        return None, "auto"
    if args.cache_gb is not None:
        try:
            gb = float(args.cache_gb)
        except ValueError:
            raise ConfigError(f"--cache-gb needs a number of GB, got {args.cache_gb!r}") from None
        if not gb >= 0 or gb == float("inf"):
            raise ConfigError(f"--cache-gb must be zero or positive, got {args.cache_gb}")
        return None, int(gb * 1e9)
    cache_slots = args.cache_slots
    if cache_slots is not None and cache_slots != "working-set":
        try:
            cache_slots = int(cache_slots)
        except ValueError:
            raise ConfigError(f"--cache-slots must be a number or 'working-set', got {cache_slots!r}") from None
    return cache_slots, None


def _partition(args):
    partition = args.cache_partition.strip()
    if partition in ("global", "per-layer"):
        return partition
    try:
        return _int_list(partition, "--cache-partition")
    except ConfigError:
        raise ConfigError(
            f"--cache-partition must be global, per-layer or comma-separated sizes (one per layer), got {args.cache_partition!r}"
        ) from None


def _pins(args) -> dict:
    """``pinned`` and ``pin_profile`` from ``--pinned`` or ``--pinned-keys`` and ``--pin-profile``."""
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
    return dict(pinned=pinned, pin_profile=pin_profile)


def execution_kwargs(args, cache_bytes) -> dict:
    """The SPEC section 7 keyword arguments of :func:`fastsim.replay` that the flags give."""
    from ..timeline.options import LINKS, MISS_EXECUTIONS, OVERFLOWS, TIMELINES

    miss = _choice(args.miss_execution, "--miss-execution", MISS_EXECUTIONS)
    uploads = _cap(args.max_uploads_per_layer, "--max-uploads-per-layer", 0)
    if uploads is not None and miss == "load":
        raise ConfigError("--max-uploads-per-layer caps uploads when the other misses run elsewhere: it needs "
                          "--miss-execution cpu or zero-copy")
    out = dict(
        timeline=_choice(args.timeline, "--timeline", TIMELINES), link=_choice(args.link, "--link", LINKS),
        max_inflight_prefetches=_cap(args.max_inflight_prefetches, "--max-inflight-prefetches", 1),
        miss_execution=miss, max_uploads_per_layer=uploads, overflow=_choice(args.overflow, "--overflow", OVERFLOWS),
        prefill=bool(args.prefill),
    )
    budget = {}
    if args.reserve_gb is not None:
        budget["reserve_bytes"] = _bytes(args.reserve_gb, "--reserve-gb", 1e9)
    elif args.reserve_bytes is not None:
        budget["reserve_bytes"] = _bytes(args.reserve_bytes, "--reserve-bytes", 1)
    if args.context_tokens is not None:
        budget["context_tokens"] = _cap(args.context_tokens, "--context-tokens", 0)
    if budget and cache_bytes != "auto":
        flag = next(f for f, given in (("--reserve-gb", args.reserve_gb), ("--reserve-bytes", args.reserve_bytes),
                                        ("--context-tokens", args.context_tokens)) if given is not None)
        raise ConfigError(f"{flag} sizes an auto cache: it needs --cache-gb auto (or --cache-bytes auto)")
    return {**out, **budget}


def _execution_text(cfg: dict) -> str:
    """The execution options that differ from their defaults, for the summary line."""
    from ..timeline.options import ExecutionOptions

    defaults = ExecutionOptions().describe()
    changed = [f"{k} {v}" if not isinstance(v, bool) else k for k, v in cfg.items() if k in defaults and v != defaults[k]]
    return (", " + ", ".join(changed)) if changed else ""


def run(args) -> int:
    from ..replay import METRICS, replay
    from ..replay_execution import EXECUTION_METRICS
    from ..sweep.axes import eviction_choice
    from ..trace import read_trace

    import importlib

    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"--import {module}: cannot import it: {exc}") from None
    if args.from_row is not None:
        return run_from_row(args)
    if args.trace is None:
        raise ConfigError("give the trace to replay with --trace FILE (or a result row with --from-row TABLE:N)")
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
    batched = "recorded batching" if cfg.get("batching") == "recorded" else f"batch {cfg['batch_size']}"
    line = (
        f"{cfg['strategy']} on {cfg['model']} / {cfg['hardware']}: cache {cfg['cache_slots']} experts "
        f"({cfg['cache_request']}), {cfg['eviction']}, {batched}"
    )
    if cfg.get("eviction_params"):
        line += " (" + ", ".join(f"{k}={v:g}" for k, v in cfg["eviction_params"].items()) + ")"
    if cfg.get("cache_partition", "global") != "global":
        line += f", partition {cfg['cache_partition']} {cfg['partition_sizes']}"
    if cfg.get("pinned"):
        line += f", {len(cfg['pinned'])} pinned ({cfg['pin_request']})"
    line += _execution_text(cfg)
    print(line)
    keys = list(METRICS) + [k for k in EXECUTION_METRICS if k in result.metrics]
    width = max(len(k) for k in keys)
    for key in keys:
        value = result.metrics[key]
        text = f"{value:.6g}" if isinstance(value, float) else f"{value}"
        print(f"  {key:<{width}}  {text}")
    return 0


# ------------------------------------------------------------------------------ --from-row


def _table_row(text: str) -> tuple[str, int]:
    """``TABLE:N`` as ``(TABLE, N)``; ConfigError naming the flag."""
    table, sep, number = text.rpartition(":")
    if not sep or not table or not number.strip().isdigit():
        raise ConfigError(f"--from-row expects TABLE:N (a results table and a row number from 0), got {text!r}")
    return table, int(number)


def run_from_row(args) -> int:
    """Replay a result row again; exit 0 when it reproduces, 1 when it does not."""
    from ..replay_row import replay_row

    given = [flag for dest, default, flag in args.configuration_flags if getattr(args, dest, default) != default]
    if given:
        raise ConfigError(f"--from-row replays the row's own configuration: {given[0]} cannot be given with it")
    table, n = _table_row(args.from_row)
    again = replay_row(table, n, trace=args.trace)
    if args.json:
        print(json.dumps(_row_json(table, again), indent=2))
    else:
        print("\n".join(_row_lines(table, again)))
    return 0 if again.reproduces else 1


def _row_metric_names(again) -> list[str]:
    from ..sweep.results import ALL_METRICS

    names = ["cache_slots", *ALL_METRICS]
    return [m for m in names if m in again.row and (again.row[m] is not None or m in again.differences)]


def _row_lines(table: str, again) -> list[str]:
    """The row's configuration, where the trace came from, each metric beside the row's, the verdict."""
    row, n = again.row, again.index
    cfg = again.result.config
    lines = [
        f"row {n} of {table}: {row['strategy']} on {row['model']} / {row['hardware']}, cache {cfg['cache_slots']} "
        f"experts ({row['cache_request']}), {row['eviction']}, batch {row['batch_size']}{_execution_text(cfg)}",
        f"  {again.trace_origin}; fingerprint {row['trace_fingerprint']} as the row's",
        "  configuration hash as the row's" if again.config_hash_matches else
        "  configuration hash differs from the row's (another fastsim version, or profile figures the table "
        "does not record): rebuilt from the row's columns",
    ]
    names = _row_metric_names(again)
    width = max(len(m) for m in names)
    metrics = {**again.result.metrics, "cache_slots": cfg["cache_slots"]}
    lines.append(f"  {'metric':<{width}}  {'row':>16}  {'replayed':>16}")
    for m in names:
        mark = "  differs" if m in again.differences else ""
        lines.append(f"  {m:<{width}}  {_cell(row[m]):>16}  {_cell(metrics.get(m)):>16}{mark}")
    if again.reproduces:
        lines.append(f"reproduces row {n}")
    else:
        lines.append(f"does not reproduce row {n}: " + ", ".join(
            f"{m} {_exact(a)} in the row, {_exact(b)} replayed" for m, (a, b) in again.differences.items()))
    return lines


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _exact(value) -> str:
    """A value in full: floats that differ past the table's ten digits still read apart."""
    return "-" if value is None else repr(value)


def _row_json(table: str, again) -> dict:
    names = _row_metric_names(again)
    return {
        "table": table, "row": again.index, "reproduces": again.reproduces,
        "differences": {m: {"row": a, "replayed": b} for m, (a, b) in again.differences.items()},
        "trace": again.trace_origin, "config_hash_matches": again.config_hash_matches,
        "config": again.result.config, "metrics": again.result.metrics,
        "row_metrics": {m: again.row[m] for m in names},
    }
