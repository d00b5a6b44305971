"""``fastsim bench``."""


def register(subparsers) -> None:
    pass
