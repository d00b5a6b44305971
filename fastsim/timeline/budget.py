"""The expert cache's byte budget for ``cache_bytes="auto"`` (SPEC section 7; docs/model.md,
"Cache budget"): the GPU memory that the dense weights, the KV cache and a workspace reserve
leave for experts."""
from __future__ import annotations

import numbers

from ..errors import ConfigError
from ..profiles import hardware_profile, model_profile

__all__ = ["DEFAULT_RESERVE_BYTES", "auto_cache_bytes"]

#: 2 GiB: the CUDA context, activations and the engine's workspace (docs/model.md says why).
DEFAULT_RESERVE_BYTES = 2 * 2**30


def _count(value, name: str, minimum: int) -> int:
    """A whole number ``>= minimum``; an integral float (``8e9``) is accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not isinstance(value, numbers.Integral):
        as_float = float(value)
        if not as_float.is_integer():  # also false for inf and nan
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        value = as_float
    if int(value) < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def auto_cache_bytes(model, hardware, batch_size, context_tokens, reserve_bytes=None) -> int:
    """``memory_bytes - dense_bytes_total - kv_bytes_per_token * batch_size * context_tokens
    - reserve_bytes``, in bytes.

    Parameters
    ----------
    model, hardware
        Profiles, or anything :func:`fastsim.profiles.model_profile` /
        :func:`~fastsim.profiles.hardware_profile` resolve.
    batch_size : int
        Slots decoding together (``B >= 1``): each holds one sequence's KV cache.
    context_tokens : int
        Tokens of context each slot's KV cache holds (``>= 0``).
    reserve_bytes : int, optional
        Workspace left free; default :data:`DEFAULT_RESERVE_BYTES` (2 GiB).

    Returns
    -------
    int
        The budget, ``> 0``.

    Raises
    ------
    ConfigError
        A profile lacks ``dense_bytes_total`` or ``kv_bytes_per_token``, an argument is not a
        whole number in range, or the budget is at or below zero (the message gives every
        figure of the subtraction).
    """
    m, h = model_profile(model), hardware_profile(hardware)
    for field in ("dense_bytes_total", "kv_bytes_per_token"):
        if getattr(m, field) is None:
            raise ConfigError(
                f'cache_bytes="auto" needs {field!r} in model profile {m.name!r}, which does not '
                f"give it: add it to the profile (docs/profiles.md) or give cache_bytes in bytes"
            )
    batch = _count(batch_size, "batch_size", 1)
    context = _count(context_tokens, "context_tokens", 0)
    reserve = DEFAULT_RESERVE_BYTES if reserve_bytes is None else _count(reserve_bytes, "reserve_bytes", 0)
    kv = m.kv_bytes_per_token * batch * context
    budget = h.memory_bytes - m.dense_bytes_total - kv - reserve
    if budget <= 0:
        raise ConfigError(
            f'cache_bytes="auto" leaves no room for experts: memory_bytes {h.memory_bytes:,} of '
            f"{h.name!r} - dense_bytes_total {m.dense_bytes_total:,} of {m.name!r} - KV cache "
            f"{kv:,} (kv_bytes_per_token {m.kv_bytes_per_token:,} x batch {batch} x "
            f"context_tokens {context:,}) - reserve_bytes {reserve:,} = {budget:,} bytes"
        )
    return budget
