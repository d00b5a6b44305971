"""``fastsim report``."""


def register(subparsers) -> None:
    pass
