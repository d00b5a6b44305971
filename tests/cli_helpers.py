"""Shared helpers for the command-line tests: the model they replay, running the CLI in this
process or as a real one, and the checks every flag test makes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fastsim
from fastsim.cli.main import main

REPO = Path(__file__).resolve().parents[1]
MODEL = "switch-base-128-decoder"  # 6 layers x 128 experts, top-1


def cli_json(capsys, argv):
    """The JSON ``argv --json`` prints; the command must succeed."""
    code = main(argv + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def run_cli(argv):
    """``argv`` run as the installed command line would be, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "fastsim.cli.main", *argv], capture_output=True, text=True, cwd=REPO)


def assert_replay_flags_equal_python_api(capsys, path, flags, kwargs):
    """``fastsim replay`` with ``flags`` reports what :func:`fastsim.replay` with ``kwargs`` does."""
    got = cli_json(capsys, ["replay", "--trace", str(path), "--model", MODEL] + flags)
    ref = fastsim.replay(fastsim.read_trace(path), model=MODEL, **kwargs)
    assert got["metrics"] == ref.metrics
    assert got["config"] == json.loads(json.dumps(ref.config))


def assert_replay_fails_in_one_line(capsys, path, flags, says):
    """``fastsim replay`` with ``flags`` exits 2 with one error line that contains ``says``."""
    code = main(["replay", "--trace", str(path), "--model", MODEL] + flags)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsim: error: "), err
    assert says in lines[0], lines[0]


def bad_sweep_stderr(tmp_path, spec_text: str) -> str:
    """The error line of ``fastsim sweep`` on a spec it rejects: exit 2, one line, no traceback,
    and no output folder."""
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text)
    proc = run_cli(["sweep", str(spec), "--out", str(tmp_path / "o"), "-q"])
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
    return proc.stderr
