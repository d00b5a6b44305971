"""CSV routing logs: a header row, then one row per ``(request, token, layer)``, token, or expert.

The experts of a row are one cell holding a list (``"3 17"``, ``"[3, 17]"``, ``"3;17"``) or one
column per slot (``expert_0 .. expert_{K-1}``); a row holding every layer of a token has one list
column per layer instead of a layer column (``layer_0``, ``layer_8``, ...: the number is the
model layer). In the long layout each row is one routed expert (see :mod:`.long`). Lines
starting with ``#`` are comments (``# key=value`` ones kept as header metadata); rows of another
``type`` than the routing rows', or with an empty layer cell, are skipped and counted. Line
numbers count every line of the file, comments and header included.
"""
from __future__ import annotations

import csv
import io
import re

from ...errors import TraceError
from ..phase import EXPECTED as PHASE_EXPECTED
from ..phase import phase_is_prefill
from .base import ImportOptions, Reader, display, pick, role_names
from .long import LongGrouper
from .records import LineError, Records
from .text import open_binary

__all__ = ["CsvReader"]

# CSV only: prefixes of one-column-per-slot layouts (``expert_0 .. expert_{K-1}``), tried after the
# role's own names.
_COLUMN_PREFIXES = {"experts": ("expert",), "scores": ("score", "weight")}
_ID_SEPARATORS = re.compile(r"[\s,;|]+")
_LAYER_COLUMN = re.compile(r"^layer_(\d+)$")


def _cell_ids(cell: str) -> list[int]:
    text = cell.strip().strip("[](){}").strip()
    if not text:
        return []
    try:
        return [int(part) for part in _ID_SEPARATORS.split(text) if part]
    except ValueError:
        raise LineError(f"cannot read expert ids from {cell!r}") from None


def _cell_floats(cell: str) -> list[float]:
    text = cell.strip().strip("[](){}").strip()
    if not text:
        return []
    try:
        return [float(part) for part in _ID_SEPARATORS.split(text) if part]
    except ValueError:
        raise LineError(f"cannot read scores from {cell!r}") from None


def _int_cell(cell: str, what: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise LineError(f"{what} {cell!r} is not an integer") from None


def _slot_columns(header: list[str], names: tuple[str, ...]) -> list[int] | None:
    """Columns ``<prefix>_0, <prefix>_1, ...`` for the first prefix that has a ``_0`` column."""
    index = {name: i for i, name in enumerate(header)}
    for prefix in names:
        if f"{prefix}_0" in index:
            cols, k = [], 0
            while f"{prefix}_{k}" in index:
                cols.append(index[f"{prefix}_{k}"])
                k += 1
            return cols
    return None


_COMMENT_STARTS = ("#", " ", "\t")


def _comment(cells: list[str], header: dict) -> None:
    """A ``#`` line read as CSV cells: rejoin it and keep a ``key=value`` entry."""
    text = ",".join(cells).lstrip()[1:]
    key, sep, value = text.partition("=")
    if sep and key.strip():
        header[key.strip()] = value.strip()


def _request(cell: str):
    rid = cell.strip()
    try:
        return int(rid)
    except ValueError:
        return rid


class _Columns:
    """Where each role sits in one file's header."""

    def __init__(self, header: list[str], options: ImportOptions, where: str):
        long = options.layout == "long"
        candidates = role_names(options.fields, long=long)
        given = set(options.fields or ())
        col = {name: i for i, name in enumerate(header)}
        self.width = len(header)

        def find(role):
            name = pick(candidates[role], col)
            if name is None and role in given and candidates[role]:
                raise TraceError(f"{where}: no column {candidates[role][0]!r} ({role})")
            return None if name is None else col[name]

        self.request, self.token, self.layer = find("request"), find("token"), find("layer")
        self.phase, self.type = find("phase"), find("type")
        self.slot = find("slot") if long else None
        self.experts = next((col[n] for n in candidates["experts"] if n in col), None)
        self.expert_slots = self.score_slots = None
        self.layer_columns: list[tuple[int, int]] = []  # (model layer, column) of per-token rows
        if self.layer is None:
            self.layer_columns = [
                (int(m.group(1)), i) for i, h in enumerate(header) if (m := _LAYER_COLUMN.match(h))
            ]
            if not self.layer_columns:
                names = candidates["layer"]
                raise TraceError(
                    f"{where}: no layer column: expected one of {', '.join(map(repr, names))}, "
                    "or one expert-list column per layer ('layer_0', 'layer_1', ...)"
                )
        elif self.experts is None and not long:
            self.expert_slots = _slot_columns(header, candidates["experts"] + _COLUMN_PREFIXES["experts"])
        if self.layer is not None and self.experts is None and self.expert_slots is None:
            names = candidates["experts"]
            hint = (
                "" if long else " or columns like 'expert_0', 'expert_1' (a file with one row per "
                "routed expert: use the long layout)"
            )
            raise TraceError(
                f"{where}: no experts column: expected one of {', '.join(map(repr, names))}{hint}"
            )
        self.scores = next((col[n] for n in candidates["scores"] if n in col), None)
        if self.scores is None and candidates["scores"] and not long:
            self.score_slots = _slot_columns(header, candidates["scores"] + _COLUMN_PREFIXES["scores"])

    def expert_ids(self, cells) -> list[int]:
        if self.expert_slots is None:
            return _cell_ids(cells[self.experts])
        return [_int_cell(c, "expert id") if c.strip() else -1 for c in (cells[j] for j in self.expert_slots)]

    def score_values(self, cells, count: int):
        score = None
        if self.scores is not None and cells[self.scores].strip():
            score = _cell_floats(cells[self.scores])
        elif self.score_slots is not None:
            raw = [cells[j].strip() for j in self.score_slots]
            if any(raw):
                try:
                    score = [float(c) if c else float("nan") for c in raw]
                except ValueError:
                    raise LineError(f"cannot read scores {raw!r}") from None
        if score is not None:
            if len(score) < count:
                score = score + [float("nan")] * (count - len(score))
            if len(score) != count:
                raise LineError(f"{len(score)} scores for {count} experts")
        return score

    def phase_of(self, cells):
        if self.phase is None or not cells[self.phase].strip():
            return None
        value = phase_is_prefill(cells[self.phase])
        if value is None:
            raise LineError(f"phase {cells[self.phase]!r} is not a phase; expected {PHASE_EXPECTED}")
        return value


class CsvReader(Reader):
    name = "csv"
    suffixes = (".csv",)
    text = True

    def records(self, path, options: ImportOptions, into: Records, file: int) -> None:
        name = display(path)
        header: dict[str, str] = {}
        with open_binary(path) as stream:
            # csv.reader straight on the decoded text keeps the row loop in C; comment lines come
            # through as rows whose first cell starts with "#" (see _comment).
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            try:
                self._read(reader, name, options, into, file, header)
            except LineError as exc:
                raise TraceError(f"{name} line {reader.line_num}: {exc}") from None
            except csv.Error as exc:
                raise TraceError(f"{name} line {reader.line_num + 1}: unreadable CSV ({exc})") from None
            except UnicodeDecodeError:
                raise TraceError(
                    f"{name} line {reader.line_num + 1}: not UTF-8 text; is this a CSV file?"
                ) from None
        into.header.update(header)

    @staticmethod
    def _read(reader, name: str, options: ImportOptions, into: Records, file: int, header: dict) -> None:
        long = options.layout == "long"
        routing_type = options.record_type
        for cells in reader:
            if cells and cells[0].lstrip().startswith("#"):
                _comment(cells, header)
                continue
            if cells:
                break
        else:
            raise TraceError(f"{name}: empty file, expected a header row")
        cols = _Columns([h.strip() for h in cells], options, f"{name} line {reader.line_num}")
        into.has_token[file] = cols.token is not None
        grouper = LongGrouper(into, file) if long else None
        add = into.add
        width = cols.width
        for cells in reader:
            if len(cells) != width or cells[0][:1] in _COMMENT_STARTS:
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if cells[0].lstrip().startswith("#"):
                    _comment(cells, header)
                    continue
                if len(cells) != width:
                    raise LineError(f"{len(cells)} cells, but the header has {width}")
            if cols.type is not None:
                kind = cells[cols.type].strip()
                if routing_type is None:
                    routing_type = kind
                elif kind != routing_type:
                    into.skip(f"of type {kind!r}")
                    continue
            if cols.layer is not None and not cells[cols.layer].strip():
                into.skip("without a layer or experts field")
                continue
            rid = None if cols.request is None else _request(cells[cols.request])
            token = None if cols.token is None else _int_cell(cells[cols.token], "token position")
            phase = None if cols.phase is None else cols.phase_of(cells)
            line = reader.line_num
            if long:
                CsvReader._long_row(cells, cols, grouper, line, rid, token, phase)
            elif cols.layer is None:
                for layer, j in cols.layer_columns:
                    add(file, line, rid, token, layer, _cell_ids(cells[j]), None, phase)
            else:
                experts = cols.expert_ids(cells)
                add(file, line, rid, token, _int_cell(cells[cols.layer], "layer"), experts,
                    cols.score_values(cells, len(experts)), phase)
        if grouper is not None:
            grouper.flush()

    @staticmethod
    def _long_row(cells, cols: _Columns, grouper: LongGrouper, line, rid, token, phase) -> None:
        cell = cells[cols.experts].strip()
        expert = _int_cell(cell, "expert id") if cell else -1
        slot = None if cols.slot is None else _int_cell(cells[cols.slot], "slot")
        score = None
        if cols.scores is not None and cells[cols.scores].strip():
            try:
                score = float(cells[cols.scores])
            except ValueError:
                raise LineError(f"weight {cells[cols.scores]!r} is not a number") from None
        layer = _int_cell(cells[cols.layer], "layer")
        grouper.add(line, rid, token, layer, slot, expert, score, phase)
