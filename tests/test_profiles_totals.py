"""Profile figures for SPEC section 7: whole-model dense bytes and KV bytes per token of every
built-in model, host CPU figures and the added hardware, fixed-cost fields, integral floats.

Expected model figures are recomputed from the config.json values models.toml cites.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastsim.errors import ProfileError
from fastsim.profiles import hardware_profile, list_hardware, list_models, model_profile
from test_profiles import EXPECTED

BF16 = 2

# ---------------------------------------------------------------------------------------------
# dense_bytes_total and kv_bytes_per_token


@pytest.mark.parametrize("name", list_models())
def test_every_builtin_gives_both_and_they_are_consistent(name):
    p = model_profile(name)
    assert type(p.dense_bytes_total) is int and p.dense_bytes_total > 0
    assert type(p.kv_bytes_per_token) is int and p.kv_bytes_per_token > 0
    # every built-in holds at least its MoE layers' dense weights, and less than the experts
    # of a sparse model weigh
    assert p.dense_bytes_total >= p.num_layers * p.dense_bytes_per_layer
    if not name.startswith("seed-"):
        assert p.dense_bytes_total < p.num_layers * p.num_experts * p.expert_bytes


# name -> (vocab_size, hidden_size) of untied embedding and LM head (tie_word_embeddings false)
UNTIED = {
    "qwen2-57b-a14b": (151936, 3584),
    "qwen1.5-moe-a2.7b": (151936, 2048),
    "qwen3-30b-a3b": (151936, 2048),
    "mixtral-8x7b": (32000, 4096),
    "olmoe-1b-7b": (50304, 2048),
}


@pytest.mark.parametrize("name", sorted(UNTIED))
def test_dense_total_is_the_layers_plus_embedding_head_and_norm(name):
    vocab, hidden = UNTIED[name]
    layers = EXPECTED[name]["layers"]
    per_layer = EXPECTED[name]["dense_bytes"]  # recomputed from the config in test_profiles
    assert model_profile(name).dense_bytes_total == layers * per_layer + (2 * vocab * hidden + hidden) * BF16


def test_dense_totals_of_the_other_architectures():
    # Switch: tied embedding 32128 x 768; encoder 12 blocks (attention, 2 norms), decoder 12
    # blocks (self- and cross-attention, 3 norms), 6 dense FFNs and 6 routers in each stack, a
    # final norm and a 32 x 12 relative bias per stack; float32
    d, ff, heads = 768, 3072, 12
    attention, ffn, router = 4 * d * d, 2 * d * ff, d * 128
    encoder = 12 * attention + 6 * ffn + 6 * router + 12 * 2 * d + d + 32 * heads
    decoder = 12 * 2 * attention + 6 * ffn + 6 * router + 12 * 3 * d + d + 32 * heads
    embedding = 32128 * d
    assert model_profile("switch-base-128").dense_bytes_total == (embedding + encoder + decoder) * 4
    assert model_profile("switch-base-128-decoder").dense_bytes_total == (embedding + decoder) * 4
    # DeepSeek-V2-Lite: 26 MoE layers, dense layer 0 (MLA + MLP of intermediate_size 10944)
    h = 2048
    mla = h * 16 * 192 + h * 576 + 512 + 512 * 16 * 256 + 16 * 128 * h
    layer0 = mla + 3 * h * 10944 + 2 * h
    want = 26 * EXPECTED["deepseek-v2-lite"]["dense_bytes"] + (layer0 + 2 * 102400 * h + h) * BF16
    assert model_profile("deepseek-v2-lite").dense_bytes_total == want
    # gpt-oss-20b: 24 layers, untied 201088-token embedding and head, final norm, bf16
    assert model_profile("gpt-oss-20b").dense_bytes_total == (
        24 * EXPECTED["gpt-oss-20b"]["dense_bytes"] + (2 * 201088 * 2880 + 2880) * BF16
    )
    # DeepSeek-V3: 58 MoE layers, 3 dense layers (fp8 attention and MLP of 18432 with block
    # scales, bf16 norms), bf16 embedding and head
    h = 7168
    attention = [(1536, h), (128 * 192, 1536), (576, h), (128 * 256, 512), (h, 128 * 128)]
    mlp = [(18432, h), (18432, h), (h, 18432)]
    scales = sum(-(-r // 128) * -(-c // 128) for r, c in attention + mlp) * 4
    dense_layer = sum(r * c for r, c in attention + mlp) + scales + (2 * h + 1536 + 512) * BF16
    want = 58 * EXPECTED["deepseek-v3"]["dense_bytes"] + 3 * dense_layer + (2 * 129280 * h + h) * BF16
    assert model_profile("deepseek-v3").dense_bytes_total == want


# name -> (published total parameters, bytes per parameter)
PUBLISHED = {
    "switch-base-128": (7.4e9, 4),
    "qwen2-57b-a14b": (57.4e9, 2),
    "qwen1.5-moe-a2.7b": (14.3e9, 2),
    "qwen3-30b-a3b": (30.5e9, 2),
    "mixtral-8x7b": (46.7e9, 2),
    "olmoe-1b-7b": (6.9e9, 2),
    "deepseek-v2-lite": (15.7e9, 2),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_dense_and_experts_add_up_to_the_published_size(name):
    p = model_profile(name)
    total, per_param = PUBLISHED[name]
    params = (p.dense_bytes_total + p.num_layers * p.num_experts * p.expert_bytes) / per_param
    assert params == pytest.approx(total, rel=0.01)


# name -> (attention layers, kv heads, head dim, bytes, caches) with caches = 2 for keys and
# values (2 more for Switch's cross-attention)
GQA = {
    "switch-base-128": (12, 12, 64, 4, 4),
    "switch-base-128-decoder": (12, 12, 64, 4, 4),
    "qwen2-57b-a14b": (28, 4, 128, 2, 2),
    "qwen1.5-moe-a2.7b": (24, 16, 128, 2, 2),
    "qwen3-30b-a3b": (48, 4, 128, 2, 2),
    "mixtral-8x7b": (32, 8, 128, 2, 2),
    "olmoe-1b-7b": (16, 16, 128, 2, 2),
    "gpt-oss-20b": (24, 8, 64, 2, 2),
}
# MLA: (attention layers, kv_lora_rank, qk_rope_head_dim): one latent plus the RoPE key, bf16
MLA = {"deepseek-v2-lite": (27, 512, 64), "deepseek-v3": (61, 512, 64)}


@pytest.mark.parametrize("name", sorted(GQA) + sorted(MLA))
def test_kv_bytes_per_token(name):
    if name in GQA:
        layers, kv_heads, head_dim, nbytes, caches = GQA[name]
        want = layers * caches * kv_heads * head_dim * nbytes
    else:
        layers, rank, rope = MLA[name]
        want = layers * (rank + rope) * BF16
    assert model_profile(name).kv_bytes_per_token == want


def test_seed_profiles_borrow_the_totals():
    for seed, real in (("seed-switch", "switch-base-128"), ("seed-qwen", "qwen2-57b-a14b")):
        s, r = model_profile(seed), model_profile(real)
        assert (s.dense_bytes_total, s.kv_bytes_per_token) == (r.dense_bytes_total, r.kv_bytes_per_token)


# ---------------------------------------------------------------------------------------------
# Hardware: host CPU figures, the added devices, the existing devices unchanged

# The figures committed results were computed with (docs/profiles.md's table).
UNCHANGED = {
    "rtx3090": (25.0e9, 10e-6, 936e9, 71e12, 24 * 2**30, 5e-6),
    "rtx3090-seed": (28.5e6 / 0.85e-3, 0.0, 936e9, 71e12, 24 * 2**30, 0.0),
    "rtx4090": (25.0e9, 10e-6, 1008e9, 165.2e12, 24 * 2**30, 5e-6),
    "a100-40g-pcie": (25.0e9, 10e-6, 1555e9, 312e12, 40 * 2**30, 5e-6),
    "h100-pcie": (53.0e9, 10e-6, 2.0e12, 756e12, 80 * 2**30, 5e-6),
    "h200": (53.0e9, 10e-6, 4.8e12, 989e12, 141 * 2**30, 5e-6),
    "gh200": (375.0e9, 10e-6, 4.0e12, 989e12, 96 * 2**30, 5e-6),
}
SECTION2 = ("h2d_bytes_per_s", "transfer_latency_s", "mem_bytes_per_s", "flops_per_s", "memory_bytes", "launch_s")


@pytest.mark.parametrize("name", sorted(UNCHANGED))
def test_existing_devices_keep_their_figures(name):
    p = hardware_profile(name)
    for field, want in zip(SECTION2, UNCHANGED[name]):
        assert getattr(p, field) == pytest.approx(want, rel=1e-15), field
    assert (p.layer_overhead_s, p.expert_efficiency, p.dense_efficiency) == (None, None, None)
    assert (p.host_bytes, p.nvme_bytes_per_s) == (None, None)


@pytest.mark.parametrize("name", list_hardware())
def test_every_device_has_host_figures(name):
    p = hardware_profile(name)
    for f in ("cpu_flops_per_s", "cpu_mem_bytes_per_s"):
        assert type(getattr(p, f)) is float and getattr(p, f) > 0
    assert 0 < p.cpu_overhead_s < 1e-3
    # the host's memory is slower than the GPU's, its compute far below the tensor cores'
    assert p.cpu_mem_bytes_per_s < p.mem_bytes_per_s
    assert p.cpu_flops_per_s < p.flops_per_s / 5


# datasheet arithmetic: (memory bus bits, Gbps per pin) of the GDDR cards
GDDR = {"rtx3060": (192, 15), "rtx3080-laptop": (256, 14), "rtx-a5000": (384, 16), "rtx5090": (512, 28)}
# link generation of each added device; PCIe x16 signalling per direction in bytes/s
LINK = {"t4": 3, "rtx3060": 4, "rtx3080-laptop": 4, "rtx-a5000": 4, "l4": 4, "a100-sxm4-80gb": 4,
        "h100-sxm": 5, "rtx5090": 5}
SIGNALLING = {3: 8e9 * 16 * 128 / 130 / 8, 4: 16e9 * 16 * 128 / 130 / 8, 5: 32e9 * 16 * 128 / 130 / 8}
MEMORY_GIB = {"t4": 16, "rtx3060": 12, "rtx3080-laptop": 16, "rtx-a5000": 24, "l4": 24, "a100-sxm4-80gb": 80,
              "h100-sxm": 80, "rtx5090": 32}


@pytest.mark.parametrize("name", sorted(LINK))
def test_added_devices(name):
    p = hardware_profile(name)
    # measured pinned copies run at 75-85% of the link's signalling rate
    assert 0.75 * SIGNALLING[LINK[name]] < p.h2d_bytes_per_s < 0.85 * SIGNALLING[LINK[name]]
    assert p.memory_bytes == MEMORY_GIB[name] * 2**30
    if name in GDDR:
        bits, gbps = GDDR[name]
        assert p.mem_bytes_per_s == gbps * 1e9 * bits / 8
    assert p.transfer_latency_s == 10e-6 and p.launch_s == 5e-6


def test_added_device_flops_from_their_datasheets():
    assert hardware_profile("t4").flops_per_s == 65e12
    assert hardware_profile("l4").flops_per_s == 242e12 / 2  # sparse figure halved
    assert hardware_profile("rtx-a5000").flops_per_s == pytest.approx(222.2e12 / 2)
    assert hardware_profile("rtx5090").flops_per_s == pytest.approx(838.4e12 / 4)  # sparse, fp16 accumulate
    assert hardware_profile("h100-sxm").flops_per_s == hardware_profile("h200").flops_per_s
    # GeForce Ampere: 128 FLOP per tensor core per clock with fp32 accumulate (RTX 3090: 71e12)
    assert hardware_profile("rtx3060").flops_per_s == pytest.approx(112 * 128 * 1.777e9, rel=0.002)


# ---------------------------------------------------------------------------------------------
# Fixed-cost fields


def test_fixed_costs_are_optional_and_round_trip():
    d = hardware_profile("rtx4090").as_dict()
    assert "layer_overhead_s" not in d and "expert_efficiency" not in d
    p = hardware_profile(d | {"name": "slow", "layer_overhead_s": 20e-6, "expert_efficiency": 0.7,
                              "dense_efficiency": 1})
    assert (p.layer_overhead_s, p.expert_efficiency, p.dense_efficiency) == (20e-6, 0.7, 1.0)
    assert type(p.dense_efficiency) is float
    assert hardware_profile(p.as_dict()) == p
    assert hardware_profile(d | {"expert_efficiency": None}) == hardware_profile("rtx4090")


@pytest.mark.parametrize("field, value, words", [
    ("expert_efficiency", 0.0, "must be a fraction in \\(0, 1\\]"),
    ("expert_efficiency", 1.5, "must be a fraction in \\(0, 1\\]"),
    ("dense_efficiency", -0.5, "must be a fraction in \\(0, 1\\]"),
    ("dense_efficiency", float("nan"), "must be finite"),
    ("dense_efficiency", "0.5", "must be a number"),
    ("layer_overhead_s", -1e-6, "must be zero or positive"),
    ("layer_overhead_s", float("inf"), "must be finite"),
])
def test_bad_fixed_cost_named(field, value, words):
    d = hardware_profile("rtx4090").as_dict() | {"name": "card", field: value}
    with pytest.raises(ProfileError, match=f"'card'.*field {field!r} {words}"):
        hardware_profile(d)


def test_fixed_costs_in_a_file(tmp_path):
    text = "".join(f"{k} = {v!r}\n" for k, v in hardware_profile("t4").as_dict().items() if k != "name")
    path = tmp_path / "t4-slow.toml"
    path.write_text("[t4-slow]\n" + text + "layer_overhead_s = 40e-6\nexpert_efficiency = 0.6\n", encoding="utf-8")
    p = hardware_profile(path)
    assert (p.layer_overhead_s, p.expert_efficiency, p.dense_efficiency) == (40e-6, 0.6, None)


# ---------------------------------------------------------------------------------------------
# Integral floats where an integer is expected


def test_integral_floats_in_a_mapping():
    h = hardware_profile(hardware_profile("h100-sxm").as_dict() | {"memory_bytes": 80e9})
    assert type(h.memory_bytes) is int and h.memory_bytes == 80_000_000_000
    m = model_profile(model_profile("seed-qwen").as_dict() | {
        "name": "q", "expert_bytes": 28.5e6, "num_layers": 28.0, "kv_bytes_per_token": np.float64(57344),
        "dense_bytes_per_layer": 0.0,
    })
    assert (m.expert_bytes, m.num_layers, m.kv_bytes_per_token, m.dense_bytes_per_layer) == (28_500_000, 28, 57_344, 0)
    assert all(type(v) is int for v in (m.expert_bytes, m.num_layers, m.kv_bytes_per_token, m.dense_bytes_per_layer))
    lists = model_profile(dict(m.as_dict(), name="l", num_layers=2, expert_bytes=[1e6, 2e6]))
    assert lists.expert_bytes == (1_000_000, 2_000_000)


def test_integral_floats_in_toml(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        "[m]\nnum_layers = 2.0\nnum_experts = 8\ntop_k = 2\nexpert_bytes = 28.5e6\n"
        "dense_bytes_per_layer = 4e6\nexpert_flops_per_token = 57e6\ndense_flops_per_token = 8e6\n"
        "dense_bytes_total = 1e9\n",
        encoding="utf-8",
    )
    m = model_profile(path)
    assert (m.num_layers, m.expert_bytes, m.dense_bytes_per_layer, m.dense_bytes_total) == (2, 28_500_000, 4_000_000, 10**9)


@pytest.mark.parametrize("field, value", [
    ("expert_bytes", 2.5), ("num_layers", 1.5), ("top_k", 1e-3), ("expert_bytes", [1e6, 2.5]),
    ("dense_bytes_total", float("nan")), ("kv_bytes_per_token", -2.0),
])
def test_non_integral_floats_are_still_errors(field, value):
    d = model_profile("mixtral-8x7b").as_dict() | {"name": "bad", field: value}
    if isinstance(value, list):
        d["num_layers"] = len(value)
    with pytest.raises(ProfileError, match=f"'bad'.*field '{'size' if isinstance(value, list) else field}'"):
        model_profile(d)
