"""The one place that sets how fastsim compiles kernels.

``cache=True`` keeps compiled kernels on disk across processes (sweep workers load them instead of
compiling); ``nogil=True`` lets threads run kernels side by side; fastmath stays off so kernel and
pure-Python reference round identically.

Numba's on-disk cache checks only the source file of the function it caches, not the files of the
functions it calls, so an upgraded or edited timeline core would silently run stale code inside
a strategy's cached entry point. fastsim therefore keeps its cache in a folder named by a hash of
all its sources, unless ``NUMBA_CACHE_DIR`` is set, which always wins.
"""
import hashlib
import os
from pathlib import Path

import numba
from numba import njit

__all__ = ["kernel", "kernel_cache_dir"]


def kernel_cache_dir() -> Path:
    """The compilation cache folder for this exact set of fastsim sources."""
    digest = hashlib.blake2b(digest_size=8)
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fastsim" / f"kernels-{numba.__version__}-{digest.hexdigest()}"


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(kernel_cache_dir())


def kernel(fn=None, **options):
    """``numba.njit`` with fastsim's defaults (``cache=True, nogil=True``)."""
    opts = {"cache": True, "nogil": True}
    opts.update(options)
    if fn is None:
        return lambda f: njit(**opts)(f)
    return njit(**opts)(fn)
