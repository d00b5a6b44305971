"""Which reference strategy a name stands for: the built-ins, then those users registered."""
from __future__ import annotations

import importlib

from ..plugin_references import find_reference

__all__ = ["BUILTIN_REFERENCES", "reference_strategy"]

#: Built-in strategy name -> ``module:class`` of its reference under ``fastsim.reference``.
BUILTIN_REFERENCES = {
    "on-demand": "on_demand:OnDemandReference",
    "oracle": "oracle:OracleReference",
    "multi-look": "multi_look:MultiLookReference",
    "top-k": "top_k:TopKReference",
    "intelligent": "intelligent:IntelligentReference",
    "noisy-oracle": "noisy_oracle:NoisyOracleReference",
    "pre-gated": "pre_gated:PreGatedReference",
    "cross-layer": "cross_layer:CrossLayerReference",
    "moe-infinity": "moe_infinity:MoEInfinityReference",
    "fine-moe": "fine_moe:FineMoEReference",
    "hybrimoe": "hybrimoe:HybriMoEReference",
    "adaptive-top-k": "adaptive_top_k:AdaptiveTopKReference",
}


def reference_strategy(strategy):
    """``(name, factory)`` for a strategy name, or for a reference class given directly."""
    if callable(strategy) and not isinstance(strategy, str):
        return getattr(strategy, "__name__", "custom"), strategy
    if strategy in BUILTIN_REFERENCES:
        module, cls = BUILTIN_REFERENCES[strategy].split(":")
        return strategy, getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    factory = find_reference(strategy)
    if factory is None:
        raise ValueError(f"strategy {strategy!r} has no reference implementation")
    return strategy, factory
