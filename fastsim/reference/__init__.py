"""Pure-Python references: the timeline and the strategies, written to be obviously right.

Every kernel is tested against these on many random inputs; they are slow on purpose. Nothing
here imports the kernel side (``fastsim.timeline``, ``fastsim.replay``, ``fastsim.strategies``),
and the kernel side imports nothing from here: what both need is in small neutral modules
(``fastsim.numerics``, ``fastsim.plugin_references``).
"""
from .timeline import ReferenceResult, ReferenceSchedule, replay_reference

__all__ = ["ReferenceResult", "ReferenceSchedule", "replay_reference"]
