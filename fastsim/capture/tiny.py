"""Tiny randomly initialised MoE models built from transformers config classes (no download).

They exist for dry runs of the capture path (``fastsim trace capture --config tiny-mixtral``) and
for tests: hidden size 32, a handful of layers, 8 experts, a 128-token vocabulary.
"""
from __future__ import annotations

from ..errors import FastsimError
from ._deps import require_torch, require_transformers

VOCAB = 128

# Shared by the decoder-only families; special ids sit inside the tiny vocabulary.
_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    tie_word_embeddings=False,
)
_ROPE = {"rope_type": "default", "rope_theta": 10000.0}


def _configs(tf):
    return {
        "tiny-mixtral": lambda: tf.MixtralConfig(**_COMMON, num_local_experts=8, num_experts_per_tok=2),
        "tiny-qwen2-moe": lambda: tf.Qwen2MoeConfig(
            **_COMMON, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
            shared_expert_intermediate_size=32, norm_topk_prob=False,
        ),
        "tiny-qwen3-moe": lambda: tf.Qwen3MoeConfig(
            **_COMMON, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True
        ),
        "tiny-olmoe": lambda: tf.OlmoeConfig(**_COMMON, num_experts=8, num_experts_per_tok=2),
        "tiny-deepseek-v3": lambda: tf.DeepseekV3Config(
            **{**_COMMON, "num_key_value_heads": 4}, n_routed_experts=8, num_experts_per_tok=2,
            moe_intermediate_size=32, n_shared_experts=1, n_group=2, topk_group=1, first_k_dense_replace=1,
            q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8,
            rope_parameters=dict(_ROPE),
        ),
        "tiny-gpt-oss": lambda: tf.GptOssConfig(
            **_COMMON, num_local_experts=8, num_experts_per_tok=2, head_dim=8, rope_parameters=dict(_ROPE)
        ),
        # Sparse every second block, like switch-base-*: decoder blocks 1 and 3 hold the experts.
        "tiny-switch": lambda: tf.SwitchTransformersConfig(
            vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=4, num_heads=4,
            num_experts=8, expert_capacity=64, encoder_sparse_step=2, decoder_sparse_step=2,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ),
    }


TINY_MODELS = (
    "tiny-mixtral",
    "tiny-qwen2-moe",
    "tiny-qwen3-moe",
    "tiny-olmoe",
    "tiny-deepseek-v3",
    "tiny-gpt-oss",
    "tiny-switch",
)


def tiny_config(name: str, **overrides):
    """The transformers config of tiny model ``name`` with ``overrides`` applied."""
    tf = require_transformers()
    makers = _configs(tf)
    if name not in makers:
        raise FastsimError(f"unknown tiny model {name!r}; expected one of {', '.join(TINY_MODELS)}")
    config = makers[name]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def tiny_model(name: str, seed: int = 0, **overrides):
    """A randomly initialised tiny model (float32, eval mode, eager attention) from ``seed``.

    Router weights are redrawn with standard deviation ``2 / sqrt(hidden)``: the families' default
    initialiser (0.02) makes every expert almost equally likely, so routing would hinge on rounding.
    """
    torch = require_torch()
    tf = require_transformers()
    config = tiny_config(name, **overrides)
    config._attn_implementation = "eager"
    # Eager experts run in any dtype (the grouped-matmul default takes no float64) and route alike.
    config._experts_implementation = "eager"
    torch.manual_seed(int(seed))
    if getattr(config, "is_encoder_decoder", False):
        model = tf.AutoModelForSeq2SeqLM.from_config(config)
    else:
        model = tf.AutoModelForCausalLM.from_config(config)
    from .routers import find_routers

    with torch.no_grad():
        for site in find_routers(model):
            weight = getattr(site.module, "weight", None)
            if weight is None:
                weight = site.module.classifier.weight  # Switch
            weight.normal_(0.0, 2.0 / weight.shape[-1] ** 0.5)
    return model.float().eval()
