"""Derived model profiles: ``NAME[0,8,12]`` (those layers only) and ``NAME[k=K]`` (fewer experts)."""
from __future__ import annotations

import pytest

from fastsim.errors import ProfileError
from fastsim.profiles import model_profile
from fastsim.profiles.derive import derive, derived_name, split_derivation


def test_layers_and_top_k_keep_every_other_figure():
    base = model_profile("mixtral-8x7b")
    sub = model_profile("mixtral-8x7b[0,8,12]")
    assert sub.name == "mixtral-8x7b[0,8,12]" and sub.num_layers == 3
    one = model_profile("mixtral-8x7b[k=1]")
    assert one.name == "mixtral-8x7b[k=1]" and one.top_k == 1 and one.num_layers == base.num_layers
    for p in (sub, one):
        assert p.num_experts == base.num_experts
        assert p.expert_bytes == base.expert_bytes
        assert p.dense_bytes_per_layer == base.dense_bytes_per_layer
        assert p.expert_flops_per_token == base.expert_flops_per_token
        assert p.dense_flops_per_token == base.dense_flops_per_token
        assert p.dense_bytes_total == base.dense_bytes_total


def test_suffixes_compose_in_order():
    both = model_profile("mixtral-8x7b[0,8,12][k=1]")
    assert (both.name, both.num_layers, both.top_k) == ("mixtral-8x7b[0,8,12][k=1]", 3, 1)
    again = model_profile("mixtral-8x7b[k=1][ 4, 5 ]")
    assert (again.num_layers, again.top_k) == (2, 1) and again.name == "mixtral-8x7b[k=1][4,5]"
    # A subset of a subset picks among the first one's layers.
    nested = model_profile("mixtral-8x7b[0,8,12][1,2]")
    assert nested.num_layers == 2
    assert split_derivation("m[0,8][k=6]") == ("m", ["0,8", "k=6"])
    assert derived_name("m", [0, 8], 6) == "m[0,8][k=6]"


def test_derivations_compose_with_quantised_names():
    quantised = model_profile("mixtral-8x7b@w4")
    for name in ("mixtral-8x7b@w4[k=1]", "mixtral-8x7b[k=1]@w4"):
        p = model_profile(name)
        assert p.name == name and p.top_k == 1 and p.expert_bytes == quantised.expert_bytes
    assert model_profile("mixtral-8x7b@w4[0,8]") == derive(quantised, [0, 8])


def test_per_layer_expert_sizes_are_picked(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(
        "[mixed]\nnum_layers = 4\nnum_experts = 8\ntop_k = 2\nexpert_bytes = [10, 20, 30, 20]\n"
        "dense_bytes_per_layer = 5\nexpert_flops_per_token = 40.0\ndense_flops_per_token = 10.0\n"
    )
    picked = model_profile(f"{path}[1,2]")
    assert picked.name == "mixed[1,2]" and picked.expert_bytes == (20, 30)
    assert model_profile(f"{path}[1,3]").expert_bytes == 20  # equal sizes become one
    assert derive(model_profile(path), [0, 3], 1).name == "mixed[0,3][k=1]"


@pytest.mark.parametrize(
    "name, pattern",
    [
        ("mixtral-8x7b[k=3]", r"\[k=3\] must be 1\.\.2 \(the top_k of 'mixtral-8x7b'\)"),
        ("mixtral-8x7b[k=0]", r"\[k=0\] must be 1\.\.2"),
        ("mixtral-8x7b[k=two]", r"\[k=two\] needs an integer K"),
        ("mixtral-8x7b[0,32]", r"layer 32 is out of range: 'mixtral-8x7b' has layers 0\.\.31"),
        ("mixtral-8x7b[3,1]", r"increasing order without repeats; 1 follows 3"),
        ("mixtral-8x7b[2,2]", r"increasing order without repeats; 2 follows 2"),
        ("mixtral-8x7b[a,b]", r"must be comma-separated layer numbers or k=K"),
        ("[k=1]", r"expected NAME\[layers\] or NAME\[k=K\]"),
        ("no-such-model[k=1]", r"unknown model profile 'no-such-model'"),
    ],
)
def test_bad_derived_names(name, pattern):
    with pytest.raises(ProfileError, match=pattern):
        model_profile(name)
