"""The counter-based hash of docs/strategies/noisy-oracle.md, in plain Python integers.

``uniform(seed, stream, s, l, key)`` is a number in ``[0, 1)``: SplitMix64's finaliser applied
to the seed and stream, then folded with each coordinate in turn, all modulo 2**64; the top 53
bits make the fraction.
"""
from __future__ import annotations

__all__ = ["uniform"]

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def uniform(seed: int, stream: int, s: int, l: int, key: int) -> float:
    z = mix((int(seed) + GOLDEN * (int(stream) + 1)) & MASK)
    for v in (s, l, key):
        z = mix(z ^ int(v))
    return (z >> 11) / 2.0 ** 53
