"""Routing capture from transformers MoE models (the ``fastsim[capture]`` extra).

Every check compares the captured experts with a selection recomputed here, independently of the
hooks: the full sequence (prompt plus fed generated tokens) runs again without a KV cache with
``output_router_logits=True``, and the family's routing rule is applied to those logits.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="capture tests need the fastsim[capture] extra (torch)")
transformers = pytest.importorskip(
    "transformers", reason="capture tests need the fastsim[capture] extra (transformers)"
)

from fastsim.capture import capture_generation, capture_routing, tiny_model  # noqa: E402
from fastsim.cli.main import main  # noqa: E402
from fastsim.errors import FastsimError  # noqa: E402
from fastsim.trace import read_trace  # noqa: E402

PROMPTS = [[5, 17, 42, 9, 77, 31], [64, 12, 99]]  # lengths differ: the second is left-padded
STEPS = 5


def _select(name, logits, model, layer):
    """Reference routing of one layer: ``(ids, weights)``, best first, from raw logits ``(N, E)``."""
    cfg = model.config
    k = cfg.num_experts_per_tok
    if name == "tiny-gpt-oss":
        top, ids = torch.topk(logits, k, dim=-1)
        return ids, torch.softmax(top, dim=-1)
    if name == "tiny-deepseek-v3":
        router = [m for m in model.modules() if type(m).__name__ == "DeepseekV3TopkRouter"][layer]
        scores = logits.float().sigmoid()
        choice = scores + router.e_score_correction_bias
        groups = choice.view(-1, cfg.n_group, choice.shape[-1] // cfg.n_group)
        group_score = groups.topk(2, dim=-1).values.sum(-1)
        keep = torch.zeros_like(group_score).scatter_(1, group_score.topk(cfg.topk_group, dim=-1).indices, 1)
        choice = choice.masked_fill(~keep.repeat_interleave(groups.shape[-1], dim=1).bool(), float("-inf"))
        ids = choice.topk(k, dim=-1).indices
        weights = scores.gather(1, ids)
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20) * cfg.routed_scaling_factor
        order = weights.argsort(dim=-1, descending=True, stable=True)
        return ids.gather(1, order), weights.gather(1, order)
    probs = torch.softmax(logits.float(), dim=-1)
    weights, ids = torch.topk(probs, k, dim=-1)
    if name == "tiny-mixtral" or getattr(cfg, "norm_topk_prob", False):
        weights = weights / weights.sum(-1, keepdim=True)
    return ids, weights


def _router_logits(model, ids, mask, positions):
    """Raw router logits of one uncached forward, per MoE layer ``(N, E)``, from each router's
    input and weights (independent of what the router returns)."""
    routers = [m for m in model.modules() if type(m).__name__.endswith(("TopKRouter", "TopkRouter"))]
    inputs = []
    handles = [r.register_forward_pre_hook(lambda mod, args: inputs.append(args[0])) for r in routers]
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    assert len(inputs) == len(routers)
    out = []
    with torch.no_grad():
        for router, hidden in zip(routers, inputs):
            hidden = hidden.reshape(-1, router.weight.shape[-1]).to(router.weight.dtype)
            out.append(torch.nn.functional.linear(hidden, router.weight, getattr(router, "bias", None)))
    return out


def _reference_decoder_only(name, model, result):
    """Expected ``(ids, weights)`` per sequence at every real position of prompt + fed tokens."""
    width = max(len(p) for p in PROMPTS) + STEPS - 1
    ids = torch.zeros((len(PROMPTS), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, (prompt, gen) in enumerate(zip(PROMPTS, result.tokens)):
        row = list(prompt) + gen[:-1].tolist()
        ids[b, width - len(row) :] = torch.tensor(row)
        mask[b, width - len(row) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = _router_logits(model, ids, mask, positions)
    per_layer = [_select(name, lg, model, l) for l, lg in enumerate(logits)]
    expected = []
    for b, prompt in enumerate(PROMPTS):
        real = width - (len(prompt) + STEPS - 1)
        e = np.stack([i.view(len(PROMPTS), width, -1)[b, real:].numpy() for i, _ in per_layer], axis=1)
        w = np.stack([w.view(len(PROMPTS), width, -1)[b, real:].numpy() for _, w in per_layer], axis=1)
        expected.append((e, w))
    return expected


DECODER_ONLY = ["tiny-mixtral", "tiny-qwen2-moe", "tiny-olmoe", "tiny-qwen3-moe", "tiny-deepseek-v3", "tiny-gpt-oss"]


@pytest.mark.parametrize("name", DECODER_ONLY)
def test_decoder_only_capture_matches_router_selection(name):
    model = tiny_model(name, seed=1).double()
    result = capture_generation(model, PROMPTS, STEPS, include_prompt=True, ignore_eos=True)
    trace = result.trace
    moe_layers = len(result.router_names)
    assert trace.num_layers == moe_layers == len(_reference_decoder_only(name, model, result)[0][0][0])
    assert trace.sequence_lengths.tolist() == [len(p) + STEPS - 1 for p in PROMPTS]
    assert trace.prompt_tokens.tolist() == [len(p) for p in PROMPTS]
    assert [len(t) for t in result.tokens] == [STEPS, STEPS]
    for b, (exp_ids, exp_w) in enumerate(_reference_decoder_only(name, model, result)):
        np.testing.assert_array_equal(trace.sequence(b), exp_ids)
        off = trace.offsets
        np.testing.assert_allclose(trace.scores[off[b] : off[b + 1]], exp_w, rtol=1e-5, atol=1e-6)
    assert trace.metadata["capture.model_type"] == model.config.model_type
    assert f'"num_hidden_layers":{model.config.num_hidden_layers}' in trace.metadata["capture.hf_config"]

    # Without the prompt: one row per generated token, the last rows of the full capture.
    decode = capture_routing(model, PROMPTS, STEPS, ignore_eos=True)
    assert decode.sequence_lengths.tolist() == [STEPS, STEPS]
    assert decode.prompt_tokens is None
    for b in range(len(PROMPTS)):
        np.testing.assert_array_equal(decode.sequence(b), trace.sequence(b)[-STEPS:])


def test_explicit_mask_and_eos_shorten_sequences():
    model = tiny_model("tiny-mixtral", seed=2).double()
    first = capture_generation(model, PROMPTS, STEPS, ignore_eos=True)
    stop = int(first.tokens[0][1])  # sequence 0's second token becomes the EOS
    expected_len = []
    for gen in first.tokens:
        hits = np.flatnonzero(gen == stop)
        expected_len.append(int(hits[0]) + 1 if hits.size else STEPS)
    ids = torch.zeros((2, 6), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(PROMPTS):
        ids[b, 6 - len(p) :] = torch.tensor(p)
        mask[b, 6 - len(p) :] = 1
    second = capture_generation(model, ids, STEPS, attention_mask=mask, eos_token_id=stop)
    assert second.trace.sequence_lengths.tolist() == expected_len
    assert expected_len[0] == 2
    for b in range(2):
        np.testing.assert_array_equal(second.trace.sequence(b), first.trace.sequence(b)[: expected_len[b]])
        assert second.tokens[b].tolist() == first.tokens[b][: expected_len[b]].tolist()


def _switch_reference(model, prompts, decoder_prefix, generated):
    """Decoder router logits of the uncached run over prefix + fed tokens, shape (B, T, L, E)."""
    ids = torch.zeros((len(prompts), max(map(len, prompts))), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, : len(p)] = torch.tensor(p)
        mask[b, : len(p)] = 1
    dec = torch.tensor([list(decoder_prefix) + g[:-1].tolist() for g in generated])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, output_router_logits=True)
    return torch.stack(list(out.decoder_router_logits), dim=2), ids, mask


def test_switch_decoder_layers_match_router():
    model = tiny_model("tiny-switch", seed=3)
    # Switch pads on the right: the encoder sees the mask; the decoder has no padding.
    ids, mask = _switch_reference(model, PROMPTS, [0], [np.zeros(1, dtype=np.int64)] * 2)[1:]
    result = capture_generation(model, ids, STEPS, attention_mask=mask, ignore_eos=True)
    trace = result.trace
    assert result.router_names == ["decoder.block.1.layer.2.mlp.router", "decoder.block.3.layer.2.mlp.router"]
    assert trace.top_k == 1 and trace.num_layers == 2 and trace.num_experts == 8
    logits, _, _ = _switch_reference(model, PROMPTS, [0], result.tokens)
    probs = torch.softmax(logits, dim=-1)
    for b in range(2):
        np.testing.assert_array_equal(trace.sequence(b)[:, :, 0], probs[b].argmax(-1).numpy())
        off = trace.offsets
        np.testing.assert_allclose(trace.scores[off[b] : off[b + 1], :, 0], probs[b].max(-1).values.numpy(), rtol=1e-5)


def test_switch_capacity_overflow_is_minus_one():
    capacity = 1
    model = tiny_model("tiny-switch", seed=4, expert_capacity=capacity)
    prefix = [0, 7, 7, 7, 7, 7, 7, 7]  # a repeated decoder prefix keeps choosing the same experts
    prompts = [PROMPTS[0], PROMPTS[0]]
    result = capture_generation(model, prompts, 3, decoder_input_ids=prefix, include_prompt=True, ignore_eos=True)
    trace = result.trace
    assert trace.sequence_lengths.tolist() == [len(prefix) + 2] * 2
    assert trace.prompt_tokens.tolist() == [len(prefix)] * 2  # the decoder prompt
    logits = _switch_reference(model, prompts, prefix, result.tokens)[0]
    chosen = logits.argmax(-1).numpy()  # (B, T, L)
    for b in range(2):
        expected = chosen[b, : len(prefix)].copy()
        for l in range(expected.shape[1]):
            counts = {}
            for t in range(len(prefix)):
                e = int(expected[t, l])
                counts[e] = counts.get(e, 0) + 1
                if counts[e] > capacity:
                    expected[t, l] = -1
        got = trace.sequence(b)[:, :, 0]
        np.testing.assert_array_equal(got[: len(prefix)], expected)
        # One token per decode step never exceeds a capacity of 1.
        assert (got[len(prefix) :] >= 0).all()
    assert (trace.experts == -1).any()
    dropped = trace.experts == -1
    assert (trace.scores[dropped] == 0).all()


def test_switch_base_128_layout_gives_the_decoder_profile_shape():
    from fastsim.capture.routers import find_routers

    # switch-base-128: 12 decoder blocks, every second one sparse, 128 experts, top-1.
    model = tiny_model("tiny-switch", num_decoder_layers=12, num_layers=12, num_experts=128, d_ff=8)
    sites = find_routers(model)
    assert [s.name for s in sites] == [f"decoder.block.{i}.layer.2.mlp.router" for i in (1, 3, 5, 7, 9, 11)]
    assert {(s.num_experts, s.top_k) for s in sites} == {(128, 1)}


def test_bad_inputs_raise_fastsim_errors():
    model = tiny_model("tiny-olmoe", seed=0)
    right_padded = torch.tensor([[5, 6, 7], [8, 9, 0]])
    with pytest.raises(FastsimError, match="row 1 has padding after a token"):
        capture_routing(model, right_padded, 2, attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))
    with pytest.raises(FastsimError, match="max_new_tokens"):
        capture_routing(model, [[5, 6]], 0)
    with pytest.raises(FastsimError, match="prompt 1 is empty"):
        capture_routing(model, [[5, 6], []], 2)
    with pytest.raises(FastsimError, match="PreTrainedModel"):
        capture_routing(torch.nn.Linear(2, 2), [[1]], 1)
    dense = transformers.AutoModelForCausalLM.from_config(
        transformers.LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)
    )
    with pytest.raises(FastsimError, match="no MoE router modules"):
        capture_routing(dense, [[1, 2]], 1)


def test_cli_config_dry_run_writes_trace(tmp_path, capsys):
    out = tmp_path / "t.parquet"
    code = main(["trace", "capture", "--config", "tiny-qwen2-moe", "--tokens", "3", "--num-prompts", "3",
                 "--ignore-eos", "--out", str(out)])
    assert code == 0
    trace = read_trace(out)
    assert trace.sequence_lengths.tolist() == [3, 3, 3]
    assert (trace.num_layers, trace.top_k, trace.num_experts) == (3, 2, 8)
    assert "--config tiny-qwen2-moe" in trace.source
    assert trace.metadata["capture.model_type"] == "qwen2_moe"
    assert trace.prompt_tokens is None
    marked = tmp_path / "p.parquet"
    assert main(["trace", "capture", "--config", "tiny-qwen2-moe", "--tokens", "3", "--num-prompts", "3",
                 "--batch-size", "2", "--ignore-eos", "--include-prompt", "--out", str(marked)]) == 0
    assert "prompt tokens" in capsys.readouterr().out
    with_prompt = read_trace(marked)
    prompts = json.loads(with_prompt.metadata["capture.prompt_lengths"])
    assert with_prompt.prompt_tokens.tolist() == prompts
    assert with_prompt.sequence_lengths.tolist() == [p + 2 for p in prompts]
    assert main(["trace", "capture", "--config", "tiny-unknown", "--out", str(tmp_path / "u.parquet")]) == 2
    assert "unknown tiny model" in capsys.readouterr().err
    assert not (tmp_path / "u.parquet").exists()


def _save_local_model(path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for word in "the cat sat on a mat and dog ran far away".split():
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    model = tiny_model("tiny-mixtral", seed=5)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return model, fast


def test_cli_model_dir_matches_api(tmp_path):
    model, tokenizer = _save_local_model(tmp_path / "m")
    prompts = ["the cat sat on a mat", "a dog ran"]
    (tmp_path / "p.txt").write_text("\n".join(prompts) + "\n\n")
    out = tmp_path / "t.parquet"
    code = main(["trace", "capture", "--model-dir", str(tmp_path / "m"), "--prompts", str(tmp_path / "p.txt"),
                 "--tokens", "4", "--ignore-eos", "--dtype", "float32", "--out", str(out)])
    assert code == 0
    trace = read_trace(out)
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    direct = capture_routing(model, enc["input_ids"], 4, attention_mask=enc["attention_mask"], ignore_eos=True)
    np.testing.assert_array_equal(trace.experts, direct.experts)
    assert trace.sequence_lengths.tolist() == [4, 4]
    assert main(["trace", "capture", "--model-dir", str(tmp_path / "m"), "--out", str(tmp_path / "x.parquet")]) == 2
