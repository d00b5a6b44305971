"""The README's "From an engine's log to a decision" walk-through, run as written.

Its Python block writes the log; each `fastsim ...` line of its shell block runs through the
command-line entry point in the same folder, and must exit 0. Then the plan's page must exist and
answer for the imported trace.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import fastsim
from fastsim.cli.main import main

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## From an engine's log to a decision"


def _blocks():
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, "the README lost its walk-through"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    python = re.findall(r"^```python\n(.*?)^```", section, flags=re.S | re.M)
    shell = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert len(python) == 1 and len(shell) == 1
    commands = shell[0].replace("\\\n", " ").strip().splitlines()
    return python[0], [shlex.split(c) for c in commands]


def test_readme_walkthrough_runs(tmp_path, monkeypatch, capsys):
    python, commands = _blocks()
    monkeypatch.chdir(tmp_path)
    exec(compile(python, str(README), "exec"), {"__name__": "readme"})
    assert Path("route.csv").exists()
    assert [c[0] for c in commands] == ["fastsim"] * 3
    for argv in commands:
        assert main(argv[1:]) == 0, argv
    trace = fastsim.read_trace("route.parquet")
    assert trace.num_sequences == 3 and trace.num_tokens == 72 and trace.num_layers == 32
    assert trace.prompt_tokens.tolist() == [8, 8, 8]
    page = Path("plan/plan.md").read_text(encoding="utf-8")
    assert "route.parquet" in page and "mixtral-8x7b" in page and "rtx3090" in page
    assert Path("plan/plan.parquet").exists()
    out = capsys.readouterr().out
    assert "Best configuration within 16 GB" in out
