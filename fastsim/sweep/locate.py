"""Line numbers of keys in TOML text, for spec error messages.

``tomllib`` reports line and column only for syntax errors; a semantic error (a wrong type, an
unknown strategy) is found after parsing, on the parsed document. :class:`KeyLocator` scans the
text once, recording the line of every table header and every ``key =`` line under its table
path, so an error can name the line of the key it is about.
"""
from __future__ import annotations

import re

__all__ = ["KeyLocator", "format_path"]

_HEADER = re.compile(r"^\s*(\[\[|\[)(.*?)(\]\]|\])\s*(#.*)?$")
_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_KEY_LINE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_PART = re.compile(rf"\s*({_BARE}|{_QUOTED})\s*")


def _split_key(text: str) -> tuple[str, ...]:
    """``a."b.c".d`` -> ``("a", "b.c", "d")``."""
    parts = []
    for piece in re.finditer(rf"{_QUOTED}|{_BARE}", text):
        token = piece.group(0)
        if token[0] in "\"'":
            token = token[1:-1]
        parts.append(token)
    return tuple(parts)


def format_path(path) -> str:
    """``("strategies", "top-k", "k", 1)`` -> ``strategies.top-k.k[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


class KeyLocator:
    """Find the 1-based line of a key path in TOML text (best effort, never raises)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.index: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        table: tuple = ()
        for number, line in enumerate(self.lines, start=1):
            head = _HEADER.match(line)
            if head and not _KEY_LINE.match(line):
                names = _split_key(head.group(2))
                if head.group(1) == "[[":
                    i = counts.get(names, 0)
                    counts[names] = i + 1
                    table = names + (i,)
                else:
                    table = self._with_indices(names, counts)
                self.index.setdefault(table, number)
                continue
            key = _KEY_LINE.match(line)
            if key:
                self.index.setdefault(table + _split_key(key.group(1)), number)

    @staticmethod
    def _with_indices(names: tuple, counts: dict) -> tuple:
        # [a.b] below [[a]] belongs to the last element of array a
        out: tuple = ()
        for i, name in enumerate(names):
            out += (name,)
            n = counts.get(names[: i + 1])
            if n and i < len(names) - 1:
                out += (n - 1,)
        return out

    def line(self, path) -> int | None:
        """The line of ``path``, or of its nearest enclosing key that has one."""
        path = tuple(path)
        for cut in range(len(path), 0, -1):
            found = self.index.get(path[:cut])
            if found is not None:
                rest = [p for p in path[cut:] if isinstance(p, str)]
                return self._inline(found, rest) if rest else found
        return None

    def _inline(self, start: int, rest: list[str]) -> int:
        """A key inside an inline table: search from ``start`` until the next header."""
        line = start
        for name in rest:
            pattern = re.compile(rf"(^|[{{,\s])[\"']?{re.escape(name)}[\"']?\s*=")
            for number in range(line, len(self.lines) + 1):
                text = self.lines[number - 1]
                if number > start and _HEADER.match(text) and not _KEY_LINE.match(text):
                    break
                if number == line:
                    # on the line of the enclosing key, look only at its value
                    text = text.split("=", 1)[-1]
                if pattern.search(text):
                    line = number
                    break
        return line
