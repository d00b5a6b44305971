"""The references share no code with the kernels (issue: tests that can fail).

A reference that imports the kernel side's durations, configuration checks or metric derivation
checks nothing of them. These tests read the import statements of every module (no import is
run) and follow them through fastsim's own modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastsim"
KERNEL = ("fastsim.timeline", "fastsim.replay", "fastsim.strategies")
REFERENCE = ("fastsim.reference",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_path(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def imports_of(path: Path) -> set[str]:
    """The fastsim modules that ``path`` imports, at any depth of its body (lazy imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            for a in node.names:  # ``from . import x`` may name a module
                if module_path(f"{mod}.{a.name}") is not None:
                    found.add(f"{mod}.{a.name}")
    return {m for m in found if m == "fastsim" or m.startswith("fastsim.")}


def closure(start: list[str]) -> dict[str, str]:
    """Every fastsim module reachable from ``start`` through import statements, with the module
    that imported it. The top-level ``fastsim`` package is not followed: a submodule is reached
    by its own file, and ``fastsim/__init__`` only re-exports."""
    seen = {m: "" for m in start}
    todo = list(start)
    while todo:
        mod = todo.pop()
        path = module_path(mod)
        if path is None:
            continue
        for dep in imports_of(path):
            if dep != "fastsim" and dep not in seen:
                seen[dep] = mod
                todo.append(dep)
    return seen


def under(mod: str, roots) -> bool:
    return any(mod == r or mod.startswith(r + ".") for r in roots)


def reference_modules():
    return sorted(module_name(p) for p in (PACKAGE / "reference").glob("*.py"))


def kernel_modules():
    mods = []
    for root in KERNEL:
        p = module_path(root)
        if p is not None and p.name == "__init__.py":
            mods += [module_name(q) for q in p.parent.rglob("*.py")]
        elif p is not None:
            mods.append(root)
    return sorted(mods)


def test_the_walk_sees_imports():
    # the walk itself can fail: the kernel side does reach the timeline core
    assert "fastsim.timeline.core" in closure(["fastsim.replay"])
    assert "fastsim.reference.timeline" in closure(["fastsim.reference"])


@pytest.mark.parametrize("start", reference_modules())
def test_reference_imports_no_kernel_code(start):
    reached = closure([start])
    bad = {m: by for m, by in reached.items() if under(m, KERNEL)}
    assert not bad, f"{start} reaches kernel modules: {bad}"


@pytest.mark.parametrize("start", kernel_modules())
def test_kernels_import_no_reference(start):
    reached = closure([start])
    bad = {m: by for m, by in reached.items() if under(m, REFERENCE)}
    assert not bad, f"{start} reaches reference modules: {bad}"
