"""Synthetic routing traces: skewed expert popularity, token-to-token reuse, cross-layer affinity,
topic shifts between sequences, and calibrated presets.

The model, per MoE layer ``l`` and token:

* **Popularity.** Each layer ranks its experts by a random permutation ``perm[l]``; the expert of
  rank ``r`` (0-based) has weight ``(r + 1 + zipf_q) ** -zipf_s``, normalised, then mixed with a
  uniform floor: ``p[r] = (1 - floor) * w[r] / sum(w) + floor / E``. ``zipf_s = 0`` is uniform
  routing, larger values concentrate traffic on a few hot experts; ``zipf_q > 0`` flattens the
  head (Zipf-Mandelbrot; large ``zipf_s`` and ``zipf_q`` together approach an exponential decay
  ``exp(-r zipf_s / zipf_q)``); ``floor`` lifts the tail. ``zipf_s`` may be one number or one
  per layer. ``weights`` (``E`` non-negative numbers by rank, e.g. a measured popularity curve)
  replaces the Zipf curve ``w`` when given; ``zipf_s`` and ``zipf_q`` are then unused.
* **Topic shifts.** With ``topic_shift = v > 0`` every sequence draws its own popularity per layer
  from a Dirichlet distribution with mean ``p`` and concentration ``1 / v - 1``, so
  ``Var(p_seq[r]) = v p[r] (1 - p[r])``: the trace-wide mix stays ``p`` while each request leans
  on its own experts. ``0`` gives every sequence the layer's popularity.
* **Reuse.** Within a sequence, each of the ``K`` slots of a token's row, with probability
  ``reuse``, repeats one of the previous token's experts in the same layer (uniformly among those
  not already in the row). The first token of a sequence has no previous token.
* **Cross-layer affinity.** A slot not filled by reuse, in layer ``l > 0``, with probability
  ``affinity`` takes the *rank partner* of one of the same token's layer ``l - 1`` experts (chosen
  uniformly among those whose partner is not already in the row): the expert of layer ``l`` that
  has the same popularity rank. Partners keep ranks, so affinity leaves the popularity unchanged.
* **Fresh draws.** Any other slot draws from the sequence's popularity, without replacement
  (rejecting experts already in the row). Slot order is fill order, read as "best first".
* **Sequences.** ``sequences`` sets their number; when it is ``None`` it is
  ``round(tokens / length_mean)`` (at least 1), or 1 without ``length_mean``. ``lengths="equal"``
  splits the tokens as equally as possible (the first ``tokens % sequences`` get one more);
  ``"random"`` draws a uniformly random composition (cut points drawn uniformly, zero-length runs
  possible); ``"lognormal"`` draws a weight per sequence from ``LogNormal(0, length_sigma)`` and
  splits the tokens in proportion (largest remainders get the leftover tokens).

Everything comes from one ``numpy.random.Generator(PCG64(seed))``, drawn in a fixed order
(sequence lengths, the per-layer permutations, the routing stream's state, then per-sequence
topic draws and the routing token by token), so a seed gives the same trace on every run.
Parameters live in a plain mapping (:data:`DEFAULT_PARAMS`); :data:`PRESETS` holds parameter sets
calibrated against published measurements of real routing (``docs/trace-stats.md``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._jit import kernel
from ..errors import ProfileError, TraceError
from .model import Trace, expert_dtype

__all__ = [
    "DEFAULT_PARAMS", "GENERATOR_NAME", "PRESETS", "PRESET_MODELS", "generate_trace", "generate_from_params",
    "get_preset", "popularity", "resolve_shape", "tiered_weights",
]

GENERATOR_NAME = "fastsim.generate"

#: Generator parameters and their defaults; a preset is a mapping over (some of) these keys.
DEFAULT_PARAMS: dict[str, Any] = {
    "zipf_s": 1.1,
    "zipf_q": 0.0,
    "floor": 0.0,
    "reuse": 0.5,
    "affinity": 0.0,
    "topic_shift": 0.0,
    "lengths": "equal",
    "length_mean": None,
    "length_sigma": 0.5,
    "weights": None,
}


def tiered_weights(shares: Sequence[float], sizes: Sequence[int], decay: float = 0.0) -> list[float]:
    """Popularity by rank in tiers: tier ``i`` holds ``sizes[i]`` ranks and ``shares[i]`` of the
    traffic, spread within the tier as ``exp(-decay * j)`` over its ranks ``j = 0, 1, ...``.

    Returns a list of ``sum(sizes)`` weights summing to ``sum(shares)``, for ``weights=``.
    """
    out: list[float] = []
    for share, size in zip(shares, sizes):
        w = np.exp(-decay * np.arange(size))
        out.extend((share * w / w.sum()).tolist())
    return out


#: Calibrated presets: generator parameter sets, each a mapping over :data:`DEFAULT_PARAMS` keys.
#: The targets and how they were met are in ``docs/trace-stats.md``; the model each is calibrated
#: for is in :data:`PRESET_MODELS`.
PRESETS: dict[str, dict[str, Any]] = {
    # Mixtral-8x7B decode traces: normalised entropy ~0.97, Gini ~0.18, reuse ~0.36 against a
    # shuffled baseline of ~0.27.
    "mixtral-like": {
        "zipf_s": 0.565, "zipf_q": 0.0, "floor": 0.1, "reuse": 0.122, "affinity": 0.0,
        "topic_shift": 0.0, "lengths": "lognormal", "length_mean": 256, "length_sigma": 0.5,
    },
    # Qwen1.5-MoE-A2.7B: entropy ~0.995, Gini ~0.11, reuse ~0.13 against ~0.08.
    "qwen1.5-moe-like": {
        "zipf_s": 0.22, "zipf_q": 0.0, "floor": 0.0, "reuse": 0.055, "affinity": 0.0,
        "topic_shift": 0.003, "lengths": "lognormal", "length_mean": 256, "length_sigma": 0.5,
    },
    # The seed's Switch figures: Gini 0.73, top-10 coverage 0.68, top-25 coverage 0.85. Three
    # flat tiers carry exactly those coverages; their Gini is 0.721, and the sampling noise of a
    # 50 000-token trace adds about 0.009.
    "switch-seed": {
        "zipf_s": 0.0, "zipf_q": 0.0, "floor": 0.0, "reuse": 0.0, "affinity": 0.0,
        "topic_shift": 0.0, "lengths": "lognormal", "length_mean": 256, "length_sigma": 0.5,
        "weights": tiered_weights((0.68, 0.17, 0.15), (10, 15, 103)),
    },
}

#: The model profile each preset is calibrated for, and its ``(num_layers, num_experts, top_k)``.
PRESET_MODELS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "mixtral-like": ("mixtral-8x7b", (32, 8, 2)),
    "qwen1.5-moe-like": ("qwen1.5-moe-a2.7b", (24, 60, 4)),
    "switch-seed": ("switch-base-128", (12, 128, 1)),
}

_LENGTH_MODES = ("equal", "random", "lognormal")
# Popularity draws rejected this many times in a row fall back to an exact draw over the experts
# not yet in the row, so strongly skewed popularity with K close to E stays fast.
_MAX_REJECTIONS = 32
# Guide-table entries per expert: a popularity draw starts its search at guide[u * size].
_GUIDE_PER_EXPERT = 4
_LOW32 = np.uint64(0xFFFFFFFF)


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the parameters of preset ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise TraceError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def generate_trace(
    model,
    tokens: int,
    sequences: int | None = None,
    seed: int = 0,
    *,
    preset: str | None = None,
    zipf_s: float | Sequence[float] | None = None,
    zipf_q: float | None = None,
    floor: float | None = None,
    reuse: float | None = None,
    affinity: float | None = None,
    topic_shift: float | None = None,
    lengths: str | None = None,
    length_mean: float | None = None,
    length_sigma: float | None = None,
    weights: Sequence[float] | None = None,
    router_scores: bool = False,
    prompt_tokens: int | None = None,
) -> Trace:
    """Generate a synthetic routing trace.

    Parameters
    ----------
    model : str, mapping, tuple or None
        A model profile (name, TOML path or mapping, as :func:`fastsim.profiles.model_profile`
        takes), or an explicit ``(num_layers, num_experts, top_k)``. ``None`` with ``preset``
        takes the preset's profile; with a preset, any model given must have its shape.
    tokens : int
        Total tokens, ``>= 0``.
    sequences : int or None
        Number of sequences, ``>= 1``; ``None`` derives it from ``length_mean`` (1 without one).
    seed : int
        Seed of the ``PCG64`` generator, ``>= 0``.
    preset : str, optional
        A name in :data:`PRESETS`; its parameters replace the defaults, and the keyword
        parameters below, where given, replace the preset's (which voids its calibration).
    zipf_s : float or sequence of float
        Zipf exponent of expert popularity, ``>= 0`` (0 = uniform); one per layer if a sequence.
    zipf_q : float
        Zipf-Mandelbrot offset of the rank, ``>= 0``.
    floor : float
        Share of popularity spread uniformly over all experts, in ``[0, 1]``.
    reuse : float
        Probability, per slot, of repeating one of the previous token's experts, in ``[0, 1]``.
    affinity : float
        Probability, per remaining slot of layers ``l > 0``, of taking the rank partner of one of
        the token's layer ``l - 1`` experts, in ``[0, 1]``.
    topic_shift : float
        Per-sequence popularity variance factor, in ``[0, 1)`` (0 = none).
    lengths : {"equal", "random", "lognormal"}
        How the tokens are split into sequences (see the module docstring).
    length_mean : float or None
        Mean sequence length used when ``sequences`` is ``None``, ``>= 1``.
    length_sigma : float
        Log-space standard deviation of ``"lognormal"`` lengths, ``>= 0``.
    weights : sequence of float, optional
        Popularity by rank, ``E`` non-negative numbers with a positive sum, instead of the Zipf
        curve (see :func:`tiered_weights`).
    router_scores : bool
        Also give the trace synthetic router weights (``scores``), for policies that read them
        (``score-aware``): per token and layer, the ``K`` chosen experts' shares of a flat
        Dirichlet over ``K + 1`` parts (the last standing for the unchosen experts), best first.
        They come from their own random stream, so the routing is the same with or without them.
        An assumed distribution, not a measured one.
    prompt_tokens : int, optional
        Mark the first ``min(prompt_tokens, length)`` tokens of every sequence as its prompt
        (SPEC section 7, prefill). The routing is the same with or without marks: the generator
        does not model prompt tokens differently (an assumption; captured traces do).

    Returns
    -------
    Trace
        ``experts`` of shape ``(tokens, L, K)``, ``model`` the profile name (None for an explicit
        shape); ``source`` is a JSON object naming ``fastsim.generate``, the preset and every
        parameter.
    """
    given = {
        "zipf_s": zipf_s, "zipf_q": zipf_q, "floor": floor, "reuse": reuse, "affinity": affinity,
        "topic_shift": topic_shift, "lengths": lengths, "length_mean": length_mean,
        "length_sigma": length_sigma, "weights": weights,
    }
    params = {k: v for k, v in given.items() if v is not None}
    if router_scores:
        params["router_scores"] = True
    if prompt_tokens is not None:
        params["prompt_tokens"] = prompt_tokens
    return generate_from_params(model, tokens, sequences, seed, params, preset=preset)


def generate_from_params(model, tokens: int, sequences: int | None = None, seed: int = 0,
                         params: Mapping[str, Any] | None = None, *,
                         preset: str | None = None) -> Trace:
    """:func:`generate_trace` with the generator parameters given as one mapping.

    Keys missing from ``params`` take the preset's value, else their :data:`DEFAULT_PARAMS`
    value; unknown keys are an error, so a misspelt parameter cannot pass silently.
    """
    base: dict[str, Any] = {}
    if preset is not None:
        base = get_preset(preset)
        profile, shape = PRESET_MODELS[preset]
        if model is None:
            model = profile
    elif model is None:
        raise TraceError("generate: give a model (profile name or (layers, experts, top_k)) or a preset")
    name, num_layers, num_experts, top_k = resolve_shape(model)
    if preset is not None and (num_layers, num_experts, top_k) != shape:
        raise TraceError(
            f"generate: preset {preset!r} is calibrated for {shape[0]} layers, "
            f"{shape[1]} experts, top-{shape[2]}; model {name or model!r} has "
            f"{num_layers} layers, {num_experts} experts, top-{top_k}"
        )
    params = dict(params or {})
    router_scores = params.pop("router_scores", False)
    if not isinstance(router_scores, (bool, np.bool_)):
        raise TraceError(f"generate: router_scores must be true or false, got {router_scores!r}")
    prompt = params.pop("prompt_tokens", None)
    if prompt is not None:
        prompt = _checked_int("prompt_tokens", prompt, 0)
    p = _checked_params({**base, **params}, num_layers)
    tokens = _checked_int("tokens", tokens, 0)
    if sequences is None:
        mean = p["length_mean"]
        sequences = max(1, round(tokens / mean)) if mean is not None else 1
    sequences = _checked_int("sequences", sequences, 1)
    seed = _checked_int("seed", seed, 0)
    if top_k > num_experts:
        raise TraceError(f"generate: top_k {top_k} exceeds num_experts {num_experts}")

    rng = np.random.Generator(np.random.PCG64(seed))
    seq_lengths = _split(tokens, sequences, p, rng)
    perm = np.empty((num_layers, num_experts), dtype=np.int64)
    for layer in range(num_layers):
        perm[layer] = rng.permutation(num_experts)
    rank_of = np.empty_like(perm)
    rows = np.arange(num_layers)[:, None]
    rank_of[rows, perm] = np.arange(num_experts)[None, :]
    if p["weights"] is not None and len(p["weights"]) != num_experts:
        raise TraceError(
            f"generate: weights has {len(p['weights'])} values; expected one per expert ({num_experts})"
        )
    pmf = popularity(num_experts, num_layers, p["zipf_s"], p["zipf_q"], p["floor"], p["weights"])
    state = rng.integers(0, np.iinfo(np.int64).max, size=4, dtype=np.int64).view(np.uint64)
    state[0] |= np.uint64(1)  # xoshiro's state must not be all zero

    experts = np.empty((tokens, num_layers, top_k), dtype=expert_dtype(num_experts))
    concentration = 0.0 if p["topic_shift"] == 0.0 else 1.0 / p["topic_shift"] - 1.0
    _route_nb(rng, state, seq_lengths, pmf, perm, rank_of, float(p["reuse"]),
              float(p["affinity"]), concentration, experts)

    source = json.dumps(
        {
            "generator": GENERATOR_NAME,
            "preset": preset,
            "model": name,
            "num_layers": num_layers,
            "num_experts": num_experts,
            "top_k": top_k,
            "tokens": tokens,
            "sequences": sequences,
            "seed": seed,
            **p,
            **({"router_scores": True} if router_scores else {}),
            **({"prompt_tokens": prompt} if prompt is not None else {}),
        },
        sort_keys=True,
    )
    scores = _router_scores(experts, seed) if router_scores else None
    marks = None if prompt is None else np.minimum(seq_lengths, prompt).astype(np.int64)
    return Trace._trusted(experts, seq_lengths, num_experts, model=name, source=source, scores=scores,
                          prompt_tokens=marks)


def _router_scores(experts: np.ndarray, seed: int) -> np.ndarray:
    """Synthetic router weights for ``experts`` (see :func:`generate_trace`), from a stream of
    their own so that drawing them leaves the routing unchanged."""
    rng = np.random.Generator(np.random.PCG64([seed, 0x5C0E5]))
    tokens, layers, top_k = experts.shape
    parts = rng.gamma(1.0, size=(tokens, layers, top_k + 1))
    shares = parts[..., :top_k] / parts.sum(axis=-1, keepdims=True)
    shares = -np.sort(-shares, axis=-1)  # best first
    shares[experts < 0] = 0.0
    return shares.astype(np.float32)


def popularity(num_experts: int, num_layers: int, zipf_s, zipf_q: float = 0.0,
               floor: float = 0.0, weights=None) -> np.ndarray:
    """Popularity by rank, (L, E) float64, each row summing to 1 (see the module docstring)."""
    if weights is not None:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (num_layers, num_experts))
    else:
        s = np.broadcast_to(np.asarray(zipf_s, dtype=np.float64), (num_layers,))
        ranks = np.arange(1, num_experts + 1, dtype=np.float64) + zipf_q
        # Scale by the first weight before the power so steep exponents do not underflow to zero.
        w = (ranks[None, :] / ranks[0]) ** -s[:, None]
    pmf = (1.0 - floor) * w / w.sum(axis=1, keepdims=True) + floor / num_experts
    return pmf / pmf.sum(axis=1, keepdims=True)


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


def _checked_params(params: Mapping[str, Any], num_layers: int | None = None) -> dict[str, Any]:
    """Parameters with defaults filled in and every value checked; a per-layer ``zipf_s`` list
    is checked against ``num_layers`` when that is given."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise TraceError(
            f"generate: unknown parameter {unknown[0]!r}; expected one of {', '.join(DEFAULT_PARAMS)}"
        )
    p = {**DEFAULT_PARAMS, **params}
    if isinstance(p["zipf_s"], (list, tuple, np.ndarray)):
        values = list(p["zipf_s"])
        if not values or (num_layers is not None and len(values) != num_layers):
            raise TraceError(
                f"generate: zipf_s has {len(values)} values; expected one or one per layer ({num_layers})"
            )
        p["zipf_s"] = [_checked_float("zipf_s", v, 0.0, math.inf) for v in values]
    else:
        p["zipf_s"] = _checked_float("zipf_s", p["zipf_s"], 0.0, math.inf)
    p["zipf_q"] = _checked_float("zipf_q", p["zipf_q"], 0.0, math.inf)
    p["floor"] = _checked_float("floor", p["floor"], 0.0, 1.0)
    p["reuse"] = _checked_float("reuse", p["reuse"], 0.0, 1.0)
    p["affinity"] = _checked_float("affinity", p["affinity"], 0.0, 1.0)
    p["topic_shift"] = _checked_float("topic_shift", p["topic_shift"], 0.0, 1.0)
    if p["topic_shift"] >= 1.0:
        raise TraceError(f"generate: topic_shift is {p['topic_shift']!r}; expected a number in [0, 1)")
    if p["lengths"] not in _LENGTH_MODES:
        raise TraceError(
            f"generate: lengths is {p['lengths']!r}; expected one of {', '.join(_LENGTH_MODES)}"
        )
    if p["length_mean"] is not None:
        p["length_mean"] = _checked_float("length_mean", p["length_mean"], 1.0, math.inf)
    p["length_sigma"] = _checked_float("length_sigma", p["length_sigma"], 0.0, math.inf)
    if p["weights"] is not None:
        if isinstance(p["weights"], (str, bytes)) or not isinstance(p["weights"], (Sequence, np.ndarray)):
            raise TraceError(f"generate: weights must be a list of numbers, got {p['weights']!r}")
        p["weights"] = [_checked_float("weights", v, 0.0, math.inf) for v in p["weights"]]
        if not sum(p["weights"]) > 0.0:
            raise TraceError("generate: weights must have a positive sum")
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


def _split(tokens: int, sequences: int, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Sequence lengths, shape (sequences,), int64, adding up to ``tokens``."""
    mode = p["lengths"]
    if mode == "equal":
        base, extra = divmod(tokens, sequences)
        out = np.full(sequences, base, dtype=np.int64)
        out[:extra] += 1
        return out
    if mode == "random":
        cuts = np.sort(rng.integers(0, tokens + 1, size=sequences - 1))
        return np.diff(np.concatenate(([0], cuts, [tokens]))).astype(np.int64)
    weights = rng.lognormal(0.0, p["length_sigma"], size=sequences)
    share = tokens * weights / weights.sum()
    out = np.floor(share).astype(np.int64)
    left = tokens - int(out.sum())
    if left > 0:
        out[np.argsort(out - share, kind="stable")[:left]] += 1
    return out


@kernel
def _next_double(state):
    """xoshiro256+ step on ``state`` (4,) uint64: a float64 uniform in [0, 1)."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    # s0 + s3 mod 2**64 in 32-bit halves: no step overflows, so the uncompiled function (run
    # with NUMBA_DISABLE_JIT) gives the same numbers without overflow warnings.
    low = (s0 & _LOW32) + (s3 & _LOW32)
    high = (s0 >> np.uint64(32)) + (s3 >> np.uint64(32)) + (low >> np.uint64(32))
    result = ((high & _LOW32) << np.uint64(32)) | (low & _LOW32)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return (result >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel
def _tables_nb(pmf, cdf, guide):
    """Fill ``cdf`` (L, E) and the guide table ``guide`` (L, G) from ``pmf`` (L, E) by rank."""
    num_layers, num_experts = pmf.shape
    guide_size = guide.shape[1]
    last_rank = num_experts - 1
    for l in range(num_layers):
        acc = 0.0
        for r in range(num_experts):
            acc += pmf[l, r]
            cdf[l, r] = acc
        for r in range(num_experts):
            cdf[l, r] /= acc
        cdf[l, last_rank] = 1.0
        # guide[l, j] is the first rank whose cdf exceeds j / G, so a draw starts its search
        # there and takes O(1) steps on average instead of a binary search.
        r = 0
        for j in range(guide_size):
            while r < last_rank and cdf[l, r] <= j / guide_size:
                r += 1
            guide[l, j] = r


@kernel
def _route_nb(rng, state, lengths, base_pmf, perm, rank_of, reuse, affinity, concentration, out):
    """Fill ``out`` (tokens, L, K) in place, token by token (see the module docstring).

    ``base_pmf`` (L, E) float64 is the popularity by rank; ``perm`` (L, E) maps rank to expert and
    ``rank_of`` (L, E) expert to rank; ``rng`` (a NumPy Generator) draws the topic Dirichlets,
    ``state`` (4,) uint64 the routing; ``concentration`` 0 means no topic shift.
    """
    tokens, num_layers, top_k = out.shape
    num_experts = base_pmf.shape[1]
    last_rank = num_experts - 1
    guide_size = _GUIDE_PER_EXPERT * num_experts
    pmf = base_pmf.copy()
    cdf = np.empty_like(pmf)
    guide = np.empty((num_layers, guide_size), dtype=np.int64)
    _tables_nb(pmf, cdf, guide)
    # mark[e] == stamp: expert e is already in the row being filled (no reset per row).
    mark = np.zeros(num_experts, dtype=np.int64)
    stamp = 0
    t = 0
    for s in range(lengths.shape[0]):
        if concentration > 0.0 and lengths[s] > 0:
            for l in range(num_layers):
                total = 0.0
                for r in range(num_experts):
                    g = rng.standard_gamma(concentration * base_pmf[l, r]) if base_pmf[l, r] > 0 else 0.0
                    pmf[l, r] = g
                    total += g
                if total <= 0.0:  # every gamma draw underflowed: keep the layer's popularity
                    for r in range(num_experts):
                        pmf[l, r] = base_pmf[l, r]
            _tables_nb(pmf, cdf, guide)
        for pos in range(lengths[s]):
            for l in range(num_layers):
                stamp += 1
                for k in range(top_k):
                    e = -1
                    if pos > 0 and reuse > 0.0 and _next_double(state) < reuse:
                        free = 0
                        for j in range(top_k):
                            if mark[out[t - 1, l, j]] != stamp:
                                free += 1
                        if free > 0:
                            pick = min(int(_next_double(state) * free), free - 1)
                            for j in range(top_k):
                                cand = out[t - 1, l, j]
                                if mark[cand] != stamp:
                                    if pick == 0:
                                        e = cand
                                        break
                                    pick -= 1
                    if e < 0 and l > 0 and affinity > 0.0 and _next_double(state) < affinity:
                        free = 0
                        for j in range(top_k):
                            if mark[perm[l, rank_of[l - 1, out[t, l - 1, j]]]] != stamp:
                                free += 1
                        if free > 0:
                            pick = min(int(_next_double(state) * free), free - 1)
                            for j in range(top_k):
                                cand = perm[l, rank_of[l - 1, out[t, l - 1, j]]]
                                if mark[cand] != stamp:
                                    if pick == 0:
                                        e = cand
                                        break
                                    pick -= 1
                    if e < 0:
                        for _ in range(_MAX_REJECTIONS):
                            u = _next_double(state)
                            r = guide[l, int(u * guide_size)]
                            while r < last_rank and u >= cdf[l, r]:
                                r += 1
                            cand = perm[l, r]
                            if mark[cand] != stamp:
                                e = cand
                                break
                    if e < 0:
                        total = 0.0
                        for r in range(num_experts):
                            if mark[perm[l, r]] != stamp:
                                total += pmf[l, r]
                        u = _next_double(state) * total
                        last_free = -1
                        for r in range(num_experts):
                            cand = perm[l, r]
                            if mark[cand] != stamp:
                                last_free = cand
                                u -= pmf[l, r]
                                if u < 0.0:
                                    e = cand
                                    break
                        if e < 0:  # rounding left u >= 0, or the free experts have weight 0
                            e = last_free
                    mark[e] = stamp
                    out[t, l, k] = e
            t += 1
