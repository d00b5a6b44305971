"""Lazy access to the optional ``fastsim[capture]`` dependencies (torch, transformers).

Importing :mod:`fastsim` or :mod:`fastsim.capture` never imports torch; the first capture call does.
"""
from __future__ import annotations

import os

from ..errors import FastsimError

INSTALL_HINT = "install the capture extra: pip install 'fastsim[capture]' (torch and transformers)"


def offline() -> None:
    """Keep every Hugging Face library off the network for the rest of this process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def require_torch():
    """Return the ``torch`` module, or raise :class:`FastsimError` naming the extra to install."""
    try:
        import torch
    except ImportError as exc:
        raise FastsimError(f"routing capture needs torch, which is not importable ({exc}); {INSTALL_HINT}") from None
    return torch


def require_transformers():
    """Return the ``transformers`` module (offline), or raise :class:`FastsimError`."""
    require_torch()
    offline()
    try:
        import transformers
    except ImportError as exc:
        raise FastsimError(
            f"routing capture needs transformers, which is not importable ({exc}); {INSTALL_HINT}"
        ) from None
    return transformers
