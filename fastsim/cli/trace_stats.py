"""``fastsim trace stats``: routing statistics of a trace file (see ``docs/trace-stats.md``)."""
from __future__ import annotations

import json

from ..trace.parquet import read_trace
from ..trace.stats import LAYER_KEYS, trace_stats

# Column headings of the human table, in LAYER_KEYS order.
_HEADINGS = {
    "entropy": "entropy", "gini": "gini", "reuse": "reuse", "reuse_shuffled": "shuffled",
    "top10_coverage": "top10", "top16_coverage": "top16", "top25_coverage": "top25",
    "effective_experts": "eff>1%", "cross_layer": "cross",
}


def register(trace_subparsers) -> None:
    stats = trace_subparsers.add_parser(
        "stats",
        help="routing statistics: balance, reuse, cross-layer predictability, sequence lengths",
        description=(
            "Print per-layer and layer-averaged routing statistics of a Parquet trace: normalised "
            "entropy, Gini, top-10/16/25 coverage, experts above 1%% of use, previous-token reuse "
            "and its time-shuffled baseline, cross-layer predictability, sequence lengths."
        ),
    )
    stats.add_argument("file", metavar="FILE", help="Parquet trace")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(func=_stats)


def _stats(args) -> int:
    trace = read_trace(args.file)
    d = trace_stats(trace)
    if args.json:
        print(json.dumps(d, sort_keys=True))
        return 0
    print(f"{args.file}: {trace!r}")
    lengths = d["sequence_lengths"]
    print(
        "sequence lengths: "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in lengths.items())
    )
    prompts = d["prompt_lengths"]
    print(
        "prompt lengths: "
        + ("none marked" if prompts is None else ", ".join(f"{k} {_fmt(v)}" for k, v in prompts.items()))
    )
    width = max(len(h) for h in _HEADINGS.values())
    print(f"{'layer':>7} " + " ".join(f"{_HEADINGS[k]:>{width}}" for k in LAYER_KEYS))
    print(f"{'mean':>7} " + " ".join(f"{_fmt(d[k]):>{width}}" for k in LAYER_KEYS))
    for row in d["per_layer"]:
        print(f"{row['layer']:>7} " + " ".join(f"{_fmt(row[k]):>{width}}" for k in LAYER_KEYS))
    return 0


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"
