"""Routing records collected from text logs, one entry per ``(request, token, layer)``.

Every text reader appends to one shared :class:`Records`, so records of several files merge by
request id and token position (each file may hold some of the layers). Columns stay Python lists
while reading and become arrays in bulk in :mod:`.assemble`.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["LineError", "Records"]


class LineError(Exception):
    """A problem with one record; the reader adds the file and line (only when one occurs, so
    the per-record path never formats a location)."""


class Records:
    """Columns of routing records, in file order, plus what the readers skipped or learned."""

    def __init__(self):
        self.files: list[str] = []  # display names, indexed by ``file``
        self.file: list[int] = []
        self.lines: list[int] = []
        self.request: list[int] = []  # dense request index, first-appearance order
        self.request_ids: list[Any] = []
        self._request_index: dict[Any, int] = {}
        self.token: list[Any] = []
        self.layer: list[Any] = []
        self.experts: list[list] = []
        self.scores: list[list | None] = []
        self.phase: list[bool | None] = []  # True = prefill, False = decode, None = not given
        self.any_scores = False
        self.any_phase = False
        #: Whether each file gave token positions (all files must agree); None until known.
        self.has_token: list[bool | None] = []
        #: Records that are not routing records, by reason (``type 'metadata'``, ...).
        self.skipped: Counter = Counter()
        #: ``# key=value`` header entries of every file, in order (a later file's entry wins).
        self.header: dict[str, str] = {}
        self.formats: list[str] = []

    def add_file(self, name: str, fmt: str) -> int:
        self.files.append(name)
        self.formats.append(fmt)
        self.has_token.append(None)
        return len(self.files) - 1

    def where(self, i: int) -> str:
        """``"<file> line <n>"`` of record ``i``."""
        return f"{self.files[self.file[i]]} line {self.lines[i]}"

    def add(self, file: int, line: int, rid, token, layer, experts, scores, phase) -> None:
        """Append one routing record (``token`` None when the file has no token field)."""
        try:
            idx = self._request_index.get(rid)
        except TypeError:
            raise LineError(f"request id {rid!r} must be a string or integer") from None
        if idx is None:
            idx = self._request_index[rid] = len(self.request_ids)
            self.request_ids.append(rid)
        self.file.append(file)
        self.lines.append(line)
        self.request.append(idx)
        self.token.append(token)
        self.layer.append(layer)
        self.experts.append(experts)
        self.scores.append(scores)
        self.phase.append(phase)
        if scores is not None:
            self.any_scores = True
        if phase is not None:
            self.any_phase = True

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def __len__(self) -> int:
        return len(self.lines)

    def skipped_text(self) -> str:
        """``"3 records skipped (2 of type 'metadata', 1 without a layer or experts field)"``."""
        total = sum(self.skipped.values())
        if not total:
            return ""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"{total} non-routing record{'s' if total != 1 else ''} skipped ({parts})"
