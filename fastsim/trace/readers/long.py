"""The long layout: one row per routed expert, grouped into ``(request, token, layer)`` records.

Engines that trace routing as a table often write one row per chosen expert: ``request, token,
layer, slot, expert[, weight]`` and further columns. The rows of one routing decision come
together in the file; a run of consecutive rows with the same request, token and layer is one
record, its experts ordered by the slot (or rank) column, or by file order without one. Slot
numbers only order (they may start at 0 or 1 and need not be contiguous); the same slot twice in
one record is an error naming both lines.
"""
from __future__ import annotations

from ...errors import TraceError
from .records import Records

__all__ = ["LongGrouper"]


class LongGrouper:
    """Collect long rows of one file and hand each finished group to ``records`` as one record."""

    def __init__(self, records: Records, file: int):
        self._records = records
        self._file = file
        self._key = None
        self._rows: list[tuple] = []  # (slot, line, expert, score, phase)
        self._first_line = 0

    def add(self, line: int, rid, token, layer, slot, expert, score, phase) -> None:
        key = (rid, token, layer)
        if key != self._key:
            self.flush()
            self._key = key
            self._first_line = line
        self._rows.append((slot, line, expert, score, phase))

    def flush(self) -> None:
        if not self._rows:
            return
        rows = self._rows
        where = self._records.files[self._file]
        if rows[0][0] is not None:
            rows = sorted(rows, key=lambda r: (r[0], r[1]))
            for a, b in zip(rows, rows[1:]):
                if a[0] == b[0]:
                    first, second = sorted((a[1], b[1]))
                    raise TraceError(
                        f"{where} line {second}: slot {b[0]!r} of this expert row was already given "
                        f"on line {first} for the same request, token and layer"
                    )
        phases = {r[4] for r in rows}
        if len(phases) > 1:
            line = next(r[1] for r in rows if r[4] != rows[0][4])
            raise TraceError(
                f"{where} line {line}: phase differs from line {rows[0][1]} of the same request, "
                "token and layer; expected one phase per token"
            )
        scores = [r[3] for r in rows]
        has_scores = any(s is not None for s in scores)
        rid, token, layer = self._key
        self._records.add(
            self._file, self._first_line, rid, token, layer,
            [r[2] for r in rows],
            [float("nan") if s is None else s for s in scores] if has_scores else None,
            rows[0][4],
        )
        self._rows = []
        self._key = None
