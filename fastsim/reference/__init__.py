"""Pure-Python references: the timeline and the strategies, written to be obviously right.

Every kernel is tested against these on many random inputs; they are slow on purpose.
"""
from .timeline import ReferenceSchedule, replay_reference

__all__ = ["ReferenceSchedule", "replay_reference"]
