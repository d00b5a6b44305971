"""Expanding a spec into configurations: the product per strategy, de-duplicated, with baselines.

A :class:`Config` is everything a replay needs but the trace's run: a row of the results table is
one configuration at one run. Configurations compare by their resolved values (strategy
parameters with defaults filled in, profile figures, cache request), so two grids naming the same
replay give one configuration.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..eviction import get_eviction
from ..profiles import HardwareProfile, ModelProfile
from ..strategies import file_digest, get_strategy
from ..timeline.budget import DEFAULT_RESERVE_BYTES
from ..timeline.options import ExecutionOptions
from ..timeline.recorded import BATCHINGS, RECORDED
from .axes import AUTO, GLOBAL, CacheRequest, EvictionChoice, eviction_choice, execution_combos, partition_label, pin_request_label
from .spec import Baseline, Spec

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
    eviction_params: tuple = ()  # ((name, float value), ...) in the policy's Param order, defaults filled in
    cache_partition: Any = GLOBAL  # "global", "per-layer" or a tuple of per-layer sizes
    pinned: Any = None  # None, a count > 0 or a sorted tuple of keys
    pin_profile: float = 1.0  # 1.0 unless ``pinned`` is a count
    execution: ExecutionOptions = ExecutionOptions()  # SPEC section 7's options
    reserve_bytes: int | None = None  # with cache "auto" only: the workspace reserve (default filled in)
    context_tokens: int | None = None  # with cache "auto" only; None: the trace's longest sequence
    batching: str | None = None  # "continuous", "recorded" or None: the trace's default (resolve_batching)

    def param_dict(self) -> dict[str, float]:
        return dict(self.params)

    def hashed_params(self) -> dict[str, float]:
        """The parameters the configuration hash reads: all of them, except those added after
        results were committed while they sit at their defaults (``Param.hashed_at_default``)."""
        try:
            declared = {p.name: p for p in get_strategy(self.strategy).params}
        except Exception:  # an unregistered strategy: hash everything
            declared = {}
        out = {}
        for k, v in self.params:
            p = declared.get(k)
            if p is not None and not p.hashed_at_default and v == p.default:
                continue
            # a file joins the hash by its content, so an edited file is a new configuration
            out[k] = {"path": v, "blake2b": file_digest(v)} if p is not None and p.kind == "file" and v is not None else v
        return out

    @property
    def default_organisation(self) -> bool:
        """SPEC section 3's cache: one global partition, no pins, a policy without parameters."""
        return not self.eviction_params and self.cache_partition == GLOBAL and self.pinned is None

    @property
    def pin_request(self) -> str:
        return pin_request_label(self.pinned, self.pin_profile)

    def replay_kwargs(self, pins: dict | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`fastsim.replay.resolve_config` (``trace`` aside).

        ``pins`` maps ``(count, pin_profile)`` to the keys that count chose on the trace: a
        worker sees no routing, so a count travels as the keys the parent chose with it.
        """
        kwargs = {
            "strategy": self.strategy,
            "model": self.model,
            "hardware": self.hardware,
            "eviction": self.eviction,
            "batch_size": self.batch_size,
            "max_prefetch_loads": self.max_prefetch_loads,
            "params": self.param_dict(),
            **self.cache.replay_kwargs(),
        }
        if not self.default_organisation:
            pinned = self.pinned
            if isinstance(pinned, int) and pins is not None:
                pinned = list(pins[(pinned, self.pin_profile)])
            elif isinstance(pinned, tuple):
                pinned = list(pinned)
            partition = self.cache_partition
            kwargs.update(
                eviction_params=self.eviction_param_dict(),
                cache_partition=list(partition) if isinstance(partition, tuple) else partition,
                pinned=pinned,
                pin_profile=self.pin_profile,
            )
        if not self.execution.is_default:
            kwargs["execution"] = self.execution
        if self.cache.kind == AUTO:
            kwargs.update(reserve_bytes=self.reserve_bytes, context_tokens=self.context_tokens)
        if self.batching is not None:
            kwargs["batching"] = self.batching
        return kwargs

    def eviction_param_dict(self) -> dict[str, float]:
        return dict(self.eviction_params)

    def label(self) -> str:
        """A short human description for messages."""
        defaults = get_strategy(self.strategy).defaults()
        changed = [f"{k}={v if isinstance(v, str) else _num(v)}" for k, v in self.params if defaults.get(k, v) != v]
        parts = [self.strategy + (f"({', '.join(changed)})" if changed else "")]
        parts += [
            f"trace {self.trace}", self.model.name, self.hardware.name, f"batch {self.batch_size}",
            f"cache {self.cache.label}", EvictionChoice(self.eviction, self.eviction_params).label,
        ]
        if self.cache_partition != GLOBAL:
            parts.append(f"partition {partition_label(self.cache_partition)}")
        if self.pinned is not None:
            parts.append(f"pinned {self.pin_request}")
        if self.max_prefetch_loads is not None:
            parts.append(f"max {self.max_prefetch_loads} loads")
        parts += [f"{k} {v}" for k, v in execution_changes(self.execution).items()]
        if self.cache.kind == AUTO:
            parts.append(f"reserve {self.reserve_bytes} bytes")
            if self.context_tokens is not None:
                parts.append(f"context {self.context_tokens} tokens")
        if self.batching == RECORDED:
            parts.append("recorded batching")
        return ", ".join(parts)

    def identity(self) -> dict[str, Any]:
        """Every value that determines this configuration's results, JSON-able.

        The cache organisation (SPEC section 6), the execution options (SPEC section 7) and
        recorded batching add keys only where they differ from SPEC section 3's, so a
        configuration without them hashes as it always has. The sweep driver resolves
        ``batching`` against the trace before hashing, so a row of a recorded trace left to its
        default hashes as ``"recorded"``, not as the continuous rows of older versions.
        """
        ident = {
            "trace": self.trace,
            "model": _read_figures(self.model.as_dict(), _AUTO_FIGURES, self.cache.kind == AUTO),
            "hardware": _read_figures(self.hardware.as_dict(), _CPU_FIGURES, self.execution.miss_execution == "cpu"),
            "batch_size": self.batch_size,
            "strategy": self.strategy,
            "params": self.hashed_params(),
            "cache": self.cache.label,
            "eviction": self.eviction,
            "max_prefetch_loads": self.max_prefetch_loads,
        }
        if self.eviction_params:
            ident["eviction_params"] = self.eviction_param_dict()
        if self.cache_partition != GLOBAL:
            ident["cache_partition"] = partition_label(self.cache_partition)
        if self.pinned is not None:
            ident["pinned"] = self.pinned if isinstance(self.pinned, int) else list(self.pinned)
            if isinstance(self.pinned, int):
                ident["pin_profile"] = self.pin_profile
        changes = execution_changes(self.execution)
        if changes:
            ident["execution"] = changes
        if self.cache.kind == AUTO:
            ident["reserve_bytes"] = self.reserve_bytes
            ident["context_tokens"] = self.context_tokens
        if self.batching == RECORDED:
            ident["batching"] = RECORDED
        return ident


_DEFAULT_EXECUTION = ExecutionOptions()
#: Profile figures only some configurations read (SPEC section 7): an auto cache's budget reads
#: the model's, CPU execution the host CPU's. A configuration that does not read them hashes
#: without them, so adding them to a profile leaves its rows' hashes (and resumes) as they were.
_AUTO_FIGURES = ("dense_bytes_total", "kv_bytes_per_token")
_CPU_FIGURES = ("cpu_flops_per_s", "cpu_mem_bytes_per_s", "cpu_overhead_s")


def _read_figures(figures: dict, optional: tuple, reads: bool) -> dict:
    return figures if reads else {k: v for k, v in figures.items() if k not in optional}


def execution_changes(options: ExecutionOptions) -> dict:
    """The execution options that differ from their defaults, in declaration order."""
    return {k: v for k, v in vars(options).items() if v != getattr(_DEFAULT_EXECUTION, k)}


def _num(v: float):
    return int(v) if float(v).is_integer() else v


def make_config(trace, model, hardware, batch_size, strategy, params, cache, eviction, max_prefetch_loads=None, *,
                eviction_params=None, cache_partition=GLOBAL, pinned=None, pin_profile=1.0,
                execution: ExecutionOptions | None = None, reserve_bytes=None, context_tokens=None,
                batching=None) -> Config:
    """A :class:`Config` with the strategy's and the policy's parameters validated and completed
    with defaults.

    ``eviction`` is a policy name (its parameters in ``eviction_params``, a mapping or resolved
    pairs) or an :class:`~fastsim.sweep.axes.EvictionChoice`; ``cache_partition`` and ``pinned``
    take the canonical forms of :mod:`fastsim.sweep.axes`. ``reserve_bytes`` and
    ``context_tokens`` apply to an ``"auto"`` cache only (``None`` otherwise; an auto cache's
    reserve defaults to :data:`~fastsim.timeline.budget.DEFAULT_RESERVE_BYTES`). ``batching`` is
    ``"continuous"``, ``"recorded"`` or None (the trace's default, resolved when the trace is read).
    """
    if batching is not None and batching not in BATCHINGS:
        raise ConfigError(f"batching must be one of {', '.join(repr(b) for b in BATCHINGS)}, got {batching!r}")
    defn = get_strategy(strategy)
    resolved = tuple(defn.checked(params).items()) if defn.params else ()
    if not isinstance(eviction, EvictionChoice):
        given = dict(eviction_params) if eviction_params else None
        try:
            eviction = eviction_choice(eviction, given)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(pinned, int):
        pin_profile = 1.0  # only a count is chosen on a profile of the trace
    if cache.kind != AUTO:
        reserve_bytes = context_tokens = None  # only an auto cache is sized by them
    elif reserve_bytes is None:
        reserve_bytes = DEFAULT_RESERVE_BYTES
    return Config(
        trace, model, hardware, int(batch_size), defn.name, resolved, cache, eviction.name, max_prefetch_loads,
        eviction.params, cache_partition, pinned, float(pin_profile), execution or ExecutionOptions(),
        reserve_bytes, context_tokens, batching,
    )


def baseline_config(cfg: Config, baseline: Baseline) -> Config:
    """``cfg``'s baseline: the baseline's strategy, cache and organisation at ``cfg``'s trace,
    profiles, batch size and batching, under ``cfg``'s execution options (a speedup compares
    strategies and caches on one engine, not two anatomies)."""
    return make_config(
        cfg.trace, cfg.model, cfg.hardware, cfg.batch_size, baseline.strategy, dict(baseline.params),
        baseline.cache, EvictionChoice(baseline.eviction, baseline.eviction_params), None,
        cache_partition=baseline.cache_partition, pinned=baseline.pinned, pin_profile=baseline.pin_profile,
        execution=cfg.execution, reserve_bytes=cfg.reserve_bytes, context_tokens=cfg.context_tokens,
        batching=cfg.batching,
    )


def expand(spec: Spec, models_for: dict[str, tuple]) -> tuple[list[Config], list[int | None]]:
    """Every configuration of ``spec`` in expansion order, de-duplicated, baselines included.

    Order: trace, (model, hardware) pair (:func:`profile_pairs`), batch size, batching, strategy table (spec
    order), parameter product (last key fastest), cache, eviction, cache partition, pinned, pin
    profile, prefetch cap, execution options (:func:`fastsim.sweep.axes.execution_combos`),
    reserve bytes, context tokens. A baseline configuration not already in
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
            for batch, batching in itertools.product(spec.batch_sizes, spec.batchings):
                for grid in spec.grids:
                    executions = execution_combos(spec.execution_axes(grid))
                    for combo in grid.combos:
                        for cache, ev, part, pin, profile, cap, opts, reserve, context in itertools.product(
                            grid.caches or spec.caches,
                            grid.evictions or spec.evictions,
                            grid.cache_partitions or spec.cache_partitions,
                            grid.pinned or spec.pinned,
                            grid.pin_profiles or spec.pin_profiles,
                            grid.max_prefetch_loads or spec.max_prefetch_loads,
                            executions,
                            grid.reserve_bytes or spec.reserve_bytes,
                            grid.context_tokens or spec.context_tokens,
                        ):
                            cfg = make_config(
                                t.name, model, hw, batch, grid.strategy, combo, cache, ev, cap,
                                cache_partition=part, pinned=pin, pin_profile=profile, execution=opts,
                                reserve_bytes=reserve, context_tokens=context, batching=batching,
                            )
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


def row_hash(cfg: Config, fingerprint: str, run: int, seed: int | None, scores: str | None = None) -> str:
    """The configuration hash of one row: its configuration, the trace content, the run.

    ``scores`` is a digest of the trace's router scores, which the fingerprint leaves out: it
    joins the hash of rows whose policy reads them.
    """
    ident = cfg.identity()
    ident.update(fingerprint=fingerprint, run=run, seed=seed, fastsim_version=__version__)
    if scores is not None and get_eviction(cfg.eviction).needs_scores:
        ident["scores"] = scores
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
