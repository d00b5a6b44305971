"""``fastsim trace import``: turn a serving engine's routing log into a Parquet trace."""
from __future__ import annotations

import json
import sys

from ..errors import TraceError
from ..trace.importers import (
    FIELD_ALIASES, FORMATS, LAYOUTS, ON_RESTART, import_trace, parse_field_options,
)


def register(trace_subparsers) -> None:
    roles = ", ".join(f"{role} ({'/'.join(names)})" for role, names in FIELD_ALIASES.items())
    parser = trace_subparsers.add_parser(
        "import",
        help="import a routing log (npy, npz, jsonl, csv) as a Parquet trace",
        description=(
            "Import a routing log written by a serving engine and write it as a fastsim Parquet "
            "trace. Gaps become -1 entries; records that are not routing records are skipped and "
            "counted; contradictions (a layer twice for one token, an id out of range) are errors "
            "naming the line. Several text logs (each holding some layers) merge by request and "
            "token; .gz and .zst compressed text logs are read as they are."
        ),
    )
    parser.add_argument("src", metavar="SRC", nargs="+", help="the routing log(s)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="format of SRC (default: from its suffix: .npy, .npz, .jsonl/.ndjson, .csv, "
        "optionally with .gz or .zst)",
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
        "(steps, requests, top_k) arrays; text layout: long = one row per routed expert",
    )
    parser.add_argument(
        "--on-restart",
        choices=ON_RESTART,
        default="error",
        help="a token index that goes back within one request id: an error naming both lines "
        "(default), a new sequence, or a new recorded forward pass (one sequence per pass, "
        "metadata batching=recorded)",
    )
    parser.add_argument(
        "--layers",
        metavar="L,L,...",
        help="the model layers the log holds (ascending); the trace holds those only and its "
        "model becomes the derived profile NAME[L,L,...]",
    )
    parser.add_argument(
        "--record-type",
        metavar="T",
        help="the type field value of routing records (default: the first routing record's)",
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
    parser.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="experts per token and layer; below --model's own (an engine run at fewer experts) "
        "the trace's model becomes the derived profile NAME[k=K]",
    )
    parser.add_argument(
        "--sequence-lengths",
        metavar="N,N,...",
        help="split a single (tokens, layers, top_k) array into requests of these lengths",
    )
    parser.set_defaults(func=run)


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise TraceError(f"--layers {text!r} must be comma-separated layer numbers") from None


def _lengths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise TraceError(f"--sequence-lengths {text!r} must be comma-separated integers") from None


def run(args) -> int:
    trace = import_trace(
        args.src if len(args.src) > 1 else args.src[0],
        args.format,
        model=args.model,
        num_experts=args.num_experts,
        num_layers=args.num_layers,
        top_k=args.top_k,
        layout=args.layout,
        fields=parse_field_options(args.field),
        sequence_lengths=_lengths(args.sequence_lengths),
        on_restart=args.on_restart,
        layers=_layers(args.layers),
        record_type=args.record_type,
    )
    trace.write(args.out)
    notes = []
    if trace.model is not None:
        notes.append(f"model {trace.model}")
    if trace.metadata.get("batching") == "recorded":
        notes.append("recorded forward passes")
    if trace.prompt_tokens is not None:
        notes.append(f"{trace.num_prompt_tokens} prompt tokens")
    skipped = json.loads(trace.metadata.get("skipped_records", "{}"))
    if skipped:
        notes.append(f"{sum(skipped.values())} non-routing records skipped")
    print(
        f"wrote {args.out}: {trace.num_sequences} sequences, {trace.num_tokens} tokens, "
        f"{trace.num_layers} layers, top-{trace.top_k} of {trace.num_experts} experts"
        + "".join(f"; {note}" for note in notes),
        file=sys.stdout,
    )
    return 0
