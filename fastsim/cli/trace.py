"""``fastsim trace ...``: commands that make, import, inspect and describe routing traces."""
from __future__ import annotations

import importlib

# Modules under fastsim.cli, each registering one ``fastsim trace`` subcommand group.
TRACE_COMMAND_MODULES = ("trace_io", "trace_import", "trace_capture", "trace_stats")


def register(subparsers) -> None:
    parser = subparsers.add_parser("trace", help="make, import, inspect and describe routing traces")
    sub = parser.add_subparsers(dest="trace_command", required=True, metavar="SUBCOMMAND")
    for name in TRACE_COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
