"""Derived model profiles: a recorded subset of layers, or fewer experts per token.

An engine log often holds only some MoE layers of a model (hooks on a few layers to keep the log
small), and engines can run a model at fewer experts per token than it was trained with
(llama.cpp's ``--override-kv <arch>.expert_used_count=int:K``, reported back as
``n_expert_used``). A trace of such a run replays against a profile derived from the model's:

- ``NAME[0,8,12]``: those layers only, in that order (``num_layers`` = their count, each
  layer's expert size picked from the model's), every other figure unchanged;
- ``NAME[k=K]``: ``top_k`` = ``K`` (``1 <= K <=`` the model's), every other figure unchanged.

Suffixes compose left to right (``NAME[0,8,12][k=6]``); ``NAME`` is anything a model name may be
(a built-in, a TOML path, or another derived or quantised name such as ``NAME@w4``). The derived
profile's name is the derived name written canonically (``NAME[4,5][k=1]``, no spaces), so a
trace records it as its model and it resolves again.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from ..errors import ProfileError

__all__ = ["derive", "derived_model", "derived_name", "split_derivation"]

# One trailing suffix: "[k=6]" or "[0,8,12]" (spaces allowed around the numbers).
_SUFFIX = re.compile(r"\[([^\[\]]*)\]$")


def split_derivation(name: str) -> tuple[str, list[str]]:
    """``"m[0,8][k=6]"`` -> ``("m", ["0,8", "k=6"])``: the base and each suffix's text, in order."""
    suffixes = []
    base = name
    while True:
        match = _SUFFIX.search(base)
        if match is None:
            break
        suffixes.append(match.group(1))
        base = base[: match.start()]
    return base, suffixes[::-1]


def derived_name(base: str, layers=None, top_k: int | None = None) -> str:
    """The name of ``base`` restricted to ``layers`` and/or run at ``top_k`` experts."""
    name = base
    if layers is not None:
        name += "[" + ",".join(str(int(l)) for l in layers) + "]"
    if top_k is not None:
        name += f"[k={int(top_k)}]"
    return name


def derive(profile, layers=None, top_k: int | None = None):
    """``profile`` restricted to ``layers`` and/or run at ``top_k`` experts per token."""
    name = derived_name(profile.name, layers, top_k)
    if layers is not None:
        profile = _with_layers(profile, ",".join(str(int(l)) for l in layers), name)
    if top_k is not None:
        profile = _with_top_k(profile, str(int(top_k)), name)
    return profile


def derived_model(name: str, resolve: Callable[[str], object]):
    """Resolve a derived model name; ``resolve`` turns the base name into a model profile."""
    base, suffixes = split_derivation(name)
    if not suffixes or not base.strip():
        raise ProfileError(
            f"model profile {name!r}: expected NAME[layers] or NAME[k=K], e.g. "
            "'mixtral-8x7b[0,8,12]' or 'mixtral-8x7b[k=1]'"
        )
    profile = resolve(base)
    for text in suffixes:
        if text.strip().lower().startswith("k="):
            profile = _with_top_k(profile, text.strip()[2:], name)
        else:
            profile = _with_layers(profile, text, name)
    return profile


def _with_top_k(profile, text: str, name: str):
    try:
        k = int(text.strip())
    except ValueError:
        raise ProfileError(f"model profile {name!r}: [k={text}] needs an integer K") from None
    if not 1 <= k <= profile.top_k:
        raise ProfileError(
            f"model profile {name!r}: [k={k}] must be 1..{profile.top_k} (the top_k of "
            f"{profile.name!r}); a derived profile runs fewer experts per token, never more"
        )
    return dataclasses.replace(
        profile, name=derived_name(profile.name, top_k=k),
        top_k=k,
        description=f"{profile.name} run at top-{k}. {profile.description}".strip(),
    )


def _with_layers(profile, text: str, name: str):
    parts = [p.strip() for p in text.split(",")]
    try:
        layers = [int(p) for p in parts]
    except ValueError:
        raise ProfileError(
            f"model profile {name!r}: [{text}] must be comma-separated layer numbers or k=K"
        ) from None
    if not layers:
        raise ProfileError(f"model profile {name!r}: [] lists no layers")  # pragma: no cover
    for prev, layer in zip([-1] + layers, layers):
        if not 0 <= layer < profile.num_layers:
            raise ProfileError(
                f"model profile {name!r}: layer {layer} is out of range: {profile.name!r} has "
                f"layers 0..{profile.num_layers - 1}"
            )
        if layer <= prev:
            raise ProfileError(
                f"model profile {name!r}: layers must be listed in increasing order without "
                f"repeats; {layer} follows {prev}"
            )
    sizes = profile.layer_bytes()
    picked = tuple(sizes[l] for l in layers)
    return dataclasses.replace(
        profile, name=derived_name(profile.name, layers),
        num_layers=len(layers),
        expert_bytes=picked[0] if len(set(picked)) == 1 else picked,
        description=f"{profile.name}, layers {','.join(map(str, layers))} only. {profile.description}".strip(),
    )
