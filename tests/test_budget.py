"""``cache_bytes="auto"``'s budget (SPEC section 7; docs/model.md, "Cache budget"):
``memory_bytes - dense_bytes_total - kv_bytes_per_token * batch * context - reserve``."""
from __future__ import annotations

import pytest

from fastsim.errors import ConfigError
from fastsim.profiles import model_profile
from fastsim.timeline.budget import DEFAULT_RESERVE_BYTES, auto_cache_bytes

GIB = 2**30


def test_default_reserve_is_two_gib():
    assert DEFAULT_RESERVE_BYTES == 2_147_483_648


def test_mixtral_on_an_h100_sxm():
    # 80 GiB - 3_211_272_192 dense bytes - 131_072 B/token x 4 x 2048 tokens - 2 GiB
    want = 80 * GIB - 3_211_272_192 - 131_072 * 4 * 2048 - 2 * GIB
    assert want == 79_466_848_256
    assert auto_cache_bytes("mixtral-8x7b", "h100-sxm", 4, 2048) == want
    # how many bf16 experts that holds, and @w4 ones
    assert want // 352_321_536 == 225
    assert auto_cache_bytes("mixtral-8x7b@w4", "h100-sxm", 4, 2048) == want  # dense part unchanged


def test_explicit_reserve_and_profile_objects():
    m = model_profile("qwen3-30b-a3b")
    got = auto_cache_bytes(m, "rtx4090", 1, 0, reserve_bytes=0)
    assert got == 24 * GIB - 3_082_186_752
    assert auto_cache_bytes(m, "rtx4090", 2.0, 100.0, reserve_bytes=1e9) == 24 * GIB - 3_082_186_752 - 98_304 * 200 - 10**9


def test_no_room_names_every_figure():
    # DeepSeek-V3's 19 GB of dense weights do not fit a 12 GiB card
    with pytest.raises(ConfigError) as exc:
        auto_cache_bytes("deepseek-v3", "rtx3060", 1, 1024)
    msg = str(exc.value)
    for words in ("memory_bytes 12,884,901,888", "'rtx3060'", "dense_bytes_total 19,082,195,296", "'deepseek-v3'",
                  "kv_bytes_per_token 70,272", "batch 1", "context_tokens 1,024", "reserve_bytes 2,147,483,648"):
        assert words in msg, words


def test_exactly_zero_is_no_room():
    m = model_profile("olmoe-1b-7b")
    reserve = 16 * GIB - m.dense_bytes_total - m.kv_bytes_per_token * 8 * 10
    assert auto_cache_bytes(m, "t4", 8, 10, reserve_bytes=reserve - 1) == 1
    with pytest.raises(ConfigError, match="= 0 bytes"):
        auto_cache_bytes(m, "t4", 8, 10, reserve_bytes=reserve)


@pytest.mark.parametrize("missing", ["dense_bytes_total", "kv_bytes_per_token"])
def test_a_profile_without_the_figures(missing):
    d = model_profile("mixtral-8x7b").as_dict()
    del d[missing]
    d["name"] = "bare"
    with pytest.raises(ConfigError, match=f"needs '{missing}' in model profile 'bare'"):
        auto_cache_bytes(d, "h100-sxm", 1, 128)


@pytest.mark.parametrize("args, words", [
    ((0, 128, None), "batch_size must be at least 1"),
    ((1, -1, None), "context_tokens must be at least 0"),
    ((1, 128, -5), "reserve_bytes must be at least 0"),
    ((1, 12.5, None), "context_tokens must be an integer"),
    ((True, 128, None), "batch_size must be an integer"),
    ((1, "long", None), "context_tokens must be an integer"),
    ((1, float("inf"), None), "context_tokens must be an integer"),
])
def test_bad_arguments(args, words):
    batch, context, reserve = args
    with pytest.raises(ConfigError, match=words):
        auto_cache_bytes("mixtral-8x7b", "h100-sxm", batch, context, reserve)
