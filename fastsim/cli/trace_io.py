"""``fastsim trace gen`` and ``fastsim trace info``: make a synthetic trace, describe a trace file."""
from __future__ import annotations

import json
import os

from ..errors import TraceError
from ..trace.generate import DEFAULT_PARAMS, PRESETS, generate_trace
from ..trace.parquet import read_trace, write_trace


def register(trace_subparsers) -> None:
    gen = trace_subparsers.add_parser(
        "gen",
        help="generate a synthetic routing trace (Zipf popularity + token-to-token reuse)",
        description=(
            "Generate a synthetic routing trace and write it as Parquet. The shape comes from "
            "--model, from --layers/--experts/--top-k together, or from --preset (a parameter set "
            "calibrated against measured routing, whose model profile it uses)."
        ),
    )
    shape = gen.add_argument_group("shape")
    shape.add_argument("--model", metavar="NAME", help="model profile: built-in name or TOML file")
    shape.add_argument("--layers", type=int, metavar="L", help="MoE layers (instead of --model)")
    shape.add_argument("--experts", type=int, metavar="E", help="experts per layer (instead of --model)")
    shape.add_argument("--top-k", type=int, metavar="K", help="experts per token (instead of --model)")
    gen.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="calibrated parameters and model (--zipf/--reuse/--lengths, if given, override them)",
    )
    gen.add_argument("--tokens", type=int, required=True, metavar="N", help="total tokens")
    gen.add_argument(
        "--sequences",
        type=int,
        metavar="S",
        help="sequences (default 1, or tokens / mean length with --preset)",
    )
    gen.add_argument("--seed", type=int, default=0, metavar="X", help="random seed (default 0)")
    gen.add_argument(
        "--zipf",
        type=float,
        metavar="S",
        help=f"Zipf exponent of expert popularity, 0 = uniform (default {DEFAULT_PARAMS['zipf_s']})",
    )
    gen.add_argument(
        "--reuse",
        type=float,
        metavar="P",
        help="probability a slot repeats a previous-token expert "
        f"(default {DEFAULT_PARAMS['reuse']})",
    )
    gen.add_argument(
        "--lengths",
        choices=("equal", "random", "lognormal"),
        help="sequence lengths: as equal as possible, a random split, or log-normal (default equal)",
    )
    gen.add_argument("--out", required=True, metavar="FILE", help="output Parquet file")
    gen.set_defaults(func=_gen)

    info = trace_subparsers.add_parser(
        "info",
        help="describe a trace file",
        description="Validate a Parquet trace and print its shape, origin, sizes and fingerprint.",
    )
    info.add_argument("file", metavar="FILE", help="Parquet trace")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)


def _gen(args) -> int:
    explicit = (args.layers, args.experts, args.top_k)
    if args.model is not None:
        if any(v is not None for v in explicit):
            raise TraceError("give either --model or --layers/--experts/--top-k, not both")
        model = args.model
    elif all(v is not None for v in explicit):
        model = explicit
    elif args.preset is not None and not any(v is not None for v in explicit):
        model = None
    else:
        raise TraceError("give --model NAME, --preset NAME, or all of --layers, --experts and --top-k")
    trace = generate_trace(
        model,
        args.tokens,
        args.sequences,
        args.seed,
        preset=args.preset,
        zipf_s=args.zipf,
        reuse=args.reuse,
        lengths=args.lengths,
    )
    write_trace(trace, args.out)
    print(f"wrote {args.out}: {trace!r}")
    return 0


def describe(path) -> dict:
    """The figures ``fastsim trace info`` prints for the trace file at ``path``."""
    trace = read_trace(path)
    return {
        "file": os.fspath(path),
        "model": trace.model,
        "source": trace.source,
        "sequences": trace.num_sequences,
        "tokens": trace.num_tokens,
        "layers": trace.num_layers,
        "top_k": trace.top_k,
        "experts": trace.num_experts,
        "scores": trace.scores is not None,
        # Prefill tokens (the sum of the prompt lengths), None when no prompts are marked.
        "prompt_tokens": None if trace.prompt_tokens is None else trace.num_prompt_tokens,
        "prompt_sequences": None if trace.prompt_tokens is None else int((trace.prompt_tokens > 0).sum()),
        "file_bytes": os.path.getsize(path),
        "memory_bytes": trace.nbytes + trace.sequence_lengths.nbytes,
        "fingerprint": trace.fingerprint(),
        "metadata": dict(trace.metadata),
    }


def _info(args) -> int:
    d = describe(args.file)
    if args.json:
        print(json.dumps(d, sort_keys=True))
        return 0
    width = max(len(k) for k in d)
    for key, value in d.items():
        if key == "metadata":
            for mk, mv in value.items():
                print(f"{'meta.' + mk:<{width}}  {mv}")
            continue
        if value is None:
            value = "-"
        print(f"{key:<{width}}  {value}")
    return 0
