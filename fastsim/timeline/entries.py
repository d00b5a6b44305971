"""One jitted entry point per (strategy, eviction policy) pair, compiled on first use.

Numba caches a function by its file and qualified name, and a closure over the hooks would miss
its cache in every new process. So each built-in pair gets its own module-level-style function:
the template's code object with the pair's hooks bound as globals and a qualified name of its
own (``replay__top_k__lfu``), so its compiled code lands in, and loads from, its own cache file.
fastsim's cache folder is keyed by a hash of all of its sources (:mod:`fastsim._jit`), so an edit
to any hook recompiles. A pair with a user strategy or a user policy compiles once per process,
unless each user part was registered with ``cache=True``: then its name also carries a digest of
the user hooks' source files (``replay__mine__lru__u3f...``), so an edit there is a new name.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
import types

from numba import njit

from .._jit import kernel
from .core import no_feedback, run_timeline
from .demand import run_demand_policy
from .execution import run_execution

__all__ = ["entry_for", "execution_entry_for", "cacheable"]

_ENTRIES: dict = {}


def _template(sched, cost, config, params, layout, ev_params):
    return run_timeline(
        sched, cost, config, params, layout, ev_params,
        STRATEGY_INIT, STRATEGY_OBSERVE, POLICY, STRATEGY_FEEDBACK,  # noqa: F821
    )


def _demand_template(sched, cost, config, params, layout, ev_params):
    return run_demand_policy(sched, cost, config, params, layout, ev_params, STRATEGY_INIT, STRATEGY_OBSERVE, POLICY)  # noqa: F821


def _execution_template(sched, cost, xcost, config, xconfig, params, layout, ev_params, r_prefill):
    return run_execution(  # noqa: F821
        sched, cost, xcost, config, xconfig, params, layout, ev_params, r_prefill,
        STRATEGY_INIT, STRATEGY_OBSERVE, POLICY, STRATEGY_FEEDBACK,  # noqa: F821
    )


def execution_entry_for(strategy, policy, cached: bool):
    """The execution-timeline entry point (SPEC section 7) of a pair:
    ``replay(sched, cost, xcost, config, xconfig, params, layout, ev_params, r_prefill)``."""
    return _specialise(strategy, policy, cached, _execution_template, "execute")


def entry_for(strategy, policy, cached: bool):
    """The entry point ``replay(sched, cost, config, params, layout, ev_params)`` of a pair.

    ``strategy`` is a :class:`~fastsim.strategies.StrategyDef`, ``policy`` a
    :class:`~fastsim.eviction.EvictionDef`; ``cached`` for built-in pairs.
    """
    # a strategy that never prefetches (on-demand) runs the shorter demand-only timeline, which
    # has no feedback hook (on-demand asks for none)
    template = _demand_template if strategy.builtin and strategy.name == "on-demand" else _template
    return _specialise(strategy, policy, cached, template, "replay")


def cacheable(strategy, policy) -> bool:
    """Whether a pair's entry points may live in the on-disk cache: each part built in, or a
    user part registered with ``cache=True`` whose hooks' source files can be read."""
    return all(d.builtin or (d.cache and _user_digest(d) is not None) for d in (strategy, policy))


def _hook_functions(defn) -> list:
    if hasattr(defn, "observe"):
        return [defn.init, defn.observe] + ([defn.feedback] if defn.feedback is not None else [])
    return list(defn.hooks)


#: id(definition) -> (definition, digest): each user definition's files are read once
_DIGESTS: dict = {}


def _user_digest(defn) -> str | None:
    """A digest of the qualified names and source files of a user definition's hooks, read once
    per definition; None when a source file cannot be read (a notebook cell, a string compiled
    at run time)."""
    known = _DIGESTS.get(id(defn))
    if known is None or known[0] is not defn:
        known = _DIGESTS[id(defn)] = (defn, _read_digest(defn))
    return known[1]


def _read_digest(defn) -> str | None:
    digest = hashlib.blake2b(digest_size=6)
    for fn in _hook_functions(defn):
        py = getattr(fn, "py_func", fn)
        try:
            source = inspect.getsourcefile(py)
            with open(source, "rb") as fh:
                digest.update(fh.read())
        except (TypeError, OSError):
            return None
        digest.update(f"{py.__module__}.{py.__qualname__}".encode())
    return digest.hexdigest()


def _specialise(strategy, policy, cached, template, prefix):
    key = (prefix, strategy.name, policy.name, id(strategy.observe), id(strategy.feedback), id(policy.hooks))
    fn = _ENTRIES.get(key)
    if fn is None:
        name = f"{prefix}__{_ident(strategy.name)}__{_ident(policy.name)}"
        users = [_user_digest(d) for d in (strategy, policy) if not d.builtin]
        if cached and users:
            name += "__u" + "".join(users)
        scope = dict(globals())
        # a strategy without feedback gets the no-op hook, which numba inlines away
        feedback = strategy.feedback if strategy.feedback is not None else no_feedback
        scope.update(STRATEGY_INIT=strategy.init, STRATEGY_OBSERVE=strategy.observe,
                     POLICY=_hooks_module(policy.hooks, name), STRATEGY_FEEDBACK=feedback)
        py = types.FunctionType(template.__code__, scope, name)
        py.__qualname__ = name
        py.__module__ = __name__
        fn = kernel(py) if cached else njit(nogil=True)(py)
        _ENTRIES[key] = fn
    return fn


def _hooks_module(hooks, name: str) -> types.ModuleType:
    """The policy's hooks as attributes of a module object.

    Numba inlines an ``inline="always"`` callee at its IR level only when it can resolve the
    callee before typing: a global function, or an attribute of a global *module*. The cores
    call ``policy.victim(...)`` on their ``policy`` argument; bound to a module here, that chain
    resolves and every hook is inlined into the core (a namedtuple of hooks is not resolvable,
    and its hooks stayed separate functions, called with reference counting of every array they
    take: measured 1.5-2x of a policy's replay time).
    """
    mod = types.ModuleType(f"{__name__}.hooks__{name}")
    for field, fn in hooks._asdict().items():
        setattr(mod, field, fn)
    sys.modules[mod.__name__] = mod  # so a cached entry point's globals resolve by name
    return mod


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
