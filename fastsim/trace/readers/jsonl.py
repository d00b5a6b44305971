"""JSON Lines routing logs: one object per ``(request, token, layer)``, per token, or per expert.

Field names are taken from the first routing record (see :data:`~.base.FIELD_ALIASES`); records
that are not routing records are skipped and counted: a ``type`` field other than the routing
records' own (the first routing record's, or the one named), or no layer or experts field. A
record holding every layer of a token has no layer field and a list of expert lists (the ``i``-th
is layer ``i``, or the ``i``-th of ``--layers``) or a mapping from layer number to expert list.
"""
from __future__ import annotations

import json

from ...errors import TraceError
from ..phase import EXPECTED as PHASE_EXPECTED
from ..phase import phase_is_prefill
from .base import ImportOptions, Reader, display, pick, role_names
from .long import LongGrouper
from .records import LineError, Records
from .text import NumberedLines, open_binary

__all__ = ["JsonlReader"]

_NOT_ROUTING = "without a layer or experts field"


class _Fields:
    """The field names of one file, fixed by its first routing record."""

    def __init__(self, candidates, obj, given):
        self.request = pick(candidates["request"], obj)
        self.token = pick(candidates["token"], obj)
        self.layer = pick(candidates["layer"], obj)
        self.experts = pick(candidates["experts"], obj)
        self.phase = pick(candidates["phase"], obj)
        self.slot = pick(candidates["slot"], obj)
        self.type = pick(candidates["type"], obj)
        self.scores = candidates["scores"]
        for role in ("request", "token", "phase", "slot"):
            if getattr(self, role) is None and role in given and candidates[role]:
                raise LineError(f"no field {candidates[role][0]!r} ({role})")


def _nested(experts) -> bool:
    """Whether an experts value holds every layer of a token (a list of lists, or a mapping)."""
    return isinstance(experts, dict) or (
        type(experts) is list and any(type(v) is list for v in experts)
    )


def _per_layer_items(experts, scores, layers):
    """A per-token record's ``(layer, experts, scores)`` triples."""
    if isinstance(experts, dict):
        items = []
        for key, ids in experts.items():
            try:
                layer = int(key)
            except ValueError:
                raise LineError(f"layer key {key!r} is not an integer") from None
            sc = scores.get(key) if isinstance(scores, dict) else None
            items.append((layer, ids, sc))
        return items
    if scores is not None and (not isinstance(scores, list) or len(scores) != len(experts)):
        raise LineError("scores must be one list per layer, like the experts")
    if layers is not None and len(experts) > len(layers):
        raise LineError(f"{len(experts)} expert lists, but layers lists {len(layers)} layers")
    return [
        (i if layers is None else layers[i], ids, None if scores is None else scores[i])
        for i, ids in enumerate(experts)
    ]


def _id_list(experts, name: str) -> list:
    if type(experts) is list:
        return experts
    if type(experts) is int:
        return [experts]
    raise LineError(f"field {name!r} must be a list of expert ids, got {type(experts).__name__}")


def _score_list(score, count: int):
    if score is None:
        return None
    if type(score) is not list:
        score = [score] if isinstance(score, (int, float)) and not isinstance(score, bool) else score
    if type(score) is not list:
        raise LineError("scores must be a list of numbers")
    if len(score) != count:
        raise LineError(f"{len(score)} scores for {count} experts")
    return score


def _phase(value):
    if value is None:
        return None
    mark = phase_is_prefill(value)
    if mark is None:
        raise LineError(f"phase {value!r} is not a phase; expected {PHASE_EXPECTED}")
    return mark


def _long_values(obj, fields: _Fields, experts, score):
    slot = None
    if fields.slot is not None:
        slot = obj.get(fields.slot)
        if type(slot) is not int:
            raise LineError(f"slot {slot!r} is not an integer")
    if type(experts) is not int:
        raise LineError(
            f"field {fields.experts!r} must be one expert id in the long layout, got "
            f"{type(experts).__name__}"
        )
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise LineError(f"weight {score!r} is not a number")
    return slot


class JsonlReader(Reader):
    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")
    text = True

    def records(self, path, options: ImportOptions, into: Records, file: int) -> None:
        name = display(path)
        with open_binary(path) as stream:
            lines = NumberedLines(stream, name)
            try:
                self._read(lines, options, into, file)
            except LineError as exc:
                raise TraceError(f"{name} line {lines.line}: {exc}") from None
        into.header.update(lines.header)

    @staticmethod
    def _read(lines: NumberedLines, options: ImportOptions, into: Records, file: int) -> None:
        long = options.layout == "long"
        candidates = role_names(options.fields, long=long)
        given = set(options.fields or ())
        routing_type = options.record_type
        type_names = candidates["type"]
        fields: _Fields | None = None
        grouper = LongGrouper(into, file) if long else None
        loads = json.JSONDecoder().decode  # skips json.loads' per-call argument handling
        layers = options.dims.layers
        add = into.add
        for text in lines:
            if not text.strip():
                continue
            try:
                obj = loads(text)
            except ValueError as exc:
                raise LineError(f"not valid JSON ({getattr(exc, 'msg', exc)})") from None
            if type(obj) is not dict:
                raise LineError(f"expected a JSON object, got {type(obj).__name__}")
            f_type = pick(type_names, obj) if fields is None or fields.type is None else fields.type
            kind = obj.get(f_type) if f_type is not None else None
            if kind is not None and routing_type is not None and kind != routing_type:
                into.skip(f"of type {kind!r}")
                continue
            if fields is None:
                f_exp = pick(candidates["experts"], obj)
                if f_exp is None or (pick(candidates["layer"], obj) is None and not _nested(obj[f_exp])):
                    into.skip(_NOT_ROUTING if kind is None else f"of type {kind!r}")
                    continue
                fields = _Fields(candidates, obj, given)
                into.has_token[file] = fields.token is not None
                if routing_type is None and kind is not None:
                    routing_type = kind
            if fields.experts not in obj or (fields.layer is not None and fields.layer not in obj):
                into.skip(_NOT_ROUTING)
                continue
            try:
                rid = obj[fields.request] if fields.request is not None else None
                token = obj[fields.token] if fields.token is not None else None
            except KeyError as exc:
                raise LineError(f"missing field {exc.args[0]!r}") from None
            phase = _phase(obj.get(fields.phase)) if fields.phase is not None else None
            score = None
            for score_name in fields.scores:
                if score_name in obj:
                    score = obj[score_name]
                    break
            experts = obj[fields.experts]
            line = lines.line
            if long:
                slot = _long_values(obj, fields, experts, score)
                grouper.add(line, rid, token, obj[fields.layer], slot, experts, score, phase)
            elif fields.layer is None:
                for layer, ids, sc in _per_layer_items(experts, score, layers):
                    ids = _id_list(ids, fields.experts)
                    add(file, line, rid, token, layer, ids, _score_list(sc, len(ids)), phase)
            else:
                experts = _id_list(experts, fields.experts)
                add(file, line, rid, token, obj[fields.layer], experts, _score_list(score, len(experts)), phase)
        if grouper is not None:
            grouper.flush()
