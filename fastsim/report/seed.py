"""The seed write-up's published figures, and how a sweep's results line up against them.

The write-up's evaluation code published one CSV per model (five strategies x batch sizes 1, 2,
4, 8, 16, ten runs each). The two files use different column names; :func:`load_published`
reads both into :class:`PublishedRow` objects and tells which model a file holds *by its
content* (the write-up's batch-1 on-demand latency and memory), not by its name.
"""
from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .tables import Summary

__all__ = [
    "PublishedRow", "Published", "SEED_MODELS", "SEED_HARDWARE", "REPRODUCES", "seed_profile_first", "load_published", "find_published",
    "kind_of", "pick", "strategy_cache",
]

#: The seed's strategies by letter.
LETTERS = {"A": "on-demand", "B": "oracle", "C": "multi-look", "D": "top-k", "E": "intelligent"}
#: The write-up's batch-1 on-demand figures (section 7): latency ms, memory MB.
WRITEUP_ON_DEMAND = {"switch": (2281.5, 28.0), "qwen": (2039.1, 900.0)}
#: Model shapes (num_layers, num_experts, top_k) of the seed's two models.
SHAPES = {"switch": (12, 128, 1), "qwen": (28, 64, 8)}
#: The model profiles that reproduce the seed's own figures, and its hardware timing.
SEED_MODELS = {"seed-switch": "switch", "seed-qwen": "qwen"}
SEED_HARDWARE = "rtx3090-seed"
#: A spec's ``reproduces`` value (stored in the results table's metadata) -> the published kind.
REPRODUCES = {"seed-switch": "switch", "seed-qwen": "qwen"}
TITLES = {"switch": "Switch Transformer (128 experts, 12 layers, top-1)", "qwen": "Qwen MoE (64 experts, 28 layers, top-8)"}


@dataclass(frozen=True)
class PublishedRow:
    """One strategy at one batch size as the seed published it (over its ten runs)."""

    strategy: str
    batch_size: int
    latency_mean: float
    latency_std: float
    latency_min: float
    latency_max: float
    latency_p95: float  # NaN where the file has no percentile columns
    latency_p99: float
    hit_rate: float
    memory_mb: float
    loads: float
    misses: float


@dataclass
class Published:
    """One published CSV: ``kind`` is ``"switch"`` or ``"qwen"``."""

    kind: str
    file: str
    rows: dict  # (strategy, batch_size) -> PublishedRow

    def get(self, strategy: str, batch: int) -> PublishedRow | None:
        return self.rows.get((strategy, batch))

    def speedup(self, strategy: str, batch: int) -> float:
        """On-demand's mean latency over the strategy's, at the same batch size."""
        base, row = self.get("on-demand", batch), self.get(strategy, batch)
        if base is None or row is None or not row.latency_mean:
            return math.nan
        return base.latency_mean / row.latency_mean

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({b for _, b in self.rows})


def _num(row: dict, *names) -> float:
    for n in names:
        v = row.get(n)
        if v not in (None, ""):
            return float(v)
    return math.nan


def _read_csv(path: Path) -> dict:
    rows = {}
    with path.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            strategy = LETTERS.get((r.get("strategy") or "").strip())
            if strategy is None or not r.get("batch_size"):
                continue
            lat = ("inference_latency_ms", "total_latency_ms")
            rows[(strategy, int(r["batch_size"]))] = PublishedRow(
                strategy=strategy,
                batch_size=int(r["batch_size"]),
                latency_mean=_num(r, *(f"{p}_mean" for p in lat)),
                latency_std=_num(r, *(f"{p}_std" for p in lat)),
                latency_min=_num(r, *(f"{p}_min" for p in lat)),
                latency_max=_num(r, *(f"{p}_max" for p in lat)),
                latency_p95=_num(r, *(f"{p}_p95" for p in lat)),
                latency_p99=_num(r, *(f"{p}_p99" for p in lat)),
                hit_rate=_num(r, "cache_hit_rate_mean"),
                memory_mb=_num(r, "memory_usage_mb_mean"),
                loads=_num(r, "total_experts_loaded_mean", "expert_loads_mean"),
                misses=_num(r, "cache_misses_mean"),
            )
    return rows


def _classify(rows: dict) -> str | None:
    base = rows.get(("on-demand", 1))
    if base is None:
        return None
    for kind, (latency, memory) in WRITEUP_ON_DEMAND.items():
        if abs(base.latency_mean - latency) <= 0.05 and abs(base.memory_mb - memory) < 1.0:  # the write-up rounds
            return kind
    return None


def load_published(folder) -> dict[str, Published]:
    """Every published CSV in ``folder`` that matches one of the write-up's tables, by kind.

    Files that are not such tables (or cannot be read) are skipped.
    """
    found: dict[str, Published] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.csv")):
        try:
            rows = _read_csv(path)
        except (OSError, UnicodeDecodeError, ValueError, csv.Error):
            continue
        kind = _classify(rows)
        if kind is not None and kind not in found:
            found[kind] = Published(kind, path.name, rows)
    return found


def find_published(table_path, explicit=None) -> Path | None:
    """Where the published CSVs are: ``explicit``, else ``seed-published`` beside the table's
    folder, else ``results/seed-published`` under the current directory."""
    if explicit is not None:
        return Path(explicit)
    candidates = []
    if table_path is not None:
        candidates.append(Path(table_path).resolve().parent.parent / "seed-published")
    candidates.append(Path.cwd() / "results" / "seed-published")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def seed_profile_first(settings: dict) -> list:
    """The setting keys ``(trace, model, hardware)`` of a table reproducing the seed, those on the
    seed's own profiles (a seed model or the seed's GPU timing) first, then the others in order."""
    keys = list(settings)
    return sorted(keys, key=lambda k: not (k[1] in SEED_MODELS or k[2] == SEED_HARDWARE))


def kind_of(s: Summary) -> str | None:
    """``"switch"`` or ``"qwen"`` for a configuration on a model of that shape, else None.

    The fallback for tables whose spec does not say what it reproduces (``reproduces``)."""
    if s.model in SEED_MODELS:
        return SEED_MODELS[s.model]
    for kind, shape in SHAPES.items():
        if s.shape == shape:
            return kind
    return None


def strategy_cache(summaries: list[Summary]) -> str | None:
    """The seed's cache among a setting's prefetching caches: the most common one that is not
    ``working-set``, the smallest (in slots) on a tie."""
    caches = strategy_caches(summaries)
    return caches[0] if caches else None


def strategy_caches(summaries: list[Summary]) -> list[str]:
    """Every cache prefetching configurations ran with (not ``working-set``), most common first,
    then smallest first."""
    counts = Counter(s.cache_request for s in summaries if s.strategy != "on-demand" and s.cache_request != "working-set")
    slots = {s.cache_request: s.cache_slots or 0 for s in summaries}
    return sorted(counts, key=lambda c: (-counts[c], slots.get(c, 0)))


def pick(summaries: list[Summary], strategy: str, batch: int, cache: str | None) -> Summary | None:
    """The configuration of ``strategy`` at ``batch`` with cache ``cache``: default parameters
    (no distinguishing parameters) preferred, LRU and no prefetch cap preferred."""
    found = [
        s for s in summaries
        if s.strategy == strategy and s.batch_size == batch and s.cache_request == cache and s.runs > 0
    ]
    if not found:
        return None
    found.sort(key=lambda s: (bool(s.label_params), s.eviction != "lru", s.max_prefetch_loads is not None))
    return found[0]
