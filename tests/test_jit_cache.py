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


USER_STRATEGY = '''
import numpy as np
from numba import njit


@njit
def init(num_layers, num_experts, top_k, params):
    return (np.zeros(1, np.int64),)


@njit
def observe(state, params, sched, s, l, experts, counts, out):
    # want expert WANTED of the next layer
    out[0] = ((l + 1) % sched.num_layers) * sched.num_experts + WANTED
    return 1
'''

USER_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import fastsim, mine
from fastsim.eviction import get_eviction
from fastsim.strategies import get_strategy, register_strategy
from fastsim.timeline.entries import cacheable, entry_for
register_strategy("mine", mine.init, mine.observe, cache=sys.argv[2] == "cache")
trace = fastsim.Trace.from_arrays(np.array([[[0], [1]], [[2], [3]], [[0], [3]]] * 3), 128, None)
r = fastsim.replay(trace, "mine", "switch-base-128[0,1]", "rtx3090", cache_slots=3)
strategy, policy = get_strategy("mine"), get_eviction("lru")
entry = entry_for(strategy, policy, cached=cacheable(strategy, policy))
print(cacheable(strategy, policy), entry.__name__, sum(entry.stats.cache_hits.values()), r.metrics["prefetch_loads"],
      r.metrics["hits"])
"""


def _user_run(tmp_path, wanted: int, mode: str) -> list[str]:
    (tmp_path / "mine.py").write_text(USER_STRATEGY.replace("WANTED", str(wanted)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", USER_PROBE, str(tmp_path), mode], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_user_strategy_with_cache_joins_the_disk_cache(tmp_path):
    """``register_strategy(..., cache=True)``: a second process loads the entry point from disk
    instead of compiling it; an edit to the strategy's file is a new entry point, compiled, with
    the edited behaviour; without ``cache`` nothing is kept."""
    first = _user_run(tmp_path, 0, "cache")
    assert first[0] == "True" and "__u" in first[1] and first[2] == "0"
    again = _user_run(tmp_path, 0, "cache")
    assert again[1] == first[1] and int(again[2]) >= 1 and again[3:] == first[3:]
    edited = _user_run(tmp_path, 5, "cache")
    assert edited[1] != first[1] and edited[2] == "0"
    assert edited[3:] != first[3:]  # another wanted expert: other hits
    plain = _user_run(tmp_path, 0, "plain")
    assert plain[0] == "False" and plain[2] == "0" and plain[3:] == first[3:]
