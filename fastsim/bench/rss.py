"""Resident memory of this process: current size and high-water mark.

Numba allocates its arrays outside Python's allocator, so ``tracemalloc`` does not see them; the
operating system's resident set size does. On Linux the high-water mark (``VmHWM``) can be reset
through ``/proc/self/clear_refs``, which lets one process measure several phases in turn;
elsewhere the ``getrusage`` maximum (never reset) is used and phases after the first are upper
bounds.
"""
from __future__ import annotations

import resource
import sys

__all__ = ["current_bytes", "peak_bytes", "reset_peak", "METHOD"]

_STATUS = "/proc/self/status"


def _status_kb(field: str) -> int | None:
    try:
        with open(_STATUS) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rusage_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes
    return peak if sys.platform == "darwin" else peak * 1024


def current_bytes() -> int:
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else _rusage_bytes()


def peak_bytes() -> int:
    kb = _status_kb("VmHWM")
    return kb * 1024 if kb is not None else _rusage_bytes()


def reset_peak() -> bool:
    """Reset the high-water mark to the current size; ``False`` where the system cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


METHOD = "VmHWM after clear_refs" if sys.platform.startswith("linux") else "getrusage ru_maxrss"
