"""libCacheSim as a peer: the flattened key stream of a top-1 trace as an oracleGeneral trace.

libCacheSim simulates a stream of object requests. For a top-1 trace replayed at batch size 1,
fastsim's on-demand timeline is a cache over the stream ``key = layer * E + expert`` in
``(token, layer)`` order with ``-1`` entries dropped (see ``tests/test_peer_libcachesim.py``), so
both simulators can be run on the same requests and must count the same hits.

The oracleGeneral binary format is one packed 24-byte record per request: ``uint32`` clock time,
``uint64`` object id, ``uint32`` object size and ``int64`` virtual time (request index) of the
next request for the same object, ``INT64_MAX`` when there is none. Belady needs the last field.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = ["ORACLE_GENERAL", "key_stream", "next_access", "write_oracle_general", "libcachesim_hits", "require"]

#: One oracleGeneral record (packed, little-endian).
ORACLE_GENERAL = np.dtype([("clock", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"), ("next_vtime", "<i8")])

NEVER = np.iinfo(np.int64).max

POLICIES = ("lru", "belady", "fifo", "lfu")
LABELS = {"lru": "LRU", "belady": "Belady", "fifo": "FIFO", "lfu": "LFU"}


def require():
    """The ``libcachesim`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import libcachesim
    except ImportError:
        raise ConfigError(
            "this benchmark case compares against libCacheSim: install it with "
            "'pip install libcachesim' (or pick other cases with --cases)"
        ) from None
    return libcachesim


def key_stream(trace) -> np.ndarray:
    """The keys a top-1 trace demands at batch size 1, in order.

    Returns
    -------
    ndarray (accesses,), int64
        ``layer * E + expert`` in ``(token, layer)`` order, ``-1`` entries dropped.
    """
    if trace.top_k != 1:
        raise ConfigError(f"the libCacheSim comparison needs a top-1 trace, this one has top_k = {trace.top_k}")
    ids = trace.experts[:, :, 0]
    keys = ids.astype(np.int64) + np.arange(trace.num_layers, dtype=np.int64) * trace.num_experts
    return keys[ids >= 0]


def next_access(keys: np.ndarray) -> np.ndarray:
    """Per request, the index of the next request for the same key, or ``INT64_MAX``.

    Parameters
    ----------
    keys : ndarray (n,), int64

    Returns
    -------
    ndarray (n,), int64
    """
    order = np.argsort(keys, kind="stable")
    out = np.full(keys.shape[0], NEVER, np.int64)
    same = keys[order[1:]] == keys[order[:-1]]
    out[order[:-1][same]] = order[1:][same]
    return out


def write_oracle_general(path, keys: np.ndarray) -> None:
    """Write ``keys`` as unit-sized requests (clock = request index) in oracleGeneral format."""
    records = np.empty(keys.shape[0], ORACLE_GENERAL)
    records["clock"] = np.arange(keys.shape[0], dtype=np.uint64).astype(np.uint32)
    records["obj_id"] = keys
    records["obj_size"] = 1
    records["next_vtime"] = next_access(keys)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    records.tofile(tmp)
    os.replace(tmp, path)


def reader(path):
    """A fresh libCacheSim reader over an oracleGeneral file."""
    lcs = require()
    return lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)


def hashpower_for(num_keys: int) -> int:
    """log2 of the hash-table buckets for ``num_keys`` distinct objects.

    libCacheSim's default (2**24 buckets, 128 MiB) spreads a few thousand keys over memory that
    does not fit in any CPU cache, costing it a quarter to a half of its speed here; a table sized
    to the key space is the fair baseline.
    """
    return max(10, int(num_keys).bit_length() + 1)


def make_cache(policy: str, slots: int, num_keys: int | None = None):
    """A libCacheSim cache holding ``slots`` unit-sized objects (its size counts bytes).

    ``num_keys`` (distinct objects in the stream, e.g. ``L * E``) sizes its hash table.
    """
    lcs = require()
    if policy not in POLICIES:
        raise ConfigError(f"unknown libCacheSim policy {policy!r}: expected one of {', '.join(POLICIES)}")
    cls = {"lru": lcs.LRU, "belady": lcs.Belady, "fifo": lcs.FIFO, "lfu": lcs.LFU}[policy]
    if num_keys is None:
        return cls(int(slots))
    return cls(int(slots), hashpower=hashpower_for(num_keys))


def libcachesim_hits(path, policy: str, slots: int, num_keys: int | None = None) -> int:
    """Hits of libCacheSim's ``policy`` over an oracleGeneral file through its C trace loop."""
    n = Path(path).stat().st_size // ORACLE_GENERAL.itemsize
    miss_ratio, _ = make_cache(policy, slots, num_keys).process_trace(reader(path))
    # process_trace reports a ratio; a double holds hits / n exactly enough to round back
    return int(round((1.0 - miss_ratio) * n))
