"""Run :mod:`fastsim.bench.probe` in a fresh interpreter and read back its JSON line."""
from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["run_probe"]


def run_probe(*args: str) -> dict:
    cmd = [sys.executable, "-m", "fastsim.bench.probe", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"benchmark probe {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])
