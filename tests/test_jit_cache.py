"""fastsim keeps compiled kernels in a folder keyed by its sources (numba alone would reuse a
strategy's cached entry point after the timeline core it inlines had changed)."""
import os
import subprocess
import sys

PROBE = "import numba, fastsim; from fastsim._jit import kernel_cache_dir; print(numba.config.CACHE_DIR); print(kernel_cache_dir())"


def _probe(env):
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_cache_folder_is_keyed_by_the_sources(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    used, keyed = _probe(env)
    assert used == keyed
    assert keyed.startswith(str(tmp_path / "fastsim" / "kernels-"))


def test_numba_cache_dir_wins(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "mine"))
    used, _ = _probe(env)
    assert used == str(tmp_path / "mine")
