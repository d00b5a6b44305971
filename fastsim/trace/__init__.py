"""Routing traces: the in-memory form, Parquet I/O, generators, importers and statistics."""
from .model import Trace, expert_dtype
from .parquet import read_trace, write_trace

__all__ = ["Trace", "expert_dtype", "read_trace", "write_trace"]
