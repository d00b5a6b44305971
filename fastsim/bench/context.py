"""What every benchmark case shares in one run: sizes, repeat count, traces and a scratch folder."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["BenchContext", "DEFAULT_TOKENS", "DEFAULT_REPEAT"]

DEFAULT_TOKENS = 1_000_000
DEFAULT_REPEAT = 3
SEED = 0
#: Generated traces are split into sequences of this many tokens (the last may be shorter).
SEQUENCE_TOKENS = 1000


class BenchContext:
    """Shared state of one ``fastsim bench`` run.

    Generated traces and files written from them are kept for the whole run, so cases that use
    the same workload (LRU and Belady on one trace) do not pay for it twice. Use as a context
    manager: the scratch folder is removed on exit.

    Parameters
    ----------
    tokens : int
        Tokens of the large generated traces (the replay, memory, compile and Parquet cases).
    repeat : int
        Timed runs per measurement; cases report medians.
    log : callable, optional
        Receives one-line progress messages.
    """

    def __init__(self, tokens: int = DEFAULT_TOKENS, repeat: int = DEFAULT_REPEAT, log: Callable[[str], None] | None = None):
        self.tokens = int(tokens)
        self.repeat = int(repeat)
        self.log = log or (lambda message: None)
        self._tmp = Path(tempfile.mkdtemp(prefix="fastsim-bench-"))
        self._traces: dict = {}
        self._files: dict = {}

    def __enter__(self) -> "BenchContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._traces.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def workdir(self) -> Path:
        return self._tmp

    def trace(self, model: str, tokens: int | None = None):
        """The generated trace of ``model`` (a profile name) with ``tokens`` tokens (seed 0)."""
        from ..trace.generate import generate_trace

        tokens = self.tokens if tokens is None else int(tokens)
        key = (model, tokens)
        if key not in self._traces:
            self.log(f"generating a {tokens}-token {model} trace")
            sequences = max(1, -(-tokens // SEQUENCE_TOKENS))
            self._traces[key] = generate_trace(model, tokens=tokens, sequences=sequences, seed=SEED)
        return self._traces[key]

    def drop_trace(self, model: str, tokens: int | None = None) -> None:
        """Forget a large trace once no later case needs it."""
        self._traces.pop((model, self.tokens if tokens is None else int(tokens)), None)

    def file(self, name: str, write: Callable[[Path], None]) -> Path:
        """A scratch file, written by ``write(path)`` on first request."""
        if name not in self._files:
            path = self._tmp / name
            write(path)
            self._files[name] = path
        return self._files[name]
