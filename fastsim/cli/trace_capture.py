"""``fastsim trace capture``: record routing traces from a transformers MoE model (offline)."""
from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from ..errors import FastsimError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "capture",
        help="greedy-decode prompts with a local transformers MoE model and record its routing",
        description=(
            "Run a transformers MoE model (local directory, or a tiny random model for a dry run) "
            "with forward hooks on its routers and write the experts each MoE layer chose per decode "
            "step as a Parquet trace. Needs the fastsim[capture] extra; never contacts a model hub."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", metavar="DIR", help="saved transformers model with its tokenizer")
    src.add_argument("--config", metavar="NAME", help="tiny random model for a dry run, e.g. tiny-mixtral")
    p.add_argument("--prompts", metavar="FILE", help="prompts, one per line (required with --model-dir)")
    p.add_argument("--tokens", type=int, default=32, help="tokens to generate per prompt (default 32)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together (default 8)")
    p.add_argument(
        "--include-prompt",
        action="store_true",
        help="also record the prompt's positions, marked as each sequence's prompt (for prefill replay)",
    )
    p.add_argument("--ignore-eos", action="store_true", help="always generate --tokens tokens")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny model and its random prompts")
    p.add_argument("--num-prompts", type=int, default=4, help="random prompts for --config (default 4)")
    p.add_argument("--prompt-length", type=int, default=8, help="longest random prompt for --config (default 8)")
    p.add_argument("--dtype", default="auto", help="weights dtype for --model-dir: auto, float32, bfloat16, float16")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow code shipped with the checkpoint to run")
    p.add_argument("--model", metavar="PROFILE", help="fastsim model profile name to store in the trace")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="output trace (.parquet)")
    p.set_defaults(func=run)


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise FastsimError(f"--{name} must be at least 1, got {value}")


def _random_prompts(args) -> list[list[int]]:
    from ..capture.tiny import VOCAB

    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(1, args.prompt_length + 1, size=args.num_prompts)
    # Ids 0..2 are the tiny models' pad/BOS/EOS; prompts use ordinary tokens only.
    return [rng.integers(3, VOCAB, size=int(n)).tolist() for n in lengths]


def _concat(traces, source: str, metadata: dict):
    from ..trace.model import Trace

    first = traces[0]
    marked = all(t.prompt_tokens is not None for t in traces)
    return Trace.from_arrays(
        np.concatenate([t.experts for t in traces]),
        num_experts=first.num_experts,
        sequence_lengths=np.concatenate([t.sequence_lengths for t in traces]),
        scores=np.concatenate([t.scores for t in traces]),
        model=first.model,
        source=source,
        metadata=metadata,
        prompt_tokens=np.concatenate([t.prompt_tokens for t in traces]) if marked else None,
    )


def _source(args) -> str:
    """The capture command, reconstructed from its options, for the trace's ``source``."""
    parts = ["fastsim trace capture"]
    if args.config is not None:
        parts += [f"--config {args.config}", f"--seed {args.seed}", f"--num-prompts {args.num_prompts}",
                  f"--prompt-length {args.prompt_length}"]
    else:
        parts += [f"--model-dir {shlex.quote(str(args.model_dir))}", f"--prompts {shlex.quote(str(args.prompts))}",
                  f"--dtype {args.dtype}"]
    parts += [f"--tokens {args.tokens}", f"--batch-size {args.batch_size}"]
    parts += [flag for flag, on in (("--include-prompt", args.include_prompt), ("--ignore-eos", args.ignore_eos),
                                    ("--trust-remote-code", args.trust_remote_code)) if on]
    return " ".join(parts)


def run(args) -> int:
    for name in ("tokens", "batch_size", "num_prompts", "prompt_length"):
        _check_positive(name.replace("_", "-"), getattr(args, name))
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FastsimError(f"--out {args.out}: folder {out.parent} does not exist")

    from ..capture import capture_generation
    from ..capture._deps import offline, require_transformers

    offline()
    require_transformers()
    if args.config is not None:
        from ..capture.tiny import tiny_model

        if args.prompts is not None:
            raise FastsimError("--prompts needs --model-dir (a tiny --config model has no tokenizer)")
        model = tiny_model(args.config, seed=args.seed)
        try:
            model = model.to(args.device)
        except (RuntimeError, AssertionError) as exc:
            raise FastsimError(f"--device {args.device}: {exc}") from None
        prompts = _random_prompts(args)
        batches = [
            (prompts[i : i + args.batch_size], None) for i in range(0, len(prompts), args.batch_size)
        ]
    else:
        from ..capture.local import load_local_model, read_prompts, tokenize

        if args.prompts is None:
            raise FastsimError("--model-dir needs --prompts FILE (one prompt per line)")
        texts = read_prompts(args.prompts)
        model, tokenizer = load_local_model(
            args.model_dir, trust_remote_code=args.trust_remote_code, dtype=args.dtype, device=args.device
        )
        encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        batches = [
            tokenize(tokenizer, texts[i : i + args.batch_size], encoder_decoder)
            for i in range(0, len(texts), args.batch_size)
        ]

    source = _source(args)
    traces = []
    for ids, mask in batches:
        result = capture_generation(
            model,
            ids,
            args.tokens,
            mask,
            include_prompt=args.include_prompt,
            ignore_eos=args.ignore_eos,
            model_name=args.model,
            source=source,
        )
        traces.append(result.trace)
    metadata = dict(traces[0].metadata)
    metadata["capture.prompt_lengths"] = "[" + ",".join(
        t.metadata["capture.prompt_lengths"].strip("[]") for t in traces
    ) + "]"
    metadata["capture.batch_size"] = str(args.batch_size)
    if args.config is not None:
        metadata["capture.tiny_model"] = args.config
        metadata["capture.seed"] = str(args.seed)
    trace = _concat(traces, source, metadata)

    # write_trace writes a temporary file beside ``out`` and renames it: never a partial file.
    trace.write(out)
    marks = "" if trace.prompt_tokens is None else f", {trace.num_prompt_tokens} of them prompt tokens"
    print(
        f"wrote {out}: {trace.num_sequences} sequences, {trace.num_tokens} tokens{marks}, "
        f"{trace.num_layers} MoE layers, top-{trace.top_k} of {trace.num_experts} experts"
    )
    return 0
