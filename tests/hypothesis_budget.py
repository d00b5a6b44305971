"""Example counts relative to the loaded Hypothesis profile (``ci`` or ``slow``).

A test whose examples are costly runs a fraction of the profile's count; ``--slow`` and
``FASTSIM_EXAMPLES`` then scale it with everything else.
"""
from __future__ import annotations

from hypothesis import settings


def examples(fraction: float, at_least: int = 5) -> settings:
    """``settings`` with ``fraction`` of the profile's ``max_examples`` (at least ``at_least``)."""
    return settings(max_examples=max(at_least, round(settings.default.max_examples * fraction)))
