"""``fastsim replay``."""


def register(subparsers) -> None:
    pass
