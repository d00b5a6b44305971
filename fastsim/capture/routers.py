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


def _first_int(module, parent, config, names):
    for owner in (module, parent, config):
        for name in names:
            value = getattr(owner, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


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
    config = getattr(model, "config", None)
    sites = []
    for name, module in root.named_modules():
        cls = type(module).__name__
        full = f"{prefix}.{name}" if prefix and name else (prefix or name)
        if _TOP1_ROUTER.search(cls):
            kind = "top1"
        elif _TOPK_ROUTER.search(cls):
            kind = "topk"
        else:
            continue
        # Some releases keep E and K on the MoE block or only in the config, not on the router.
        parent = model.get_submodule(full.rsplit(".", 1)[0]) if "." in full else model
        num_experts = _first_int(module, parent, config, ("num_experts", "n_routed_experts", "num_local_experts"))
        top_k = 1 if kind == "top1" else _first_int(module, parent, config, ("top_k", "num_experts_per_tok"))
        if num_experts is None or top_k is None:
            raise FastsimError(
                f"router {full} ({cls}) gives no expert count or top_k (module, block or config); "
                "cannot size the trace"
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


def _tensors(values):
    import torch

    return [v for v in values if torch.is_tensor(v)]


def _topk_from_tensors(site: RouterSite, tensors):
    """Chosen ids (the one integer tensor) and their weights (a float tensor of the same size)."""
    import torch

    indices = [t for t in tensors if not t.is_floating_point() and t.dtype != torch.bool]
    if len(indices) != 1:
        return None
    experts = indices[0].reshape(-1, site.top_k)
    weights = [t for t in tensors if t.is_floating_point() and t.numel() == experts.numel()]
    # (logits, weights, indices) is every family's order; with K == E the logits also match in size.
    scores = weights[-1].reshape(-1, site.top_k).float() if weights else torch.zeros(experts.shape)
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    return experts.gather(-1, order), scores.gather(-1, order)


def _top1_from_tensors(site: RouterSite, tensors):
    """Switch: the integer one-hot dispatch mask (zero row = over capacity) and the ``(..., 1)`` max prob."""
    import torch

    masks = [t for t in tensors if not t.is_floating_point() and t.shape[-1] == site.num_experts]
    probs = [t for t in tensors if t.is_floating_point() and t.shape[-1] == 1]
    if len(masks) != 1 or len(probs) != 1:
        return None
    mask = masks[0].reshape(-1, site.num_experts)
    chosen = mask.argmax(dim=-1)
    kept = mask.sum(dim=-1) > 0
    experts = torch.where(kept, chosen, torch.full_like(chosen, -1)).unsqueeze(-1)
    # A dropped token's expert output is not added at all: its weight is 0.
    scores = torch.where(kept, probs[0].reshape(-1).float(), torch.zeros((), dtype=torch.float32))
    return experts, scores.unsqueeze(-1)


def _to_numpy(pair):
    import torch

    experts, scores = pair
    return (
        experts.detach().to("cpu", torch.int64).numpy(),
        scores.detach().to("cpu", torch.float32).numpy().astype(np.float32, copy=False),
    )


def read_router_output(site: RouterSite, output):
    """``(experts, scores)`` of one router call, shapes ``(tokens, K)``, int64 and float32 numpy;
    None when the router returned no selection (only logits)."""
    tensors = _tensors(output if isinstance(output, (tuple, list)) else (output,))
    reader = _top1_from_tensors if site.kind == "top1" else _topk_from_tensors
    pair = reader(site, tensors)
    return None if pair is None else _to_numpy(pair)


def _experts_module(model, site_name: str):
    """The ``experts`` sibling of a router (``...mlp.gate`` -> ``...mlp.experts``), or None."""
    parent = site_name.rsplit(".", 1)[0] if "." in site_name else ""
    try:
        block = model.get_submodule(parent)
    except AttributeError:
        return None
    return getattr(block, "experts", None)


def register_hooks(model, sites: list[RouterSite]) -> list:
    """Attach recording hooks to every site; returns the handles to remove.

    Each router call appends its selection to ``site.calls``. Where a router returns only logits
    (DeepSeek-V3 before its router returned the selection), the block passes the chosen ids and
    weights to its ``experts`` module, and a pre-hook there fills the entry in.
    """
    handles = []
    for site in sites:

        def hook(module, args, output, _site=site):
            _site.calls.append(read_router_output(_site, output))

        handles.append(site.module.register_forward_hook(hook))
        experts = _experts_module(model, site.name) if site.kind == "topk" else None
        if experts is not None:

            def pre_hook(module, args, kwargs, _site=site):
                if _site.calls and _site.calls[-1] is None:
                    pair = _topk_from_tensors(_site, _tensors([*args, *kwargs.values()]))
                    if pair is not None:
                        _site.calls[-1] = _to_numpy(pair)

            handles.append(experts.register_forward_pre_hook(pre_hook, with_kwargs=True))
    return handles
