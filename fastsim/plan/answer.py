"""The planner's answers, read off its table: the smallest cache that reaches the target, the
fastest configuration within the budget, and tokens/s against cache size per strategy."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow as pa

__all__ = ["Plan", "smallest_meeting", "best_within", "envelope"]

BOUND = "bound"
GB = 1e9


def _key(row) -> tuple:
    """Order among candidates: faster first, then the smaller cache, then grid order."""
    return (-row["tokens_per_s"], row["cache_slots"])


def smallest_meeting(rows: list[dict], target: float) -> dict:
    """``{strategy label: row or None}``: per strategy, the smallest cache where some eviction and
    partition reaches ``target`` tokens/s (the fastest of them at that size), None where none
    does."""
    out: dict = {}
    for row in rows:
        label = row["strategy_label"]
        out.setdefault(label, None)
        if row["tokens_per_s"] < target:
            continue
        best = out[label]
        if best is None or (row["cache_slots"], -row["tokens_per_s"]) < (best["cache_slots"], -best["tokens_per_s"]):
            out[label] = row
    return out


def best_within(rows: list[dict], budget_gb: float | None) -> dict | None:
    """The fastest row whose cache fits ``budget_gb`` (every row when None); None if none does.
    The comparison is in bytes, so a cache of exactly the budget fits."""
    fits = [r for r in rows if budget_gb is None or r["cache_slots"] * r["model_expert_bytes"] <= budget_gb * GB]
    return min(fits, key=_key) if fits else None


def envelope(rows: list[dict]) -> dict:
    """``{strategy label: [row, ...]}``: per strategy and cache size the fastest eviction and
    partition, by cache size."""
    best: dict = {}
    for row in rows:
        k = (row["strategy_label"], row["cache_slots"])
        if k not in best or _key(row) < _key(best[k]):
            best[k] = row
    out: dict = {}
    for (label, _), row in sorted(best.items(), key=lambda kv: kv[0][1]):
        out.setdefault(label, []).append(row)
    return out


@dataclass
class Plan:
    """What :func:`fastsim.plan` measured and what it answers.

    Attributes
    ----------
    table : pyarrow.Table
        One row per replay (the sweep table's columns: strategy and parameters, eviction,
        partition, cache slots, batch size, trace name and fingerprint, profiles, every metric)
        plus ``strategy_label`` and ``cache_gb``; then one row per partition and cache size with
        ``strategy = "bound"``: the bound's ``total_time_s`` and the ``tokens_per_s`` that no
        strategy or eviction exceeds there.
    grid : fastsim.plan.grid.Grid
    meta : dict
        Trace name, fingerprint and shape, model, hardware, batch size, bound horizon.
    target_tokens_per_s, budget_gb : float or None
    """

    table: pa.Table
    grid: object
    meta: dict
    target_tokens_per_s: float | None = None
    budget_gb: float | None = None

    @cached_property
    def rows(self) -> list[dict]:
        return self.table.to_pylist()

    @property
    def replays(self) -> list[dict]:
        """Replay rows that ran."""
        return [r for r in self.rows if r["strategy"] != BOUND and r["error"] is None]

    @property
    def failures(self) -> list[dict]:
        """Replay rows whose configuration raised (``error`` holds the message)."""
        return [r for r in self.rows if r["strategy"] != BOUND and r["error"] is not None]

    @property
    def bounds(self) -> list[dict]:
        """Bound rows, by partition then cache size."""
        return [r for r in self.rows if r["strategy"] == BOUND and r["error"] is None]

    @property
    def smallest(self) -> dict:
        """``{strategy label: row or None}``: the smallest cache reaching the target (empty
        without a target)."""
        if self.target_tokens_per_s is None:
            return {}
        return smallest_meeting(self.replays, self.target_tokens_per_s)

    @property
    def bound_smallest(self) -> dict:
        """``{partition: bound row or None}``: the smallest cache where the bound allows the
        target; below it no strategy or eviction reaches it (empty without a target)."""
        if self.target_tokens_per_s is None:
            return {}
        out: dict = {p: None for p in self.grid.partitions}
        for r in self.bounds:
            if r["tokens_per_s"] >= self.target_tokens_per_s and out.get(r["cache_partition"]) is None:
                out[r["cache_partition"]] = r
        return out

    @property
    def best(self) -> dict | None:
        """The fastest configuration within the budget (of all replays without one)."""
        return best_within(self.replays, self.budget_gb)

    @property
    def curves(self) -> dict:
        """``{strategy label: rows}``: tokens/s against cache size, best eviction and partition."""
        return envelope(self.replays)

    def bound_at(self, partition: str, slots: int) -> dict | None:
        for r in self.bounds:
            if r["cache_partition"] == partition and r["cache_slots"] == slots:
                return r
        return None

    def to_markdown(self, plot: str | None = None) -> str:
        """The plan as a Markdown page; ``plot`` is the figure's file name, linked when given."""
        from .page import markdown

        return markdown(self, plot)

    def write(self, out) -> dict:
        """Write ``plan.md``, ``plan.png`` (with matplotlib) and ``plan.parquet`` under ``out``;
        returns ``{kind: path}``."""
        from .page import write

        return write(self, Path(out))
