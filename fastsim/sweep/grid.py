"""Expanding a spec into configurations: the product per strategy, de-duplicated, with baselines.

A :class:`Config` is everything a replay needs but the trace's run: a row of the results table is
one configuration at one run. Configurations compare by their resolved values (strategy
parameters with defaults filled in, profile figures, cache request), so two grids naming the same
replay give one configuration.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..profiles import HardwareProfile, ModelProfile
from ..strategies import get_strategy
from .spec import Baseline, CacheRequest, Spec

__all__ = ["Config", "make_config", "expand", "profile_pairs", "row_hash"]


@dataclass(frozen=True)
class Config:
    """One replay configuration of a sweep (hashable; equal when every resolved value is)."""

    trace: str
    model: ModelProfile
    hardware: HardwareProfile
    batch_size: int
    strategy: str
    params: tuple  # ((name, float value), ...) in the strategy's Param order, defaults filled in
    cache: CacheRequest
    eviction: str
    max_prefetch_loads: int | None = None

    def param_dict(self) -> dict[str, float]:
        return dict(self.params)

    def replay_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fastsim.replay.resolve_config` (``trace`` aside)."""
        return {
            "strategy": self.strategy,
            "model": self.model,
            "hardware": self.hardware,
            "eviction": self.eviction,
            "batch_size": self.batch_size,
            "max_prefetch_loads": self.max_prefetch_loads,
            "params": self.param_dict(),
            **self.cache.replay_kwargs(),
        }

    def label(self) -> str:
        """A short human description for messages."""
        defaults = get_strategy(self.strategy).defaults()
        changed = [f"{k}={_num(v)}" for k, v in self.params if float(defaults.get(k, v)) != v]
        parts = [self.strategy + (f"({', '.join(changed)})" if changed else "")]
        parts += [
            f"trace {self.trace}", self.model.name, self.hardware.name, f"batch {self.batch_size}",
            f"cache {self.cache.label}", self.eviction,
        ]
        if self.max_prefetch_loads is not None:
            parts.append(f"max {self.max_prefetch_loads} loads")
        return ", ".join(parts)

    def identity(self) -> dict[str, Any]:
        """Every value that determines this configuration's results, JSON-able."""
        return {
            "trace": self.trace,
            "model": self.model.as_dict(),
            "hardware": self.hardware.as_dict(),
            "batch_size": self.batch_size,
            "strategy": self.strategy,
            "params": self.param_dict(),
            "cache": self.cache.label,
            "eviction": self.eviction,
            "max_prefetch_loads": self.max_prefetch_loads,
        }


def _num(v: float):
    return int(v) if float(v).is_integer() else v


def make_config(trace, model, hardware, batch_size, strategy, params, cache, eviction, max_prefetch_loads=None) -> Config:
    """A :class:`Config` with the strategy's parameters validated and completed with defaults."""
    defn = get_strategy(strategy)
    values = defn.resolve(params) if defn.params else []
    resolved = tuple((p.name, float(v)) for p, v in zip(defn.params, values))
    return Config(trace, model, hardware, int(batch_size), defn.name, resolved, cache, eviction, max_prefetch_loads)


def baseline_config(cfg: Config, baseline: Baseline) -> Config:
    return make_config(
        cfg.trace, cfg.model, cfg.hardware, cfg.batch_size, baseline.strategy, dict(baseline.params),
        baseline.cache, baseline.eviction, None,
    )


def expand(spec: Spec, models_for: dict[str, tuple]) -> tuple[list[Config], list[int | None]]:
    """Every configuration of ``spec`` in expansion order, de-duplicated, baselines included.

    Order: trace, (model, hardware) pair (:func:`profile_pairs`), batch size, strategy table (spec order), parameter product
    (last key fastest), cache, eviction, prefetch cap. A baseline configuration not already in
    the grid is placed just before the first configuration measured against it.

    Parameters
    ----------
    models_for : dict
        Trace name -> the model profiles it runs with.

    Returns
    -------
    configs : list of Config
    baseline_of : list of int or None
        For each configuration, the index of its baseline configuration (``None`` without one).
    """
    index: dict[Config, int] = {}
    configs: list[Config] = []
    baseline_of: list[int | None] = []

    def add(cfg: Config) -> int:
        if cfg not in index:
            index[cfg] = len(configs)
            configs.append(cfg)
            baseline_of.append(None)
        return index[cfg]

    for t in spec.traces:
        for model, hw in profile_pairs(spec, models_for[t.name]):
            for batch in spec.batch_sizes:
                for grid in spec.grids:
                    for combo in grid.combos:
                        for cache in grid.caches or spec.caches:
                            for ev in grid.evictions or spec.evictions:
                                for cap in grid.max_prefetch_loads or spec.max_prefetch_loads:
                                    cfg = make_config(t.name, model, hw, batch, grid.strategy, combo, cache, ev, cap)
                                    base = None
                                    if spec.baseline is not None:
                                        base = add(baseline_config(cfg, spec.baseline))
                                    baseline_of[add(cfg)] = base
    if spec.baseline is not None:
        # baseline rows that came first as baselines: they are their own (speedup 1)
        for i, cfg in enumerate(configs):
            if baseline_of[i] is None:
                baseline_of[i] = index.get(baseline_config(cfg, spec.baseline))
    return configs, baseline_of


def profile_pairs(spec: Spec, models: tuple) -> list[tuple]:
    """The (model, hardware) pairs a trace runs with: the spec's ``profiles`` pairs as listed, else
    every model of ``models`` with every GPU of ``hardware``."""
    if spec.profiles is not None:
        return list(spec.profiles)
    return [(m, h) for m in models for h in spec.hardware]


def row_hash(cfg: Config, fingerprint: str, run: int, seed: int | None) -> str:
    """The configuration hash of one row: its configuration, the trace content, the run."""
    ident = cfg.identity()
    ident.update(fingerprint=fingerprint, run=run, seed=seed, fastsim_version=__version__)
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
