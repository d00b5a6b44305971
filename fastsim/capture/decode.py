"""Greedy decoding with a KV cache while forward hooks record every router's choice.

Rows of a captured sequence
---------------------------
Each row is one position the model ran for that sequence, in order. With ``include_prompt=False``
(the default) the rows are the decode steps: row ``i`` is the forward pass that produced generated
token ``i`` -- row 0 is the last prompt position (computed in the prefill), row ``i >= 1`` is
generated token ``i`` fed back with the cache. A sequence that generates ``n`` tokens (its EOS
included) therefore has ``n`` rows; the last generated token is never fed, as in any generator.
With ``include_prompt=True`` the rows are every real prompt position followed by the fed generated
tokens (``prompt_length + n - 1`` rows), and the trace marks each sequence's first
``prompt_length`` rows as its prompt (``Trace.prompt_tokens``): the positions the prefill pass ran.
Left padding and rows of sequences that already finished are never recorded.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass

import numpy as np

from ..errors import FastsimError
from ..trace.model import Trace
from ._deps import require_torch, require_transformers
from .routers import find_routers, register_hooks


@dataclass
class CaptureResult:
    """What one capture produced.

    Attributes
    ----------
    trace : Trace
        The routing, one sequence per prompt.
    tokens : list of ndarray, int64
        Generated token ids of each sequence, its EOS (when reached) included.
    prompt_lengths : ndarray, shape (S,), int64
        Real (unpadded) prompt tokens of each sequence; for encoder-decoder models the decoder
        prompt length.
    router_names : list of str
        Module paths of the hooked routers, one per trace layer.
    """

    trace: Trace
    tokens: list
    prompt_lengths: np.ndarray
    router_names: list


def _as_batch(torch, input_ids, attention_mask):
    """Prompt ids and mask as ``(B, P)`` int64 tensors; ragged lists are left-padded here."""
    if isinstance(input_ids, (list, tuple)) and input_ids and not np.isscalar(input_ids[0]):
        if attention_mask is not None:
            raise FastsimError("attention_mask must be omitted when input_ids is a list of token lists")
        rows = [np.asarray(r, dtype=np.int64).reshape(-1) for r in input_ids]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for b, r in enumerate(rows):
            if len(r):
                ids[b, width - len(r) :] = r
                mask[b, width - len(r) :] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)
    ids = torch.as_tensor(np.asarray(input_ids.cpu() if torch.is_tensor(input_ids) else input_ids))
    if ids.ndim == 1:
        ids = ids.unsqueeze(0)
    if ids.ndim != 2 or ids.is_floating_point():
        raise FastsimError(f"input_ids must be a (batch, length) integer array, got shape {tuple(ids.shape)}")
    if attention_mask is None:
        mask = torch.ones_like(ids)
    else:
        mask = torch.as_tensor(np.asarray(attention_mask.cpu() if torch.is_tensor(attention_mask) else attention_mask))
        if mask.ndim == 1:
            mask = mask.unsqueeze(0)
        if tuple(mask.shape) != tuple(ids.shape):
            raise FastsimError(
                f"attention_mask shape {tuple(mask.shape)} differs from input_ids shape {tuple(ids.shape)}"
            )
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise FastsimError("attention_mask must hold only 0 (padding) and 1 (token)")
    return ids.to(torch.int64), mask.to(torch.int64)


def _eos_ids(model, eos_token_id, ignore_eos) -> set[int]:
    if ignore_eos:
        return set()
    if eos_token_id is None:
        gen = getattr(model, "generation_config", None)
        eos_token_id = getattr(gen, "eos_token_id", None)
        if eos_token_id is None:
            eos_token_id = getattr(model.config, "eos_token_id", None)
    if eos_token_id is None:
        return set()
    if isinstance(eos_token_id, int):
        return {eos_token_id}
    return {int(e) for e in eos_token_id}


def _forward_params(model) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _take_calls(sites, batch: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """The one call each router made in the last forward, as ``(B, P, L, K)`` experts and scores."""
    experts, scores = [], []
    for site in sites:
        if len(site.calls) != 1:
            raise FastsimError(
                f"router {site.name} ran {len(site.calls)} times in one forward pass, expected once"
            )
        call = site.calls.pop()
        if call is None:
            raise FastsimError(
                f"router {site.name} ({type(site.module).__name__}) returned no expert selection and its "
                "block passed none to an experts module; this transformers version is not supported"
            )
        e, s = call
        if e.shape[0] != batch * positions:
            raise FastsimError(
                f"router {site.name} saw {e.shape[0]} tokens, expected batch {batch} x {positions} positions"
            )
        experts.append(e.reshape(batch, positions, -1))
        scores.append(s.reshape(batch, positions, -1))
    return np.stack(experts, axis=2), np.stack(scores, axis=2)


def capture_generation(
    model,
    input_ids,
    max_new_tokens: int = 32,
    attention_mask=None,
    *,
    include_prompt: bool = False,
    decoder_input_ids=None,
    eos_token_id=None,
    ignore_eos: bool = False,
    pad_token_id: int | None = None,
    model_name: str | None = None,
    source: str | None = None,
    metadata: dict | None = None,
) -> CaptureResult:
    """Greedy-decode a batch of prompts and record the experts every MoE layer chose.

    Parameters
    ----------
    model : transformers PreTrainedModel
        A causal LM, or an encoder-decoder (Switch Transformers) whose decoder routers are read.
    input_ids : (B, P) integer tensor or array, or a list of token-id lists
        Prompts, left-padded (lists of different lengths are left-padded here).
    max_new_tokens : int
        Tokens to generate per prompt (at least 1).
    attention_mask : (B, P) tensor or array of 0/1, optional
        1 for real tokens; decoder-only prompts must be padded on the left.
    include_prompt : bool
        Also record every real prompt position, marked as the sequence's prompt (see the module
        docstring).
    decoder_input_ids : (B, D) or (D,) integers, optional
        Decoder prompt of an encoder-decoder model (default: the decoder start token).
    eos_token_id, ignore_eos : optional
        Stop a sequence after it generates one of these ids (default: the model's own EOS);
        ``ignore_eos=True`` always generates ``max_new_tokens``.
    model_name, source, metadata :
        Stored on the trace (``model`` is a fastsim profile name).

    Returns
    -------
    CaptureResult
    """
    torch = require_torch()
    transformers = require_transformers()
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise FastsimError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    max_new_tokens = int(max_new_tokens)
    config = getattr(model, "config", None)
    if config is None or not callable(model):
        raise FastsimError(f"model must be a transformers PreTrainedModel, got {type(model).__name__}")
    ids, mask = _as_batch(torch, input_ids, attention_mask)
    batch = ids.shape[0]
    if batch == 0:
        raise FastsimError("input_ids holds no prompts")
    real = mask.sum(dim=1)
    if bool((real == 0).any()):
        raise FastsimError(f"prompt {int((real == 0).nonzero()[0, 0])} is empty (no unmasked token)")
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    if not encoder_decoder:
        # A left-padded row is zeros then ones: its mask never drops once it has risen.
        if bool((mask[:, 1:] < mask[:, :-1]).any()):
            bad = int((mask[:, 1:] < mask[:, :-1]).any(dim=1).nonzero()[0, 0])
            raise FastsimError(
                f"attention_mask row {bad} has padding after a token; pad prompts on the left "
                "(tokenizer.padding_side = 'left')"
            )

    sites = find_routers(model)
    num_experts, top_k = sites[0].num_experts, sites[0].top_k
    params = _forward_params(model)
    cache_key = "cache" if "cache" in params else "past_key_values"
    eos = _eos_ids(model, eos_token_id, ignore_eos)
    if pad_token_id is None:
        pad_token_id = getattr(config, "pad_token_id", None)
        if pad_token_id is None:
            pad_token_id = min(eos) if eos else 0
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    ids, mask = ids.to(device), mask.to(device)

    if encoder_decoder:
        if decoder_input_ids is None:
            start = getattr(config, "decoder_start_token_id", None)
            if start is None:
                raise FastsimError(f"{type(model).__name__} config has no decoder_start_token_id; pass decoder_input_ids")
            dec = torch.full((batch, 1), int(start), dtype=torch.int64)
        else:
            dec = torch.as_tensor(np.asarray(decoder_input_ids), dtype=torch.int64)
            if dec.ndim == 1:
                dec = dec.unsqueeze(0).expand(batch, -1)
            if dec.ndim != 2 or dec.shape[0] != batch or dec.shape[1] < 1:
                raise FastsimError(
                    f"decoder_input_ids must have shape (D,) or ({batch}, D) with D >= 1, got {tuple(dec.shape)}"
                )
        dec = dec.to(device)
        prompt_lengths = np.full(batch, dec.shape[1], dtype=np.int64)
    else:
        prompt_lengths = real.cpu().numpy().astype(np.int64)

    rows: list[list[np.ndarray]] = [[] for _ in range(batch)]
    row_scores: list[list[np.ndarray]] = [[] for _ in range(batch)]
    generated: list[list[int]] = [[] for _ in range(batch)]
    finished = np.zeros(batch, dtype=bool)

    was_training = model.training
    handles = register_hooks(model, sites)
    model.eval()
    try:
        with torch.inference_mode():
            if encoder_decoder:
                encoder_outputs = model.get_encoder()(input_ids=ids, attention_mask=mask)
                cache = transformers.EncoderDecoderCache(
                    transformers.DynamicCache(), transformers.DynamicCache()
                )
                step_input = dec
            else:
                cache = None
                step_input = ids
                positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
            for step in range(max_new_tokens):
                kwargs = {"input_ids" if not encoder_decoder else "decoder_input_ids": step_input, cache_key: cache}
                if encoder_decoder:
                    kwargs.update(encoder_outputs=encoder_outputs, attention_mask=mask)
                else:
                    kwargs.update(attention_mask=mask, use_cache=True)
                    if "position_ids" in params:
                        kwargs["position_ids"] = positions if step == 0 else positions[:, -1:]
                out = model(**kwargs)
                new_cache = getattr(out, "cache", None)
                if new_cache is None:
                    new_cache = getattr(out, "past_key_values", None)
                if new_cache is None:
                    raise FastsimError(f"{type(model).__name__} returned no KV cache; cannot decode step by step")
                cache = new_cache
                width = step_input.shape[1]
                experts, scores = _take_calls(sites, batch, width)
                produced = out.logits[:, -1, :].argmax(dim=-1)
                produced_np = produced.cpu().numpy()
                for b in range(batch):
                    if finished[b]:
                        continue
                    if step == 0:
                        first = width - int(prompt_lengths[b]) if include_prompt else width - 1
                        rows[b].append(experts[b, first:])
                        row_scores[b].append(scores[b, first:])
                    else:
                        rows[b].append(experts[b])
                        row_scores[b].append(scores[b])
                    token = int(produced_np[b])
                    generated[b].append(token)
                    if token in eos:
                        finished[b] = True
                if finished.all() or step == max_new_tokens - 1:
                    break
                feed = torch.where(
                    torch.as_tensor(finished, device=device), torch.full_like(produced, int(pad_token_id)), produced
                )
                step_input = feed.unsqueeze(-1)
                if not encoder_decoder:
                    mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], dim=1)
                    positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
    finally:
        for handle in handles:
            handle.remove()
        for site in sites:
            site.calls.clear()
        model.train(was_training)

    lengths = np.array([sum(len(r) for r in seq) for seq in rows], dtype=np.int64)
    layers = len(sites)
    all_experts = np.concatenate(
        [np.concatenate(seq, axis=0) for seq in rows if seq] or [np.zeros((0, layers, top_k), np.int64)]
    )
    all_scores = np.concatenate(
        [np.concatenate(seq, axis=0) for seq in row_scores if seq] or [np.zeros((0, layers, top_k), np.float32)]
    )
    meta = {
        "capture.architecture": type(model).__name__,
        "capture.model_type": str(getattr(config, "model_type", "")),
        "capture.hf_config": json.dumps(
            json.loads(config.to_json_string(use_diff=False)), sort_keys=True, separators=(",", ":")
        ),
        "capture.routers": json.dumps([s.name for s in sites]),
        "capture.decoding": "greedy",
        "capture.max_new_tokens": str(max_new_tokens),
        "capture.include_prompt": "true" if include_prompt else "false",
        "capture.prompt_lengths": json.dumps(prompt_lengths.tolist()),
        "capture.eos_token_ids": json.dumps(sorted(eos)),
        "capture.torch_version": str(torch.__version__),
        "capture.transformers_version": str(transformers.__version__),
    }
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    if source is None:
        source = (
            f"fastsim.capture {type(model).__name__} greedy max_new_tokens={max_new_tokens} "
            f"include_prompt={include_prompt} batch={batch}"
        )
    trace = Trace.from_arrays(
        all_experts,
        num_experts=num_experts,
        sequence_lengths=lengths,
        scores=all_scores,
        model=model_name,
        source=source,
        metadata=meta,
        # Every recorded prompt row ran in the prefill pass, so the prompt is exactly those rows.
        prompt_tokens=prompt_lengths if include_prompt else None,
    )
    tokens = [np.asarray(g, dtype=np.int64) for g in generated]
    return CaptureResult(trace=trace, tokens=tokens, prompt_lengths=prompt_lengths, router_names=[s.name for s in sites])


def capture_routing(model, input_ids, max_new_tokens: int = 32, attention_mask=None, **options) -> Trace:
    """Greedy-decode ``input_ids`` and return the routing as a :class:`~fastsim.Trace`.

    Same parameters as :func:`capture_generation`; returns only its ``trace``.
    """
    return capture_generation(model, input_ids, max_new_tokens, attention_mask, **options).trace
