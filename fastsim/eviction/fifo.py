"""``fifo``: evict the key loaded earliest (load issue order); accesses change nothing.

The queue is the LRU module's linked list per partition without the move on access: a load
appends at the newest end and a victim search walks from the oldest, O(1) per event.
"""
from __future__ import annotations

from .base import Hooks, never_keep, no_access, no_position, no_step
from .lru import init, on_evict, on_load, victim

__all__ = ["HOOKS"]

HOOKS = Hooks(init, on_load, no_access, no_access, no_position, no_position, no_step, victim, on_evict, never_keep)
