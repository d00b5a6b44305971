"""Capture routing traces from Hugging Face transformers MoE models (the ``fastsim[capture]`` extra).

:func:`capture_routing` greedy-decodes a batch of prompts with a KV cache while forward hooks on
the model's router modules record the experts each MoE layer chose, and returns a
:class:`~fastsim.Trace`. Nothing here imports torch until a function is called.
"""
from __future__ import annotations

from .decode import CaptureResult, capture_generation, capture_routing
from .tiny import TINY_MODELS, tiny_config, tiny_model

__all__ = ["CaptureResult", "TINY_MODELS", "capture_generation", "capture_routing", "tiny_config", "tiny_model"]
