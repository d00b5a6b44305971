"""The human-readable table of a ``fastsim bench`` result."""
from __future__ import annotations

__all__ = ["format_table", "format_rate"]

# Extra fields worth a column in the notes, per case, in this order.
_NOTES = {
    "lru-vs-libcachesim": ("accesses", "fastsim_s", "baseline_s", "hits_agree"),
    "belady-vs-libcachesim": ("accesses", "fastsim_s", "baseline_s", "hits_agree"),
    "kernel-vs-reference": ("accesses", "fastsim_s", "baseline_s", "metrics_agree"),
    "parquet-load": ("ids", "fastsim_s", "baseline_s", "round_trip_equal"),
    "memory": (
        "routing_bytes", "lru_replay_growth_bytes", "lru_growth_per_routing_byte",
        "belady_replay_growth_bytes", "belady_growth_per_routing_byte",
    ),
    "compile": ("warm_load_s", "replay_s", "kernel_s", "entry_loaded_from_cache"),
}


def format_rate(value, unit: str = "") -> str:
    """``12345678`` -> ``"12.35 M unit"``; ``None`` -> ``"-"``."""
    if value is None:
        return "-"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix} {unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def _value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return format_rate(v)
    return str(v)


def _notes(row: dict) -> str:
    fields = _NOTES.get(row["case"])
    if fields is None:
        common = {"case", "fastsim_per_s", "baseline", "baseline_per_s", "ratio", "unit", "target"}
        fields = [k for k in row if k not in common][:4]
    return ", ".join(f"{k}={_value(row[k])}" for k in fields if k in row)


def format_table(result: dict) -> str:
    """Rows of cases with fastsim's rate, the baseline's, their ratio and the target."""
    m = result["machine"]
    head = (
        f"fastsim {result['fastsim_version']} bench: {result['tokens']} tokens, medians of {result['repeat']}; "
        f"{m['cpu_count']} CPUs, Python {m['python']}, numba {m['numba']}"
    )
    cols = ("case", "fastsim", "baseline", "baseline rate", "ratio", "target")
    rows = []
    for r in result["cases"]:
        unit = r.get("unit") or ""
        rows.append((
            r["case"],
            format_rate(r["fastsim_per_s"], unit),
            r["baseline"] or "-",
            format_rate(r["baseline_per_s"], unit),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r.get("target") or "",
        ))
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = [head, "", "  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    lines.append("")
    for r in result["cases"]:
        lines.append(f"{r['case']}: {_notes(r)}")
    return "\n".join(lines)
