"""Quantised experts (SPEC section 7): the model name ``NAME@wB`` is ``NAME`` with its routed
experts' weights stored at ``B`` bits.

Group-wise integer quantisation as GPTQ, AWQ and their serving kernels store it: every run of
``group`` consecutive weights along a matrix row shares one fp16 scale and one fp16 zero point.
An expert of ``P`` matrix parameters then takes

    ceil(P * B / 8) bytes of values + ceil(P / group) * (2 + 2) bytes of scales and zeros,

with ``group`` 64 unless the name says otherwise (``NAME@w4g128``). ``P`` comes from the
profile's ``expert_flops_per_token``, which SPEC section 2 defines as 2 x the expert's matrix
parameters, so the quantised size follows from the same architecture figures as the original.
Counting groups over the expert as a whole equals counting them per row whenever the rows'
length is a multiple of the group (every built-in model at group 64). Biases a checkpoint keeps
beside the matrices (gpt-oss-20b's 17,280 bytes per expert) are not counted: quantised formats
store them apart, and at 0.1% of an expert they move no result.

Only ``expert_bytes`` changes (one size for every layer: the layers' experts have the same
parameters); dense weights, FLOPs and the KV cache keep the model's figures. The weight-read
time of an expert and its load follow from the new size (SPEC section 2).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from ..errors import ProfileError

__all__ = [
    "ALLOWED_BITS",
    "DEFAULT_GROUP",
    "GROUP_META_BYTES",
    "expert_parameters",
    "quantised_expert_bytes",
    "quantised_model",
    "split_quantisation",
]

#: Bit widths a name may ask for (``@w2``, ``@w3``, ``@w4``, ``@w8``).
ALLOWED_BITS = (2, 3, 4, 8)
#: Weights per group sharing one scale and one zero point.
DEFAULT_GROUP = 64
#: Bytes of one group's metadata: an fp16 scale and an fp16 zero point.
GROUP_META_BYTES = 2 + 2

_SUFFIX = re.compile(r"w(\d+)(?:g(\d+))?")
_ALLOWED_TEXT = ", ".join(f"@w{b}" for b in ALLOWED_BITS)


def split_quantisation(name: str) -> tuple[str, str] | None:
    """``"mixtral-8x7b@w4"`` -> ``("mixtral-8x7b", "w4")``; None when ``name`` asks for no
    quantisation. The suffix is what follows the last ``@`` when that text is neither part of a
    path nor a derived-profile suffix (``[...]``, see ``derive.py``)."""
    at = name.rfind("@")
    if at < 0:
        return None
    suffix = name[at + 1:]
    if any(c in suffix for c in "/\\[]") or suffix.lower().endswith(".toml"):
        return None
    return name[:at], suffix


def _parse_suffix(name: str, suffix: str) -> tuple[int, int, str]:
    """``"w4"`` -> ``(4, 64, "w4")``, ``"w4g128"`` -> ``(4, 128, "w4g128")``: bits, group and
    the suffix as the profile's name spells it; a bad suffix is a ProfileError naming the
    allowed ones."""
    match = _SUFFIX.fullmatch(suffix)
    bits = int(match.group(1)) if match else None
    group = int(match.group(2)) if match and match.group(2) is not None else DEFAULT_GROUP
    if bits not in ALLOWED_BITS or group < 1:
        raise ProfileError(
            f"model profile {name!r}: unknown quantisation suffix '@{suffix}'; expected one of "
            f"{_ALLOWED_TEXT} (B-bit expert weights, group {DEFAULT_GROUP}), optionally with a "
            f"group size such as @w4g128"
        )
    spelled = f"w{bits}" + (f"g{group}" if match.group(2) is not None else "")
    return bits, group, spelled


def expert_parameters(model) -> int:
    """An expert's matrix parameters: ``expert_flops_per_token / 2`` (SPEC section 2)."""
    params = model.expert_flops_per_token / 2.0
    if not (params >= 1.0 and float(params).is_integer()):
        raise ProfileError(
            f"model profile {model.name!r}: cannot quantise its experts: "
            f"'expert_flops_per_token' ({model.expert_flops_per_token}) is not 2 x a whole "
            f"number of parameters"
        )
    return int(params)


def quantised_expert_bytes(params: int, bits: int, group: int = DEFAULT_GROUP) -> int:
    """Bytes of ``params`` weights at ``bits`` bits with one fp16 scale and one fp16 zero per
    ``group`` weights."""
    values = -(-params * bits // 8)
    groups = -(-params // group)
    return values + groups * GROUP_META_BYTES


def quantised_model(name: str, resolve_base: Callable[[str], object]):
    """The profile ``name`` asks for when it ends in a quantisation suffix, else None.

    Parameters
    ----------
    name : str
        ``BASE@wB`` or ``BASE@wBgG``; ``BASE`` is anything a model name may be (a built-in, a
        TOML path, a derived name such as ``NAME[k=6]``).
    resolve_base : callable
        Resolves ``BASE`` to a model profile.
    """
    split = split_quantisation(name)
    if split is None:
        return None
    base_name, suffix = split
    bits, group, spelled = _parse_suffix(name, suffix)
    if split_quantisation(base_name) is not None:
        raise ProfileError(f"model profile {name!r}: quantise a model once (one '@wB' suffix)")
    if not base_name:
        raise ProfileError(f"model profile {name!r}: a model name must come before '@{suffix}'")
    base = resolve_base(base_name)
    size = quantised_expert_bytes(expert_parameters(base), bits, group)
    detail = f"experts at {bits} bits, group {group} with fp16 scale and zero"
    description = f"{base.description}; {detail}" if base.description else detail
    return dataclasses.replace(
        base, name=f"{base.name}@{spelled}", expert_bytes=size, description=description
    )
