"""Load a model and tokenizer from a local directory, offline, and tokenise prompts for capture."""
from __future__ import annotations

from pathlib import Path

from ..errors import FastsimError
from ._deps import require_torch, require_transformers

DTYPES = ("auto", "float32", "bfloat16", "float16")


def load_local_model(model_dir, *, trust_remote_code: bool = False, dtype: str = "auto", device: str = "cpu"):
    """``(model, tokenizer)`` from a saved transformers directory, without any hub access.

    Encoder-decoder configs (Switch Transformers) load as a seq2seq LM, the rest as a causal LM.
    Code shipped with the checkpoint runs only when ``trust_remote_code`` is set.
    """
    torch = require_torch()
    tf = require_transformers()
    path = Path(model_dir)
    if not path.is_dir():
        raise FastsimError(f"--model-dir {model_dir}: not a directory")
    if not (path / "config.json").is_file():
        raise FastsimError(f"--model-dir {model_dir}: no config.json (expected a saved transformers model)")
    if dtype not in DTYPES:
        raise FastsimError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    common = {"local_files_only": True, "trust_remote_code": bool(trust_remote_code)}
    try:
        config = tf.AutoConfig.from_pretrained(str(path), **common)
        cls = tf.AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else tf.AutoModelForCausalLM
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        model = cls.from_pretrained(str(path), config=config, dtype=torch_dtype, **common)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise FastsimError(f"--model-dir {model_dir}: cannot load the model: {exc}") from None
    try:
        model = model.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise FastsimError(f"--device {device}: {exc}") from None
    tokenizer = None
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(str(path), **common)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise FastsimError(f"--model-dir {model_dir}: cannot load its tokenizer: {exc}") from None
    return model.eval(), tokenizer


def read_prompts(path) -> list[str]:
    """Non-empty lines of a UTF-8 text file, one prompt each."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FastsimError(f"--prompts {path}: not UTF-8 text ({exc.reason})") from None
    prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise FastsimError(f"--prompts {path}: no prompts (expected one per line)")
    return prompts


def tokenize(tokenizer, prompts: list[str], encoder_decoder: bool):
    """``(input_ids, attention_mask)`` tensors, left-padded for decoder-only models."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise FastsimError("the tokenizer has neither a pad nor an EOS token to pad prompts with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right" if encoder_decoder else "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]
