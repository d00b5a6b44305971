"""``fastsim trace import``: turn a serving engine's routing log into a Parquet trace."""
from __future__ import annotations

import sys

from ..errors import TraceError
from ..trace.importers import FIELD_ALIASES, FORMATS, LAYOUTS, import_trace, parse_field_options


def register(trace_subparsers) -> None:
    roles = ", ".join(f"{role} ({'/'.join(names)})" for role, names in FIELD_ALIASES.items())
    parser = trace_subparsers.add_parser(
        "import",
        help="import a routing log (npy, npz, jsonl, csv) as a Parquet trace",
        description=(
            "Import a routing log written by a serving engine and write it as a fastsim Parquet "
            "trace. Gaps become -1 entries; contradictions (a layer twice for one token, an id "
            "out of range) are errors naming the line."
        ),
    )
    parser.add_argument("src", metavar="SRC", help="the routing log")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="format of SRC (default: from its suffix: .npy, .npz, .jsonl/.ndjson, .csv)",
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="model profile (name or TOML file): gives num_experts, num_layers, top_k",
    )
    parser.add_argument("--out", "-o", required=True, metavar="F", help="Parquet trace to write")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="tokens-layers-topk",
        help="NumPy layout: (tokens, layers, top_k) arrays (default) or per-layer "
        "(steps, requests, top_k) arrays",
    )
    parser.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help=f"jsonl/csv field name for a role (repeatable; NAME empty switches an optional role "
        f"off). Roles and default names tried in order: {roles}",
    )
    parser.add_argument("--num-experts", type=int, metavar="E", help="experts per layer")
    parser.add_argument("--num-layers", type=int, metavar="L", help="MoE layers")
    parser.add_argument("--top-k", type=int, metavar="K", help="experts per token and layer")
    parser.add_argument(
        "--sequence-lengths",
        metavar="N,N,...",
        help="split a single (tokens, layers, top_k) array into requests of these lengths",
    )
    parser.set_defaults(func=run)


def _lengths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise TraceError(f"--sequence-lengths {text!r} must be comma-separated integers") from None


def run(args) -> int:
    trace = import_trace(
        args.src,
        args.format,
        model=args.model,
        num_experts=args.num_experts,
        num_layers=args.num_layers,
        top_k=args.top_k,
        layout=args.layout,
        fields=parse_field_options(args.field),
        sequence_lengths=_lengths(args.sequence_lengths),
    )
    trace.write(args.out)
    print(
        f"wrote {args.out}: {trace.num_sequences} sequences, {trace.num_tokens} tokens, "
        f"{trace.num_layers} layers, top-{trace.top_k} of {trace.num_experts} experts",
        file=sys.stdout,
    )
    return 0
