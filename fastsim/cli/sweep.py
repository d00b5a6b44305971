"""``fastsim sweep``."""


def register(subparsers) -> None:
    pass
