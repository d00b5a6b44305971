"""Run :mod:`fastsim.bench.probe` in a fresh interpreter and read back its JSON line."""
from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["run_probe"]


def run_probe(*args: str, script: str | None = None) -> dict:
    """``python -m fastsim.bench.probe ARGS``, or ``python -c SCRIPT ARGS`` when given."""
    head = ["-c", script] if script is not None else ["-m", "fastsim.bench.probe"]
    cmd = [sys.executable, *head, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"benchmark probe {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])
