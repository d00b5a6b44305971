"""Find the router modules of a transformers MoE model and read the experts each one chose.

Every supported family routes through one module per MoE layer whose forward returns the selection
the layer then executes, so a forward hook sees exactly what the model used (no re-derivation):

* top-k routers (``MixtralTopKRouter``, ``Qwen2MoeTopKRouter``, ``Qwen3MoeTopKRouter``,
  ``OlmoeTopKRouter``, ``DeepseekV3TopkRouter``, ``GptOssTopKRouter`` and any other class named
  ``...TopKRouter``) return ``(router_logits, weights, indices)``; indices and weights have shape
  ``(tokens, K)``. The row is put best first by weight (a stable sort; DeepSeek-V3's router picks
  with ``sorted=False``).
* ``SwitchTransformersTop1Router`` returns ``(dispatch_mask, max_prob, router_logits)``; the
  dispatch mask is one-hot over experts with the token's row zeroed when its expert was over
  capacity, which is recorded as ``-1``. Only the decoder's routers are hooked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import FastsimError

_TOPK_ROUTER = re.compile(r"Top[Kk]Router$")
_TOP1_ROUTER = re.compile(r"Top1Router$")


@dataclass
class RouterSite:
    """One hooked router: its module path, the reading it needs, and what it recorded.

    ``calls`` holds, per forward call, ``(experts, scores)`` numpy arrays of shape
    ``(tokens_in_call, K)``: int64 ids (``-1`` = dropped) and float32 weights.
    """

    name: str
    module: object
    kind: str  # "topk" or "top1"
    num_experts: int
    top_k: int
    calls: list = field(default_factory=list)


def _search_root(model):
    """The part of the model whose routers make the trace: the decoder of an encoder-decoder."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "decoder", None)
        if decoder is None:
            raise FastsimError(f"{type(model).__name__} is an encoder-decoder model without a decoder to hook")
        return decoder
    return model


def find_routers(model) -> list[RouterSite]:
    """Router modules of ``model`` in model (layer) order.

    Raises :class:`FastsimError` when there are none or their expert counts or ``K`` differ.
    """
    root = _search_root(model)
    prefix = ""
    for name, module in model.named_modules():
        if module is root:
            prefix = name
            break
    sites = []
    for name, module in root.named_modules():
        cls = type(module).__name__
        full = f"{prefix}.{name}" if prefix and name else (prefix or name)
        if _TOP1_ROUTER.search(cls):
            kind, top_k = "top1", 1
        elif _TOPK_ROUTER.search(cls):
            kind, top_k = "topk", getattr(module, "top_k", None)
        else:
            continue
        num_experts = getattr(module, "num_experts", None)
        if not isinstance(num_experts, int) or not isinstance(top_k, int):
            raise FastsimError(
                f"router {full} ({cls}) has no integer num_experts/top_k attributes; cannot size the trace"
            )
        sites.append(RouterSite(full, module, kind, num_experts, top_k))
    if not sites:
        raise FastsimError(
            f"no MoE router modules (classes named ...TopKRouter or ...Top1Router) found in "
            f"{type(model).__name__}; supported: Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V3, "
            "GPT-OSS, Switch Transformers (transformers >= 5)"
        )
    shapes = {(s.num_experts, s.top_k) for s in sites}
    if len(shapes) > 1:
        raise FastsimError(
            f"routers of {type(model).__name__} differ in (num_experts, top_k): {sorted(shapes)}; "
            "a trace needs one E and K for every layer"
        )
    return sites


def read_router_output(site: RouterSite, output):
    """``(experts, scores)`` of one router call, shapes ``(tokens, K)``, int64 and float32 numpy."""
    import torch

    if not isinstance(output, (tuple, list)):
        raise FastsimError(
            f"router {site.name} returned {type(output).__name__}, expected a tuple with the chosen "
            "experts; this transformers version routes differently (transformers >= 5 is needed)"
        )
    if site.kind == "top1":
        mask, probs = output[0], output[1]
        mask = mask.reshape(-1, site.num_experts)
        chosen = mask.argmax(dim=-1)
        kept = mask.sum(dim=-1) > 0
        experts = torch.where(kept, chosen, torch.full_like(chosen, -1)).unsqueeze(-1)
        scores = torch.where(kept, probs.reshape(-1).float(), torch.zeros((), dtype=torch.float32))
        scores = scores.unsqueeze(-1)
    else:
        indices = [t for t in output if torch.is_tensor(t) and not t.is_floating_point()]
        if len(indices) != 1:
            raise FastsimError(
                f"router {site.name} returned {len(indices)} integer tensors, expected one (the chosen experts)"
            )
        experts = indices[0].reshape(-1, site.top_k)
        # The weights sit beside the indices, (logits, weights, indices) in every family so far.
        weights = [
            t for t in output[1:] if torch.is_tensor(t) and t.is_floating_point() and t.numel() == experts.numel()
        ]
        scores = weights[0].reshape(-1, site.top_k).float() if weights else torch.zeros(experts.shape)
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
        experts = experts.gather(-1, order)
        scores = scores.gather(-1, order)
    return (
        experts.detach().to("cpu", torch.int64).numpy(),
        scores.detach().to("cpu", torch.float32).numpy().astype(np.float32, copy=False),
    )


def register_hooks(sites: list[RouterSite]) -> list:
    """Attach a recording forward hook to every site; returns the handles to remove."""
    handles = []
    for site in sites:

        def hook(module, args, output, _site=site):
            _site.calls.append(read_router_output(_site, output))

        handles.append(site.module.register_forward_hook(hook))
    return handles
