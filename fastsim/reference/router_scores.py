"""Per-``(step, layer)`` router scores of the reference schedule, as SPEC section 6 defines them.

For each expert of ``R``: the router weights its active tokens give it, summed in slot order as
float64, divided by the active tokens. ``None`` when the trace has no scores.
"""
from __future__ import annotations

__all__ = ["entry_scores"]


def entry_scores(schedule, s, l):
    """``{expert: score}`` for ``R(s, l)``, or ``None`` without router scores."""
    scores = getattr(schedule, "scores", None)
    if scores is None:
        return None
    rows = schedule.steps[s]
    total: dict[int, float] = {}
    for t in rows:
        for e, w in zip(schedule.experts[t][l], scores[t][l]):
            if int(e) >= 0:
                total[int(e)] = total.get(int(e), 0.0) + float(w)
    return {e: v / len(rows) for e, v in total.items()}
