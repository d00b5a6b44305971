"""Quantised experts (SPEC section 7): ``NAME@wB`` from the architecture's matrix shapes.

Each expected size is recomputed here from the published config values models.toml cites
(hidden size, expert intermediate size, number of expert matrices), not from the profile's
figures: ``B`` bits per weight plus an fp16 scale and an fp16 zero per group of 64 weights.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastsim
from fastsim.errors import ProfileError
from fastsim.profiles import hardware_profile, model_profile
from fastsim.profiles.quantise import ALLOWED_BITS, quantised_expert_bytes
from fastsim.timeline.durations import expert_seconds, load_seconds

# name -> (matrices per expert, d_model, d_ff) from each config.json (models.toml cites them)
SHAPES = {
    "mixtral-8x7b": (3, 4096, 14336),  # gate, up, down; hidden_size, intermediate_size
    "qwen1.5-moe-a2.7b": (3, 2048, 1408),  # moe_intermediate_size
    "switch-base-128": (2, 768, 3072),  # wi, wo; d_model, d_ff
    "qwen3-30b-a3b": (3, 2048, 768),
    "deepseek-v3": (3, 7168, 2048),  # fp8 as published; @wB re-quantises from the parameters
}


def expected_bytes(name: str, bits: int, group: int = 64) -> int:
    matrices, d_model, d_ff = SHAPES[name]
    params = matrices * d_model * d_ff
    assert (params * bits) % 8 == 0 and params % group == 0  # every row splits into whole groups
    return params * bits // 8 + (params // group) * (2 + 2)


@pytest.mark.parametrize("bits", ALLOWED_BITS)
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_expert_bytes_from_shapes(name, bits):
    q = model_profile(f"{name}@w{bits}")
    assert q.name == f"{name}@w{bits}"
    assert type(q.expert_bytes) is int
    assert q.expert_bytes == expected_bytes(name, bits)


def test_worked_figures():
    # Mixtral-8x7B: 176_160_768 weights; 4 bits = 88_080_384 bytes, 2_752_512 groups x 4 bytes
    assert model_profile("mixtral-8x7b@w4").expert_bytes == 88_080_384 + 11_010_048 == 99_090_432
    assert model_profile("mixtral-8x7b@w8").expert_bytes == 176_160_768 + 11_010_048
    # Switch: 4_718_592 weights at 3 bits = 1_769_472 bytes, 73_728 groups x 4 bytes
    assert model_profile("switch-base-128@w3").expert_bytes == 1_769_472 + 294_912
    # Qwen1.5-MoE-A2.7B: 8_650_752 weights at 2 bits = 2_162_688 bytes, 135_168 groups x 4
    assert model_profile("qwen1.5-moe-a2.7b@w2").expert_bytes == 2_162_688 + 540_672


def test_group_size_in_the_name():
    q = model_profile("mixtral-8x7b@w4g128")
    assert q.name == "mixtral-8x7b@w4g128"
    assert q.expert_bytes == expected_bytes("mixtral-8x7b", 4, group=128) == 88_080_384 + 5_505_024
    # a group that does not divide the weights: the last group is partial and still has its scale
    assert quantised_expert_bytes(100, 4, 64) == 50 + 2 * 4
    assert quantised_expert_bytes(7, 3, 64) == 3 + 4  # 21 bits round up to 3 bytes


def test_only_the_expert_size_changes():
    base, q = model_profile("qwen3-30b-a3b"), model_profile("qwen3-30b-a3b@w4")
    for f in ("num_layers", "num_experts", "top_k", "dense_bytes_per_layer", "expert_flops_per_token",
              "dense_flops_per_token", "dense_bytes_total", "kv_bytes_per_token"):
        assert getattr(q, f) == getattr(base, f), f
    assert "4 bits" in q.description and base.description in q.description
    assert q != base


def test_load_and_weight_read_follow():
    gpu = hardware_profile("rtx4090")
    q = model_profile("mixtral-8x7b@w4")
    assert load_seconds(q, gpu) == gpu.transfer_latency_s + 99_090_432 / gpu.h2d_bytes_per_s
    assert expert_seconds(q, gpu, 1) == gpu.launch_s + 99_090_432 / gpu.mem_bytes_per_s


def test_a_replay_moves_the_quantised_bytes():
    rng = np.random.default_rng(5)
    experts = np.stack([rng.permutation(8)[:2] for _ in range(6 * 32)]).reshape(6, 32, 2)
    trace = fastsim.Trace.from_arrays(experts, 8)
    full = fastsim.replay(trace, "on-demand", model="mixtral-8x7b", hardware="rtx4090")
    quant = fastsim.replay(trace, "on-demand", model="mixtral-8x7b@w4", hardware="rtx4090")
    assert quant.metrics["misses"] == full.metrics["misses"]
    assert quant.metrics["h2d_bytes"] == quant.metrics["demand_loads"] * 99_090_432
    assert quant.metrics["total_time_s"] < full.metrics["total_time_s"]


def test_a_file_and_a_list_of_sizes(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(
        '["mixed"]\nnum_layers = 2\nnum_experts = 4\ntop_k = 1\nexpert_bytes = [8_000, 9_000]\n'
        "dense_bytes_per_layer = 0\nexpert_flops_per_token = 8_192.0\ndense_flops_per_token = 0.0\n",
        encoding="utf-8",
    )
    q = model_profile(f"{path}@w4")
    # 4_096 weights per expert in every layer: one size after quantising
    assert q.name == "mixed@w4"
    assert q.expert_bytes == 2_048 + 64 * 4
    assert q.layer_bytes() == (2_304, 2_304)


def test_composes_with_a_derived_name():
    q = model_profile("qwen1.5-moe-a2.7b[k=2]@w4")
    assert q.top_k == 2 and q.expert_bytes == expected_bytes("qwen1.5-moe-a2.7b", 4)


@pytest.mark.parametrize("suffix", ["w5", "x4", "w16", "w", "w4g0", "w4g", "4", ""])
def test_bad_suffix_names_the_allowed_ones(suffix):
    with pytest.raises(ProfileError) as exc:
        model_profile(f"mixtral-8x7b@{suffix}")
    msg = str(exc.value)
    assert f"'@{suffix}'" in msg
    assert "@w2, @w3, @w4, @w8" in msg


def test_other_bad_names():
    with pytest.raises(ProfileError, match="quantise a model once"):
        model_profile("mixtral-8x7b@w4@w8")
    with pytest.raises(ProfileError, match="must come before"):
        model_profile("@w4")
    with pytest.raises(ProfileError, match="unknown model profile 'mixtral-9x7b'"):
        model_profile("mixtral-9x7b@w4")
    with pytest.raises(ProfileError, match="unknown hardware profile 'rtx4090@w4'"):
        hardware_profile("rtx4090@w4")  # quantisation is a model's


def test_flops_that_are_not_two_per_weight():
    m = dict(name="odd", num_layers=1, num_experts=2, top_k=1, expert_bytes=10, dense_bytes_per_layer=0,
             expert_flops_per_token=3.0, dense_flops_per_token=0.0)
    from fastsim.profiles.quantise import quantised_model

    with pytest.raises(ProfileError, match="'odd'.*not 2 x a whole number"):
        quantised_model("odd@w4", lambda name: model_profile(m))
