"""A counter-based hash: a uniform number in ``[0, 1)`` for each ``(seed, stream, s, l, key)``.

The noisy strategies (``noisy-oracle``, ``pre-gated``) draw their noise from it, so a decision
depends only on its coordinates, never on the order of earlier draws, and the pure-Python
reference (which computes the same function on its own) agrees bit for bit. The mixer is
SplitMix64's finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014); docs/strategies/noisy-oracle.md states the exact recipe.
"""
from __future__ import annotations

import numpy as np

from .._jit import kernel

__all__ = ["uniform"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_UNIT = 1.0 / 9007199254740992.0  # 2 ** -53


@kernel(inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel(inline="always")
def uniform(seed, stream, s, l, key):
    """``(mix(mix(mix(mix(seed + G * (stream + 1)) ^ s) ^ l) ^ key) >> 11) * 2**-53``, all
    arithmetic modulo 2**64 (arguments non-negative integers)."""
    z = _mix(np.uint64(seed) + _GOLDEN * (np.uint64(stream) + _ONE))
    z = _mix(z ^ np.uint64(s))
    z = _mix(z ^ np.uint64(l))
    z = _mix(z ^ np.uint64(key))
    return np.float64(z >> _S11) * _UNIT
