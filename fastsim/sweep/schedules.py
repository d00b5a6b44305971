"""Schedules shared with workers: built once in the parent, saved as ``.npy``, mapped read-only.

Every replay of a sweep over one ``(trace, batch size, batching)`` reuses its
:class:`~fastsim.timeline.schedule.Schedule`, built with every extra array its rows' eviction
policies read (next uses, router scores, request releases). The parent builds it once and writes its arrays to a
folder; workers map them with ``np.load(mmap_mode="r")`` (no copy, no pickling per task) and keep
the mapping for later tasks. Every replay of a sweep sees read-only arrays -- in the parent too --
so the kernels run with one numba type, the one the parent warms (``readonly=True`` arrays are a
different type from writable ones, and a type the parent never compiled would be compiled again
in every worker).

A schedule with prefill steps (SPEC section 7) is saved with the prefill bookkeeping its replays
read (:class:`~fastsim.timeline.prefill.Phases`: the phase of each access, each sequence's
prefill step, the decode tokens of each step), which workers cannot derive without the routing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..timeline.prefill import Phases
from ..timeline.recorded import CONTINUOUS, RECORDED
from ..timeline.schedule import Schedule

__all__ = ["readonly", "readonly_array", "save_schedule", "load_schedule", "load_phases", "schedule_dir_name",
           "is_saved"]

_ARRAYS = (
    "active", "r_ptr", "r_experts", "r_counts", "r_next", "key_first", "r_scores", "rel_ptr", "rel_keys", "rel_counts",
)
_PHASE_ARRAYS = tuple(f"phase_{name}" for name in Phases._fields)
_MAPPED: "OrderedDict[str, Schedule]" = OrderedDict()
_MAPPED_MAX = 64


def _ro(a: np.ndarray) -> np.ndarray:
    v = np.asarray(a).view(np.ndarray)
    v.flags.writeable = False
    return v


def readonly_array(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (no copy)."""
    return _ro(a)


def readonly(sched: Schedule) -> Schedule:
    """The same schedule with read-only views of its arrays (no copy)."""
    return sched._replace(**{name: _ro(getattr(sched, name)) for name in _ARRAYS})


def schedule_dir_name(fingerprint: str, batch_size: int, next_use: bool, scores: str | bool = False,
                      requests: bool = False, prefill: bool = False, batching: str = CONTINUOUS) -> str:
    """The folder of a saved schedule: the trace, the batch size, ``-rec`` for one step per
    recorded pass (continuous batching's names are unchanged), ``-pf`` for prefill steps and
    the extra arrays it holds (``-nu`` next uses, ``-sc<digest>`` router scores, which the
    fingerprint does not cover, ``-rq`` request releases)."""
    tag = "" if not scores else "-sc" + (scores if isinstance(scores, str) else "")
    extra = ("-rec" if batching == RECORDED else "") + ("-pf" if prefill else "") + ("-nu" if next_use else "")
    extra += tag + ("-rq" if requests else "")
    return f"{fingerprint}-b{batch_size}{extra}"


def is_saved(folder, phases: bool = False) -> bool:
    """Whether ``folder`` holds a complete saved schedule (every array of this version; the
    prefill bookkeeping too with ``phases``)."""
    folder = Path(folder)
    names = _ARRAYS + (_PHASE_ARRAYS if phases else ())
    return (folder / "schedule.json").is_file() and all((folder / f"{name}.npy").is_file() for name in names)


def save_schedule(sched: Schedule, folder, phases: Phases | None = None) -> Path:
    """Write ``sched``'s arrays (and ``phases``, for a schedule with prefill steps) to
    ``folder`` (created atomically; kept if it already exists, replaced when an older version
    left it without some array)."""
    folder = Path(folder)
    if is_saved(folder, phases is not None):
        return folder
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(sched, name)))
        if phases is not None:
            for name, array in zip(_PHASE_ARRAYS, phases):
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(array))
        (tmp / "schedule.json").write_text(
            json.dumps({"num_layers": sched.num_layers, "num_experts": sched.num_experts})
        )
        try:
            os.replace(tmp, folder)
        except OSError:
            if not is_saved(folder, phases is not None):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_schedule(folder) -> Schedule:
    """Map a saved schedule read-only; each process maps each folder once."""
    key = os.fspath(folder)
    sched = _MAPPED.get(key)
    if sched is not None:
        _MAPPED.move_to_end(key)
        return sched
    shape = json.loads((Path(key) / "schedule.json").read_text())
    arrays = {name: _ro(np.load(Path(key) / f"{name}.npy", mmap_mode="r")) for name in _ARRAYS}
    sched = Schedule(int(shape["num_layers"]), int(shape["num_experts"]), **arrays)
    _MAPPED[key] = sched
    if len(_MAPPED) > _MAPPED_MAX:
        _MAPPED.popitem(last=False)
    return sched


def load_phases(folder) -> Phases:
    """The prefill bookkeeping saved with a schedule, read-only (small: read, not mapped)."""
    return Phases(*(_ro(np.load(Path(folder) / f"{name}.npy")) for name in _PHASE_ARRAYS))
