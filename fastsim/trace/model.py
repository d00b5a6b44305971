"""The in-memory routing trace: one ``(tokens, L, K)`` integer array plus sequence lengths."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._jit import kernel
from ..errors import TraceError

__all__ = ["Trace", "expert_dtype", "validated_prompt_tokens"]

# Hash this many rows at a time so fingerprinting a 224 M-id trace needs no full-size copy.
_HASH_CHUNK_ROWS = 1 << 20


def expert_dtype(num_experts: int) -> np.dtype:
    """Storage dtype for expert ids: int16 while ids fit (SPEC section 1), else int32."""
    return np.dtype(np.int16) if num_experts <= 32767 else np.dtype(np.int32)


@kernel
def _first_bad_entry(experts, num_experts):
    """Return ``(row, layer, slot, code)`` of the first bad entry, or ``code == 0``.

    Codes: 1 = id out of range (below -1 or at least ``num_experts``), 2 = id repeated in a row.
    """
    tokens, layers, top_k = experts.shape
    for t in range(tokens):
        for l in range(layers):
            for k in range(top_k):
                e = experts[t, l, k]
                if e < -1 or e >= num_experts:
                    return t, l, k, 1
                if e >= 0:
                    for j in range(k):
                        if experts[t, l, j] == e:
                            return t, l, k, 2
    return 0, 0, 0, 0


@dataclass(eq=False)
class Trace:
    """A routing trace.

    Attributes
    ----------
    experts : ndarray, shape (tokens, L, K), int16 (int32 when E > 32767), C-contiguous
        Expert ids chosen for each token and MoE layer, best first; ``-1`` marks a lost entry.
    sequence_lengths : ndarray, shape (S,), int64
        Tokens of each sequence (request), in order; zero-length sequences are allowed.
    num_experts : int
        Experts per layer, ``E``; ids lie in ``[0, E)``.
    scores : ndarray, shape (tokens, L, K), float32, or None
        Router weights of the chosen experts, when recorded.
    model : str or None
        Model profile name the trace was recorded or generated for.
    source : str
        What produced it: generator and parameters, capture command, or import origin.
    metadata : dict
        Further key/value metadata kept with the file.
    prompt_tokens : ndarray, shape (S,), int64, or None
        Prompt length of each sequence: its first ``p`` tokens are the prompt (prefill), the
        rest are decode tokens; ``0 <= p <=`` the sequence's length. ``None`` when not marked.
    """

    experts: np.ndarray
    sequence_lengths: np.ndarray
    num_experts: int
    scores: np.ndarray | None = None
    model: str | None = None
    source: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    prompt_tokens: np.ndarray | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.experts, self.sequence_lengths, self.scores = _validated(
            self.experts, self.sequence_lengths, self.num_experts, self.scores
        )
        self.num_experts = int(self.num_experts)
        self.prompt_tokens = validated_prompt_tokens(self.prompt_tokens, self.sequence_lengths)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        experts,
        num_experts: int,
        sequence_lengths=None,
        scores=None,
        model: str | None = None,
        source: str = "arrays",
        metadata: dict[str, str] | None = None,
        prompt_tokens=None,
    ) -> "Trace":
        """Build a trace from a ``(tokens, L, K)`` integer array.

        ``sequence_lengths`` defaults to one sequence holding every token; ``prompt_tokens``
        (one prompt length per sequence) marks each sequence's leading prefill tokens. Raises
        :class:`~fastsim.errors.TraceError` naming the first offending entry.
        """
        experts = np.asarray(experts)
        if sequence_lengths is None:
            sequence_lengths = [experts.shape[0]] if experts.ndim >= 1 else [0]
        return cls(
            experts=experts,
            sequence_lengths=sequence_lengths,
            num_experts=num_experts,
            scores=scores,
            model=model,
            source=source,
            metadata=dict(metadata or {}),
            prompt_tokens=prompt_tokens,
        )

    @classmethod
    def _trusted(
        cls,
        experts: np.ndarray,
        sequence_lengths: np.ndarray,
        num_experts: int,
        scores: np.ndarray | None = None,
        model: str | None = None,
        source: str = "",
        metadata: dict[str, str] | None = None,
        prompt_tokens: np.ndarray | None = None,
    ) -> "Trace":
        """Wrap arrays that the caller has already validated, skipping every check and copy.

        For readers and generators that checked the data on the way in: ``experts`` must be
        C-contiguous of :func:`expert_dtype`, ``sequence_lengths`` int64, ``scores`` float32,
        ``prompt_tokens`` int64 within the lengths.
        """
        self = cls.__new__(cls)
        self.experts = experts
        self.sequence_lengths = sequence_lengths
        self.num_experts = int(num_experts)
        self.scores = scores
        self.model = model
        self.source = source
        self.metadata = dict(metadata or {})
        self.prompt_tokens = prompt_tokens
        self._fingerprint = None
        return self

    # ------------------------------------------------------------------ shape
    @property
    def num_tokens(self) -> int:
        return int(self.experts.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.experts.shape[1])

    @property
    def top_k(self) -> int:
        return int(self.experts.shape[2])

    @property
    def num_sequences(self) -> int:
        return int(self.sequence_lengths.shape[0])

    @property
    def num_prompt_tokens(self) -> int:
        """Tokens marked as prompt (prefill) tokens; 0 when the trace has no prompt marks."""
        return 0 if self.prompt_tokens is None else int(self.prompt_tokens.sum())

    @property
    def offsets(self) -> np.ndarray:
        """Start row of each sequence plus the end, shape (S + 1,), int64."""
        out = np.zeros(self.num_sequences + 1, dtype=np.int64)
        np.cumsum(self.sequence_lengths, out=out[1:])
        return out

    @property
    def nbytes(self) -> int:
        return int(self.experts.nbytes + (0 if self.scores is None else self.scores.nbytes))

    def fingerprint(self) -> str:
        """Content hash (hex) of ``E``, the shape, the sequence lengths and every expert id,
        plus the prompt lengths when the trace marks them.

        Independent of the storage dtype and of scores, model name and source, so equal
        routing gives the same fingerprint wherever it came from; a trace without prompt marks
        hashes exactly as before they existed.
        """
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(np.asarray([self.num_experts, *self.experts.shape], dtype=np.int64).tobytes())
            h.update(self.sequence_lengths.astype(np.int64).tobytes())
            for start in range(0, self.num_tokens, _HASH_CHUNK_ROWS):
                chunk = self.experts[start : start + _HASH_CHUNK_ROWS]
                h.update(np.ascontiguousarray(chunk, dtype=np.int32).tobytes())
            if self.prompt_tokens is not None:
                # A tag first, so no routing can hash like routing plus prompt marks.
                h.update(b"prompt_tokens")
                h.update(self.prompt_tokens.astype(np.int64).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def sequence(self, index: int) -> np.ndarray:
        """The ``(length, L, K)`` view of one sequence."""
        off = self.offsets
        return self.experts[off[index] : off[index + 1]]

    def write(self, path, **options: Any) -> None:
        """Write as Parquet (SPEC section 1), atomically; see :func:`fastsim.trace.parquet.write_trace`."""
        from .parquet import write_trace

        write_trace(self, path, **options)

    def __repr__(self) -> str:
        return (
            f"Trace(model={self.model!r}, sequences={self.num_sequences}, tokens={self.num_tokens}, "
            f"layers={self.num_layers}, top_k={self.top_k}, experts={self.num_experts})"
        )


def _validated(experts, sequence_lengths, num_experts, scores):
    try:
        num_experts = int(num_experts)
    except (TypeError, ValueError):
        raise TraceError(f"num_experts must be an integer, got {num_experts!r}") from None
    if num_experts < 1:
        raise TraceError(f"num_experts must be at least 1, got {num_experts}")
    experts = np.asarray(experts)
    if experts.ndim != 3:
        raise TraceError(
            f"experts must have shape (tokens, layers, top_k), got {experts.ndim} dimensions "
            f"{experts.shape}"
        )
    if experts.dtype.kind not in "iu":
        raise TraceError(f"experts must hold integers, got dtype {experts.dtype}")
    if experts.shape[1] < 1 or experts.shape[2] < 1:
        raise TraceError(f"experts needs at least one layer and top_k >= 1, got shape {experts.shape}")
    dtype = expert_dtype(num_experts)
    if experts.size and (experts.min() < -1 or experts.max() >= num_experts):
        bad = np.argwhere((experts < -1) | (experts >= num_experts))[0]
        raise TraceError(
            f"expert id {int(experts[tuple(bad)])} at token {bad[0]}, layer {bad[1]}, slot {bad[2]} "
            f"is out of range: expected -1 or 0..{num_experts - 1}"
        )
    experts = np.ascontiguousarray(experts, dtype=dtype)
    t, l, k, code = _first_bad_entry(experts, num_experts)
    if code == 2:
        raise TraceError(
            f"expert id {int(experts[t, l, k])} repeated at token {t}, layer {l}: each row must "
            "hold distinct experts"
        )
    lengths = np.asarray(sequence_lengths)
    if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
        raise TraceError("sequence_lengths must be a 1-D array of integers")
    lengths = lengths.astype(np.int64)
    if lengths.size and lengths.min() < 0:
        raise TraceError(f"sequence {int(np.argmin(lengths))} has a negative length")
    if int(lengths.sum()) != experts.shape[0]:
        raise TraceError(
            f"sequence lengths add up to {int(lengths.sum())} tokens but experts has "
            f"{experts.shape[0]} rows"
        )
    if scores is not None:
        scores = np.asarray(scores)
        if scores.shape != experts.shape:
            raise TraceError(f"scores shape {scores.shape} differs from experts shape {experts.shape}")
        if scores.dtype.kind not in "fiu":
            raise TraceError(f"scores must be numbers, got dtype {scores.dtype}")
        scores = np.ascontiguousarray(scores, dtype=np.float32)
    return experts, lengths, scores


def validated_prompt_tokens(prompt_tokens, sequence_lengths: np.ndarray) -> np.ndarray | None:
    """``prompt_tokens`` as an int64 ``(S,)`` array, each ``0 <= p <=`` its sequence's length,
    or ``None``; anything else raises :class:`~fastsim.errors.TraceError` naming the sequence."""
    if prompt_tokens is None:
        return None
    prompts = np.asarray(prompt_tokens)
    count = sequence_lengths.shape[0]
    if prompts.ndim != 1 or prompts.shape[0] != count:
        raise TraceError(
            f"prompt_tokens must hold one prompt length per sequence ({count}), got shape "
            f"{prompts.shape}"
        )
    if prompts.size and prompts.dtype.kind not in "iu":
        raise TraceError(f"prompt_tokens must hold integers, got dtype {prompts.dtype}")
    prompts = prompts.astype(np.int64)
    bad = np.flatnonzero((prompts < 0) | (prompts > sequence_lengths))
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"prompt_tokens of sequence {i} is {int(prompts[i])}; expected 0..{int(sequence_lengths[i])} "
            f"(the sequence has {int(sequence_lengths[i])} tokens)"
        )
    return prompts
