"""The one place that sets how fastsim compiles kernels.

``cache=True`` keeps compiled kernels on disk across processes (sweep workers load them instead of
compiling); ``nogil=True`` lets threads run kernels side by side; fastmath stays off so kernel and
pure-Python reference round identically.
"""
from numba import njit

__all__ = ["kernel"]


def kernel(fn=None, **options):
    """``numba.njit`` with fastsim's defaults (``cache=True, nogil=True``)."""
    opts = {"cache": True, "nogil": True}
    opts.update(options)
    if fn is None:
        return lambda f: njit(**opts)(f)
    return njit(**opts)(fn)
