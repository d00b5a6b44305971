"""Profiles: built-ins against their published configs, the four input forms, every error.

The expected byte and FLOP figures are recomputed here from each model's published config.json
values (hidden size, expert intermediate size, heads, dtype), not copied from the TOML files.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fastsim.errors import FastsimError, ProfileError
from fastsim.profiles import (
    HardwareProfile,
    ModelProfile,
    hardware_profile,
    list_hardware,
    list_models,
    model_profile,
)

MODEL_FIELDS = (
    "name", "num_layers", "num_experts", "top_k", "expert_bytes", "dense_bytes_per_layer",
    "expert_flops_per_token", "dense_flops_per_token",
)
HARDWARE_FIELDS = (
    "name", "h2d_bytes_per_s", "transfer_latency_s", "mem_bytes_per_s", "flops_per_s",
    "memory_bytes", "launch_s",
)

GIB = 2**30
BF16 = 2

# ---------------------------------------------------------------------------------------------
# Published config.json values (model cards) and the arithmetic a reader would do with them.


def swiglu(hidden, inter):
    """Parameters of a gate/up/down expert."""
    return 3 * hidden * inter


def gqa_attention(hidden, heads, kv_heads, head_dim, qkv_bias=False):
    """Parameters of q, k, v, o projections (plus q/k/v biases when present)."""
    q = hidden * heads * head_dim
    kv = 2 * hidden * kv_heads * head_dim
    o = heads * head_dim * hidden
    bias = heads * head_dim + 2 * kv_heads * head_dim if qkv_bias else 0
    return q + kv + o, bias


def blocks128(rows, cols):
    """Float32 scales of an fp8 matrix quantised in 128 x 128 blocks."""
    return math.ceil(rows / 128) * math.ceil(cols / 128)


def _qwen_like(hidden, moe_inter, experts, heads, kv_heads, head_dim, qkv_bias, shared_inter,
               extra_norms):
    """(expert params, dense matrix params, dense other params) of a Qwen/Mixtral/OLMoE layer."""
    matrices, bias = gqa_attention(hidden, heads, kv_heads, head_dim, qkv_bias)
    matrices += hidden * experts  # router
    if shared_inter:
        matrices += swiglu(hidden, shared_inter) + hidden  # shared expert and its sigmoid gate
    other = bias + 2 * hidden + extra_norms
    return swiglu(hidden, moe_inter), matrices, other


def expected_models():
    """name -> dict of the figures each real model's config implies."""
    out = {}

    # google/switch-base-128: d_model 768, d_ff 3072, 12 heads x d_kv 64, 128 experts, float32.
    d, ff, e = 768, 3072, 128
    attn = 4 * d * (12 * 64)
    enc_pair = 2 * attn + 2 * d * ff + d * e  # two self-attentions, one dense FFN, one router
    dec_pair = enc_pair + 2 * 2 * d * (12 * 64)  # plus cross-attention q and o in both blocks
    enc_norms, dec_norms = 4 * d, 6 * d
    switch_expert = 2 * d * ff
    out["switch-base-128"] = dict(
        layers=12, experts=128, top_k=1, expert_bytes=switch_expert * 4,
        expert_flops=2 * switch_expert,
        dense_bytes=(enc_pair + enc_norms + dec_pair + dec_norms) * 4 // 2,
        dense_flops=2 * (enc_pair + dec_pair) / 2,
    )
    out["switch-base-128-decoder"] = dict(
        layers=6, experts=128, top_k=1, expert_bytes=switch_expert * 4,
        expert_flops=2 * switch_expert, dense_bytes=(dec_pair + dec_norms) * 4,
        dense_flops=2 * dec_pair,
    )

    def qwen_like(name, layers, experts, top_k, **shape):
        ex, mat, other = _qwen_like(experts=experts, **shape)
        out[name] = dict(
            layers=layers, experts=experts, top_k=top_k, expert_bytes=ex * BF16,
            expert_flops=2 * ex, dense_bytes=(mat + other) * BF16, dense_flops=2 * mat,
        )

    qwen_like("qwen2-57b-a14b", 28, 64, 8, hidden=3584, moe_inter=2560, heads=28, kv_heads=4,
              head_dim=128, qkv_bias=True, shared_inter=20480, extra_norms=0)
    qwen_like("qwen1.5-moe-a2.7b", 24, 60, 4, hidden=2048, moe_inter=1408, heads=16,
              kv_heads=16, head_dim=128, qkv_bias=True, shared_inter=5632, extra_norms=0)
    qwen_like("qwen3-30b-a3b", 48, 128, 8, hidden=2048, moe_inter=768, heads=32, kv_heads=4,
              head_dim=128, qkv_bias=False, shared_inter=0, extra_norms=2 * 128)
    qwen_like("mixtral-8x7b", 32, 8, 2, hidden=4096, moe_inter=14336, heads=32, kv_heads=8,
              head_dim=128, qkv_bias=False, shared_inter=0, extra_norms=0)
    qwen_like("olmoe-1b-7b", 16, 64, 8, hidden=2048, moe_inter=1024, heads=16, kv_heads=16,
              head_dim=128, qkv_bias=False, shared_inter=0, extra_norms=2048 + 2048)

    # deepseek-ai/DeepSeek-V2-Lite: MLA without q compression, 2 shared experts, bf16.
    h, heads, kv_rank, nope, rope, vdim = 2048, 16, 512, 128, 64, 128
    mla = (h * heads * (nope + rope) + h * (kv_rank + rope) + kv_rank * heads * (nope + vdim)
           + heads * vdim * h)
    ex = swiglu(h, 1408)
    mat = mla + 2 * swiglu(h, 1408) + h * 64
    out["deepseek-v2-lite"] = dict(
        layers=26, experts=64, top_k=6, expert_bytes=ex * BF16, expert_flops=2 * ex,
        dense_bytes=(mat + kv_rank + 2 * h) * BF16, dense_flops=2 * mat,
    )

    # deepseek-ai/DeepSeek-V3: fp8 e4m3 linear weights, float32 scale per 128 x 128 block.
    h, inter, heads, q_rank, kv_rank = 7168, 2048, 128, 1536, 512
    fp8_shapes = [  # (out, in) of every fp8 matrix of the dense part
        (q_rank, h), (heads * (nope + rope), q_rank), (kv_rank + rope, h),
        (heads * (nope + vdim), kv_rank), (h, heads * vdim),
        (inter, h), (inter, h), (h, inter),  # shared expert
    ]
    expert_shapes = [(inter, h), (inter, h), (h, inter)]
    ex = sum(r * c for r, c in expert_shapes)
    fp8 = sum(r * c for r, c in fp8_shapes)
    router = 256 * h
    out["deepseek-v3"] = dict(
        layers=58, experts=256, top_k=8,
        expert_bytes=ex + 4 * sum(blocks128(r, c) for r, c in expert_shapes),
        expert_flops=2 * ex,
        dense_bytes=(fp8 + 4 * sum(blocks128(r, c) for r, c in fp8_shapes)
                     + BF16 * (router + 2 * h + q_rank + kv_rank) + 4 * 256),
        dense_flops=2 * (fp8 + router),
    )

    # openai/gpt-oss-20b: MXFP4 experts (4-bit values, one byte scale per 32), bf16 biases.
    h, inter, heads, kv_heads, hd = 2880, 2880, 64, 8, 64
    ex = h * 2 * inter + inter * h
    mat, bias = gqa_attention(h, heads, kv_heads, hd, qkv_bias=True)
    other = bias + h + heads + 32 + 2 * h  # o bias, sinks, router bias, norms
    out["gpt-oss-20b"] = dict(
        layers=24, experts=32, top_k=4,
        expert_bytes=ex * 4.25 / 8 + (2 * inter + h) * BF16, expert_flops=2 * ex,
        dense_bytes=(mat + h * 32 + other) * BF16, dense_flops=2 * (mat + h * 32),
    )
    return out


EXPECTED = expected_models()

# Published total parameter counts and what the per-layer figures leave out (embeddings, head,
# dense first layers): an independent check that the config values above are the right ones.
PUBLISHED_TOTALS = {
    # name: (total params, params outside the MoE layers)
    "qwen2-57b-a14b": (57.4e9, 2 * 151936 * 3584),
    "qwen1.5-moe-a2.7b": (14.3e9, 2 * 151936 * 2048),
    "qwen3-30b-a3b": (30.5e9, 2 * 151936 * 2048),
    "mixtral-8x7b": (46.7e9, 2 * 32000 * 4096),
    "olmoe-1b-7b": (6.9e9, 2 * 50304 * 2048),
    "deepseek-v2-lite": (15.7e9, 2 * 102400 * 2048 + 3 * 2048 * 10944),
}


# ---------------------------------------------------------------------------------------------
# Built-ins


def test_builtin_names_sorted_and_complete():
    assert list_models() == sorted(list_models())
    assert list_hardware() == sorted(list_hardware())
    assert set(list_models()) == set(EXPECTED) | {"seed-switch", "seed-qwen"}
    assert set(list_hardware()) == {
        "rtx3090", "rtx3090-seed", "rtx4090", "a100-40g-pcie", "h100-pcie", "h200", "gh200",
        "t4", "rtx3060", "rtx3080-laptop", "rtx-a5000", "l4", "a100-sxm4-80gb", "h100-sxm",
        "rtx5090",
    }


@pytest.mark.parametrize("name", list_models())
def test_every_builtin_model_loads(name):
    p = model_profile(name)
    assert isinstance(p, ModelProfile)
    assert p.name == name
    for f in ("num_layers", "num_experts", "top_k", "expert_bytes", "dense_bytes_per_layer"):
        assert type(getattr(p, f)) is int and getattr(p, f) > 0
    for f in ("expert_flops_per_token", "dense_flops_per_token"):
        assert type(getattr(p, f)) is float and getattr(p, f) > 0
    assert 1 <= p.top_k <= p.num_experts
    assert p.description


@pytest.mark.parametrize("name", list_hardware())
def test_every_builtin_hardware_loads(name):
    p = hardware_profile(name)
    assert isinstance(p, HardwareProfile)
    assert p.name == name
    assert type(p.memory_bytes) is int and p.memory_bytes > 0
    for f in ("h2d_bytes_per_s", "mem_bytes_per_s", "flops_per_s"):
        assert type(getattr(p, f)) is float and getattr(p, f) > 0
    assert p.transfer_latency_s >= 0 and p.launch_s >= 0
    # The host link is always slower than device memory.
    assert p.h2d_bytes_per_s < p.mem_bytes_per_s
    assert p.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_figures_follow_from_published_config(name):
    p = model_profile(name)
    want = EXPECTED[name]
    assert (p.num_layers, p.num_experts, p.top_k) == (want["layers"], want["experts"],
                                                       want["top_k"])
    assert p.expert_bytes == want["expert_bytes"]
    assert p.expert_flops_per_token == want["expert_flops"]
    assert p.dense_bytes_per_layer == want["dense_bytes"]
    assert p.dense_flops_per_token == want["dense_flops"]


def test_switch_expert_is_two_float32_matrices():
    assert model_profile("switch-base-128").expert_bytes == 2 * 768 * 3072 * 4 == 18_874_368


@pytest.mark.parametrize("name", sorted(PUBLISHED_TOTALS))
def test_bf16_models_add_up_to_published_parameter_count(name):
    p = model_profile(name)
    total, outside = PUBLISHED_TOTALS[name]
    per_layer = (p.num_experts * p.expert_bytes + p.dense_bytes_per_layer) / BF16
    assert p.num_layers * per_layer + outside == pytest.approx(total, rel=0.01)


def test_seed_profiles_keep_seed_sizes_and_borrow_compute():
    for seed, real, size in (("seed-switch", "switch-base-128", 28_000_000),
                             ("seed-qwen", "qwen2-57b-a14b", 28_500_000)):
        s, r = model_profile(seed), model_profile(real)
        assert s.expert_bytes == size
        assert (s.num_layers, s.num_experts, s.top_k) == (r.num_layers, r.num_experts, r.top_k)
        assert s.dense_bytes_per_layer == r.dense_bytes_per_layer
        assert s.expert_flops_per_token == r.expert_flops_per_token
        assert s.dense_flops_per_token == r.dense_flops_per_token
    assert model_profile("seed-switch").num_layers == 12
    assert model_profile("seed-qwen").num_layers == 28


def test_rtx3090_seed_loads_a_seed_expert_in_0_85_ms():
    hw = hardware_profile("rtx3090-seed")
    expert = model_profile("seed-qwen").expert_bytes
    load = hw.transfer_latency_s + expert / hw.h2d_bytes_per_s  # SPEC section 2
    assert abs(load - 0.85e-3) < 1e-9
    assert hw.transfer_latency_s == 0.0 and hw.launch_s == 0.0
    real = hardware_profile("rtx3090")
    for f in ("mem_bytes_per_s", "flops_per_s", "memory_bytes"):
        assert getattr(hw, f) == getattr(real, f)
    # The seed's rate is above what PCIe 4.0 x16 signals (16 GT/s x 16 lanes, 128b/130b).
    assert hw.h2d_bytes_per_s > 16e9 * 16 * 128 / 130 / 8


def test_rtx3090_figures():
    hw = hardware_profile("rtx3090")
    assert hw.h2d_bytes_per_s == 25e9
    assert hw.mem_bytes_per_s == 19.5e9 * 384 / 8  # GDDR6X 19.5 Gbps on a 384-bit bus
    assert hw.memory_bytes == 24 * GIB
    assert hw.flops_per_s == 71e12


def test_pcie_cards_are_below_their_link_rate():
    gen4 = 16e9 * 16 * 128 / 130 / 8
    for name in ("rtx3090", "rtx4090", "a100-40g-pcie"):
        assert 0.7 * gen4 < hardware_profile(name).h2d_bytes_per_s < gen4
    for name in ("h100-pcie", "h200"):
        assert 0.7 * 2 * gen4 < hardware_profile(name).h2d_bytes_per_s < 2 * gen4
    # NVLink-C2C: 450 GB/s per direction.
    assert 2 * 2 * gen4 < hardware_profile("gh200").h2d_bytes_per_s < 450e9


# ---------------------------------------------------------------------------------------------
# Input forms


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    return repr(v)


def write_profile(path: Path, table: str, fields: dict) -> Path:
    lines = [f"[{json.dumps(table)}]"] + [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fields(profile):
    d = profile.as_dict()
    del d["name"]
    return d


@pytest.mark.parametrize("name", ["switch-base-128", "qwen1.5-moe-a2.7b", "deepseek-v3"])
def test_model_inputs_agree(tmp_path, name):
    p = model_profile(name)
    path = write_profile(tmp_path / "m.toml", name, _fields(p))
    assert model_profile(path) == p  # os.PathLike
    assert model_profile(str(path)) == p  # str path
    assert model_profile(p.as_dict()) == p  # mapping
    assert model_profile(p) is p  # object passes through
    assert model_profile(dataclasses.asdict(p)).description == p.description
    described = write_profile(tmp_path / "d.toml", name, _fields(p) | {"description": "mine"})
    assert model_profile(described).description == "mine"


@pytest.mark.parametrize("name", ["rtx3090", "rtx3090-seed", "gh200"])
def test_hardware_inputs_agree(tmp_path, name):
    p = hardware_profile(name)
    path = write_profile(tmp_path / "h.toml", name, _fields(p))
    assert hardware_profile(path) == p
    assert hardware_profile(str(path)) == p
    assert hardware_profile(p.as_dict()) == p
    assert hardware_profile(p) is p


def test_user_file_without_toml_suffix_and_with_matching_name_field(tmp_path, monkeypatch):
    fields = _fields(model_profile("olmoe-1b-7b")) | {"name": "mine"}
    path = write_profile(tmp_path / "mine-profile", "mine", fields)
    monkeypatch.chdir(tmp_path)
    p = model_profile("mine-profile")  # an existing file in the working directory
    assert p.name == "mine" and p.expert_bytes == 12_582_912


def test_as_dict_is_plain_json_of_the_spec_fields():
    m = model_profile("mixtral-8x7b").as_dict()
    assert tuple(m) == MODEL_FIELDS + ("dense_bytes_total", "kv_bytes_per_token")
    assert json.loads(json.dumps(m)) == m
    h = hardware_profile("h200").as_dict()
    assert tuple(h) == HARDWARE_FIELDS + ("cpu_flops_per_s", "cpu_mem_bytes_per_s", "cpu_overhead_s")
    assert json.loads(json.dumps(h)) == h


def test_profiles_are_frozen():
    p = model_profile("qwen3-30b-a3b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.top_k = 2  # type: ignore[misc]


def test_mapping_ints_from_numpy_and_float_fields_from_ints():
    np = pytest.importorskip("numpy")
    d = hardware_profile("rtx3090").as_dict() | {"memory_bytes": np.int64(1 << 30),
                                                 "flops_per_s": 10**12}
    p = hardware_profile(d)
    assert type(p.memory_bytes) is int and p.memory_bytes == 1 << 30
    assert type(p.flops_per_s) is float and p.flops_per_s == 1e12


_pos_int = st.integers(min_value=1, max_value=2**62)
_pos_float = st.floats(min_value=1e-12, max_value=1e18, allow_nan=False)


@given(
    layers=_pos_int, experts=st.integers(1, 4096), k_frac=st.floats(0, 1),
    eb=_pos_int, db=_pos_int, ef=_pos_float, df=_pos_float,
)
def test_any_valid_model_mapping_round_trips(layers, experts, k_frac, eb, db, ef, df):
    top_k = 1 + int(k_frac * (experts - 1))
    d = dict(name="x", num_layers=layers, num_experts=experts, top_k=top_k, expert_bytes=eb,
             dense_bytes_per_layer=db, expert_flops_per_token=ef, dense_flops_per_token=df)
    p = model_profile(d)
    assert p.as_dict() == d
    assert model_profile(p.as_dict()) == p


@given(field=st.sampled_from(MODEL_FIELDS[1:]), value=st.one_of(
    st.integers(max_value=0), st.floats(max_value=0.0, allow_nan=False),
    st.text(max_size=3), st.booleans(), st.none(),
))
def test_any_bad_model_value_names_its_field(field, value):
    # a model may have no dense weights or work per layer: zero is valid there
    assume(not (field in ("dense_bytes_per_layer", "dense_flops_per_token") and value == 0
                and not isinstance(value, bool)))
    d = model_profile("seed-switch").as_dict() | {field: value}
    with pytest.raises(ProfileError, match=repr(field)):
        model_profile(d)


# ---------------------------------------------------------------------------------------------
# Errors


def test_profile_error_is_a_fastsim_value_error():
    assert issubclass(ProfileError, FastsimError) and issubclass(ProfileError, ValueError)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ProfileError) as exc:
        model_profile("switch-base-256")
    msg = str(exc.value)
    assert "'switch-base-256'" in msg
    assert all(n in msg for n in list_models())
    with pytest.raises(ProfileError) as exc:
        hardware_profile("rtx9090")
    assert all(n in str(exc.value) for n in list_hardware())


def test_a_model_name_is_not_a_hardware_name():
    with pytest.raises(ProfileError, match="unknown hardware profile 'rtx3090x'"):
        hardware_profile("rtx3090x")
    with pytest.raises(ProfileError, match="unknown hardware profile 'mixtral-8x7b'"):
        hardware_profile("mixtral-8x7b")


@pytest.mark.parametrize("field", MODEL_FIELDS[1:])
def test_missing_model_field_named_with_file(tmp_path, field):
    fields = _fields(model_profile("qwen2-57b-a14b"))
    del fields[field]
    path = write_profile(tmp_path / "short.toml", "short", fields)
    with pytest.raises(ProfileError) as exc:
        model_profile(path)
    msg = str(exc.value)
    assert f"missing field {field!r}" in msg and "short.toml" in msg and "'short'" in msg


@pytest.mark.parametrize("field", HARDWARE_FIELDS[1:])
def test_missing_hardware_field_named_in_mapping(field):
    d = hardware_profile("h100-pcie").as_dict()
    del d[field]
    with pytest.raises(ProfileError, match=f"'h100-pcie'.*missing field {field!r}"):
        hardware_profile(d)


def test_mapping_without_name():
    d = model_profile("seed-qwen").as_dict()
    del d["name"]
    with pytest.raises(ProfileError, match="missing field 'name'"):
        model_profile(d)


@pytest.mark.parametrize("field, value, words", [
    ("expert_bytes", 2.5, "must be an integer"),
    ("expert_bytes", float("inf"), "must be an integer"),
    ("expert_bytes", "28MB", "must be an integer"),
    ("num_layers", True, "must be an integer"),
    ("top_k", 0, "must be positive"),
    ("num_experts", -4, "must be positive"),
    ("expert_flops_per_token", "2e9", "must be a number"),
    ("dense_flops_per_token", -1.0, "must be zero or positive"),
    ("dense_flops_per_token", float("inf"), "must be finite"),
    ("expert_flops_per_token", float("nan"), "must be finite"),
])
def test_bad_model_value_named_with_file(tmp_path, field, value, words):
    fields = _fields(model_profile("seed-switch")) | {field: value}
    path = write_profile(tmp_path / "bad.toml", "bad", fields)
    with pytest.raises(ProfileError) as exc:
        model_profile(path)
    msg = str(exc.value)
    assert f"field {field!r} {words}" in msg and "bad.toml" in msg


@pytest.mark.parametrize("field, value, words", [
    ("h2d_bytes_per_s", 0, "must be positive"),
    ("mem_bytes_per_s", -1.0, "must be positive"),
    ("flops_per_s", "fast", "must be a number"),
    ("memory_bytes", 24.5, "must be an integer"),
    ("memory_bytes", 80e9 + 0.5, "must be an integer"),
    ("memory_bytes", 0, "must be positive"),
    ("transfer_latency_s", -1e-6, "must be zero or positive"),
    ("launch_s", -5e-6, "must be zero or positive"),
    ("launch_s", None, "must be a number"),
])
def test_bad_hardware_value_named(field, value, words):
    d = hardware_profile("rtx4090").as_dict() | {"name": "card", field: value}
    with pytest.raises(ProfileError, match=f"'card'.*field {field!r} {words}"):
        hardware_profile(d)


def test_latency_and_launch_may_be_zero():
    d = hardware_profile("rtx4090").as_dict() | {"transfer_latency_s": 0, "launch_s": 0.0}
    p = hardware_profile(d)
    assert p.transfer_latency_s == 0.0 and p.launch_s == 0.0


def test_top_k_above_num_experts():
    d = model_profile("mixtral-8x7b").as_dict() | {"top_k": 9}
    with pytest.raises(ProfileError, match="'top_k' \\(9\\) exceeds field 'num_experts' \\(8\\)"):
        model_profile(d)


def test_unknown_field_is_named():
    d = hardware_profile("h200").as_dict() | {"h2d_bytes_per_sec": 1e9}
    with pytest.raises(ProfileError, match="unknown field 'h2d_bytes_per_sec'"):
        hardware_profile(d)


def test_description_must_be_text():
    d = hardware_profile("h200").as_dict() | {"description": 3}
    with pytest.raises(ProfileError, match="'description' must be a string"):
        hardware_profile(d)


def test_name_field_disagreeing_with_table(tmp_path):
    fields = _fields(hardware_profile("gh200")) | {"name": "other"}
    path = write_profile(tmp_path / "gh.toml", "gh", fields)
    with pytest.raises(ProfileError, match="gh.toml.*'name' is 'other' but the table is \\[gh\\]"):
        hardware_profile(path)


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[x]\nnum_layers = = 3\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="broken.toml.*malformed TOML"):
        model_profile(path)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ProfileError, match="absent.toml.*no such file"):
        model_profile(str(path))
    with pytest.raises(ProfileError, match="absent.toml.*no such file"):
        hardware_profile(path)


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[x]\ndescription = \"caf\xe9\"\n")
    with pytest.raises(ProfileError, match="latin1.toml.*cannot read"):
        model_profile(path)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ProfileError, match="folder.toml.*cannot read"):
        model_profile(folder)


def test_file_must_hold_exactly_one_table(tmp_path):
    a = _fields(model_profile("seed-switch"))
    path = tmp_path / "two.toml"
    write_profile(tmp_path / "one.toml", "a", a)
    text = (tmp_path / "one.toml").read_text()
    path.write_text(text + text.replace('["a"]', '["b"]'), encoding="utf-8")
    with pytest.raises(ProfileError, match="two.toml.*exactly one profile table, found 2"):
        model_profile(path)
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="empty.toml.*found 0"):
        model_profile(empty)


def test_fields_outside_a_table(tmp_path):
    path = tmp_path / "flat.toml"
    path.write_text("name = \"flat\"\nnum_layers = 3\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="flat.toml.*'name' is not a table"):
        model_profile(path)


def test_wrong_kind_of_input():
    with pytest.raises(ProfileError, match="got int"):
        model_profile(12)
    with pytest.raises(ProfileError, match="expected a model profile, got the HardwareProfile"):
        model_profile(hardware_profile("rtx3090"))
    with pytest.raises(ProfileError, match="expected a hardware profile, got the ModelProfile"):
        hardware_profile(model_profile("seed-switch"))
