"""Synthetic routing traces: Zipf expert popularity plus reuse of the previous token's experts.

The model, per MoE layer ``l`` and token:

* **Popularity.** Each layer ranks its experts by a random permutation ``perm[l]``; the expert of
  rank ``r`` (0-based) has weight ``(r + 1) ** -zipf_s``. ``zipf_s = 0`` is uniform routing,
  larger values concentrate traffic on a few hot experts.
* **Reuse.** Within a sequence, each of the ``K`` slots of a token's row, with probability
  ``reuse``, repeats one of the previous token's experts in the same layer (uniformly among those
  not already in the row). Otherwise it draws from the popularity distribution. The first token
  of a sequence has no previous token and always draws from popularity.
* **Distinct top-k.** A row holds ``K`` distinct experts: popularity draws are made without
  replacement (rejecting experts already in the row). Slot order is draw order, read as "best
  first".
* **Sequences.** ``lengths="equal"`` splits the tokens into ``sequences`` runs as equal as
  possible (the first ``tokens % sequences`` runs get one extra token); ``lengths="random"`` draws
  a uniformly random composition (cut points drawn uniformly, zero-length runs possible).

Everything comes from one ``numpy.random.Generator(PCG64(seed))``, drawn in a fixed order (sequence
lengths, then the per-layer permutations, then the routing, token by token), so a seed gives the
same trace on every run. Parameters live in a plain mapping (:data:`DEFAULT_PARAMS`), so presets
can be stored as dicts and passed to :func:`generate_from_params`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._jit import kernel
from ..errors import ProfileError, TraceError
from .model import Trace, expert_dtype

__all__ = ["DEFAULT_PARAMS", "GENERATOR_NAME", "generate_trace", "generate_from_params", "resolve_shape"]

GENERATOR_NAME = "fastsim.generate"

#: Generator parameters and their defaults; a preset is a mapping over (some of) these keys.
DEFAULT_PARAMS: dict[str, Any] = {"zipf_s": 1.1, "reuse": 0.5, "lengths": "equal"}

_LENGTH_MODES = ("equal", "random")
# Popularity draws rejected this many times in a row fall back to an exact draw over the experts
# not yet in the row, so strongly skewed popularity with K close to E stays fast.
_MAX_REJECTIONS = 32


def generate_trace(
    model,
    tokens: int,
    sequences: int = 1,
    seed: int = 0,
    *,
    zipf_s: float = DEFAULT_PARAMS["zipf_s"],
    reuse: float = DEFAULT_PARAMS["reuse"],
    lengths: str = DEFAULT_PARAMS["lengths"],
) -> Trace:
    """Generate a synthetic routing trace.

    Parameters
    ----------
    model : str, mapping or tuple
        A model profile (name, TOML path or mapping, as :func:`fastsim.profiles.model_profile`
        takes), or an explicit ``(num_layers, num_experts, top_k)``.
    tokens : int
        Total tokens, ``>= 0``.
    sequences : int
        Number of sequences the tokens are split into, ``>= 1``.
    seed : int
        Seed of the ``PCG64`` generator, ``>= 0``.
    zipf_s : float
        Zipf exponent of per-layer expert popularity, ``>= 0`` (0 = uniform).
    reuse : float
        Probability, per slot, of repeating one of the previous token's experts, in ``[0, 1]``.
    lengths : {"equal", "random"}
        How the tokens are split into sequences (see the module docstring).

    Returns
    -------
    Trace
        ``experts`` of shape ``(tokens, L, K)``; ``source`` is a JSON object naming
        ``fastsim.generate`` and every parameter.
    """
    return generate_from_params(
        model, tokens, sequences, seed, {"zipf_s": zipf_s, "reuse": reuse, "lengths": lengths}
    )


def generate_from_params(model, tokens: int, sequences: int = 1, seed: int = 0,
                         params: Mapping[str, Any] | None = None) -> Trace:
    """:func:`generate_trace` with the generator parameters given as one mapping.

    Keys missing from ``params`` take their :data:`DEFAULT_PARAMS` value; unknown keys are an
    error, so a misspelt preset cannot pass silently.
    """
    name, num_layers, num_experts, top_k = resolve_shape(model)
    p = _checked_params(params or {})
    tokens = _checked_int("tokens", tokens, 0)
    sequences = _checked_int("sequences", sequences, 1)
    seed = _checked_int("seed", seed, 0)
    if top_k > num_experts:
        raise TraceError(f"generate: top_k {top_k} exceeds num_experts {num_experts}")

    rng = np.random.Generator(np.random.PCG64(seed))
    seq_lengths = _split(tokens, sequences, p["lengths"], rng)
    perm = np.empty((num_layers, num_experts), dtype=np.int64)
    for layer in range(num_layers):
        perm[layer] = rng.permutation(num_experts)
    weights = np.arange(1, num_experts + 1, dtype=np.float64) ** -p["zipf_s"]
    pmf = weights / weights.sum()
    cdf = np.cumsum(pmf)
    cdf[-1] = 1.0

    experts = np.empty((tokens, num_layers, top_k), dtype=expert_dtype(num_experts))
    _route_nb(rng, seq_lengths, pmf, cdf, perm, float(p["reuse"]), experts)

    source = json.dumps(
        {
            "generator": GENERATOR_NAME,
            "model": name,
            "num_layers": num_layers,
            "num_experts": num_experts,
            "top_k": top_k,
            "tokens": tokens,
            "sequences": sequences,
            "seed": seed,
            **p,
        },
        sort_keys=True,
    )
    return Trace.from_arrays(
        experts, num_experts, sequence_lengths=seq_lengths, model=name, source=source
    )


def resolve_shape(model) -> tuple[str | None, int, int, int]:
    """``(name, num_layers, num_experts, top_k)`` of a profile or an explicit shape tuple."""
    if isinstance(model, (tuple, list)):
        if len(model) != 3:
            raise TraceError(
                f"generate: model shape must be (num_layers, num_experts, top_k), got {model!r}"
            )
        num_layers, num_experts, top_k = (
            _checked_int(f, v, 1) for f, v in zip(("num_layers", "num_experts", "top_k"), model)
        )
        return None, num_layers, num_experts, top_k
    try:
        from ..profiles import model_profile
    except ImportError:
        raise ProfileError(
            f"unknown model {model!r}: model profiles are unavailable; give "
            "(num_layers, num_experts, top_k) instead"
        ) from None
    prof = model_profile(model)
    return (
        str(prof.name),
        _checked_int("num_layers", prof.num_layers, 1),
        _checked_int("num_experts", prof.num_experts, 1),
        _checked_int("top_k", prof.top_k, 1),
    )


def _checked_params(params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise TraceError(
            f"generate: unknown parameter {unknown[0]!r}; expected one of {', '.join(DEFAULT_PARAMS)}"
        )
    p = {**DEFAULT_PARAMS, **params}
    p["zipf_s"] = _checked_float("zipf_s", p["zipf_s"], 0.0, math.inf)
    p["reuse"] = _checked_float("reuse", p["reuse"], 0.0, 1.0)
    if p["lengths"] not in _LENGTH_MODES:
        raise TraceError(
            f"generate: lengths is {p['lengths']!r}; expected one of {', '.join(_LENGTH_MODES)}"
        )
    return p


def _checked_int(field: str, value, floor: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TraceError(f"generate: {field} must be an integer, got {value!r}")
    if value < floor:
        raise TraceError(f"generate: {field} is {value}; expected an integer >= {floor}")
    return int(value)


def _checked_float(field: str, value, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TraceError(f"generate: {field} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x) or not lo <= x <= hi:
        bound = f">= {lo}" if hi == math.inf else f"in [{lo}, {hi}]"
        raise TraceError(f"generate: {field} is {value!r}; expected a finite number {bound}")
    return x


def _split(tokens: int, sequences: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Sequence lengths, shape (sequences,), int64, adding up to ``tokens``."""
    if mode == "equal":
        base, extra = divmod(tokens, sequences)
        out = np.full(sequences, base, dtype=np.int64)
        out[:extra] += 1
        return out
    cuts = np.sort(rng.integers(0, tokens + 1, size=sequences - 1))
    return np.diff(np.concatenate(([0], cuts, [tokens]))).astype(np.int64)


@kernel
def _route_nb(rng, lengths, pmf, cdf, perm, reuse, out):
    """Fill ``out`` (tokens, L, K) in place, token by token (see the module docstring).

    ``pmf``/``cdf`` (E,) float64 are the popularity by rank; ``perm`` (L, E) maps rank to expert.
    """
    tokens, num_layers, top_k = out.shape
    num_experts = cdf.shape[0]
    last_rank = num_experts - 1
    # Guide table: guide[j] is the first rank whose cdf exceeds j / guide_size, so a popularity
    # draw starts its search there and takes O(1) steps on average instead of a binary search.
    guide_size = 4 * num_experts
    guide = np.empty(guide_size, dtype=np.int64)
    r = 0
    for j in range(guide_size):
        while r < last_rank and cdf[r] <= j / guide_size:
            r += 1
        guide[j] = r
    # mark[e] == stamp: expert e is already in the row being filled (no reset per row).
    mark = np.zeros(num_experts, dtype=np.int64)
    stamp = 0
    t = 0
    for s in range(lengths.shape[0]):
        for pos in range(lengths[s]):
            for l in range(num_layers):
                stamp += 1
                for k in range(top_k):
                    e = -1
                    if pos > 0 and reuse > 0.0 and rng.random() < reuse:
                        free = 0
                        for j in range(top_k):
                            if mark[out[t - 1, l, j]] != stamp:
                                free += 1
                        if free > 0:
                            pick = min(int(rng.random() * free), free - 1)
                            for j in range(top_k):
                                cand = out[t - 1, l, j]
                                if mark[cand] != stamp:
                                    if pick == 0:
                                        e = cand
                                        break
                                    pick -= 1
                    if e < 0:
                        for _ in range(_MAX_REJECTIONS):
                            u = rng.random()
                            r = guide[int(u * guide_size)]
                            while r < last_rank and u >= cdf[r]:
                                r += 1
                            cand = perm[l, r]
                            if mark[cand] != stamp:
                                e = cand
                                break
                    if e < 0:
                        total = 0.0
                        for r in range(num_experts):
                            if mark[perm[l, r]] != stamp:
                                total += pmf[r]
                        u = rng.random() * total
                        for r in range(num_experts):
                            cand = perm[l, r]
                            if mark[cand] != stamp:
                                e = cand
                                u -= pmf[r]
                                if u < 0.0:
                                    break
                    mark[e] = stamp
                    out[t, l, k] = e
            t += 1

