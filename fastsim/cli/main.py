"""Entry point of the ``fastsim`` command.

Each command lives in its own module with a ``register(subparsers)`` function that adds its parser
and sets ``func``. Input errors (:class:`~fastsim.errors.FastsimError`, missing files) become one
line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__
from ..errors import FastsimError

# Modules under fastsim.cli, each registering one top-level command.
COMMAND_MODULES = ("trace", "replay", "curve", "bound", "sweep", "plan", "report", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastsim",
        description="Numba-JIT sweep engine for MoE expert-prefetching research.",
    )
    parser.add_argument("--version", action="version", version=f"fastsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except FastsimError as exc:
        print(f"fastsim: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        name = exc.filename if getattr(exc, "filename", None) else ""
        print(f"fastsim: error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastsim: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
