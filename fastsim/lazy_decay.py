"""The one constant of lazy decay that kernels and references must share to agree bit for bit.

Top-k and intelligent keep decayed counts as ``value * scale`` and multiply only ``scale`` on each
call. Before ``scale`` would fall below :data:`SCALE_FLOOR` it is folded back into the values
(one eager multiply); ``1 / SCALE_FLOOR`` stays far below the float64 maximum, so the scaled values
never overflow. Both implementations fold at the same call, so both round the same way.
"""
SCALE_FLOOR = 1e-150
