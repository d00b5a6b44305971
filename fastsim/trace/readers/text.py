"""Opening text logs: gzip or zstd compression (detected by content), comment and header lines.

Engines and logging tools compress long logs (``.jsonl.gz``, ``.csv.zst``); the compression is
recognised by the file's first bytes, so a misnamed file still opens. Lines starting with ``#``
are comments; a ``# key=value`` comment is a header entry kept in the trace's metadata (engines
write their ``n_expert_used`` and per-layer expert sizes there).
"""
from __future__ import annotations

import gzip
import io
import os
from contextlib import contextmanager

from ...errors import TraceError
from .base import display

__all__ = ["COMPRESSION_SUFFIXES", "open_binary", "strip_compression_suffix", "NumberedLines"]

COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COMMENT_STARTS = ("#", " ", "\t")


def strip_compression_suffix(path: str) -> tuple[str, str | None]:
    """``"log.jsonl.gz"`` -> ``("log.jsonl", "gzip")``; other names are returned unchanged."""
    root, ext = os.path.splitext(path)
    kind = COMPRESSION_SUFFIXES.get(ext.lower())
    return (root, kind) if kind else (path, None)


@contextmanager
def open_binary(path):
    """The file's decompressed bytes as a binary stream (gzip and zstd by their magic bytes)."""
    name = display(path)
    with open(path, "rb") as raw:
        head = raw.read(4)
        raw.seek(0)
        if head.startswith(_GZIP_MAGIC):
            stream = gzip.GzipFile(fileobj=raw)
        elif head.startswith(_ZSTD_MAGIC):
            try:
                import zstandard
            except ImportError:  # pragma: no cover - a core dependency
                raise TraceError(
                    f"{name}: zstd-compressed; reading it needs the 'zstandard' package "
                    "(pip install zstandard)"
                ) from None
            stream = io.BufferedReader(
                zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            )
        else:
            stream = raw
        try:
            yield stream
        except (OSError, EOFError) as exc:
            if stream is raw:
                raise
            raise TraceError(f"{name}: damaged or truncated compressed file ({exc})") from None
        except Exception as exc:
            if type(exc).__name__ == "ZstdError":
                raise TraceError(f"{name}: damaged zstd data ({exc})") from None
            raise


class NumberedLines:
    """Iterate a binary stream's lines as text, skipping ``#`` comments (header entries kept).

    ``line`` is the number (from 1) of the last line handed out, so a reader pulling lines one
    at a time (``csv.reader``) can name the line of each record. ``header`` collects
    ``# key=value`` entries in file order.
    """

    def __init__(self, stream, where: str):
        self._stream = stream
        self._where = where
        self.line = 0
        self.header: dict[str, str] = {}

    def __iter__(self):
        for raw in self._stream:
            self.line += 1
            try:
                text = raw.decode("utf-8-sig" if self.line == 1 else "utf-8")
            except UnicodeDecodeError:
                raise TraceError(
                    f"{self._where} line {self.line}: not UTF-8 text; is this a text log?"
                ) from None
            # Records start with "{" or a cell; look further only for lines that might be comments.
            if text[:1] in _COMMENT_STARTS and text.lstrip().startswith("#"):
                key, sep, value = text.lstrip()[1:].partition("=")
                if sep and key.strip():
                    self.header[key.strip()] = value.strip()
                continue
            yield text
