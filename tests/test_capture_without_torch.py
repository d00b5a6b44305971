"""Capture without torch: the install hint and a torch-free ``import fastsim``.

These need no torch, so they live apart from ``test_capture.py``, which is skipped as a whole
where the capture extra is missing.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from fastsim.cli.main import main
from fastsim.errors import FastsimError


def test_missing_torch_gives_install_hint(monkeypatch, tmp_path, capsys):
    from fastsim.capture import _deps

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(FastsimError, match=r"fastsim\[capture\]"):
        _deps.require_torch()
    out = tmp_path / "t.parquet"
    assert main(["trace", "capture", "--config", "tiny-mixtral", "--out", str(out)]) == 2
    assert "fastsim[capture]" in capsys.readouterr().err
    assert not out.exists()


def test_importing_fastsim_does_not_import_torch():
    code = "import sys, fastsim, fastsim.capture, fastsim.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
