"""Error types for bad input.

Every problem a user can cause (a malformed trace, an unknown profile, an impossible cache, a bad
sweep spec) raises a subclass of :class:`FastsimError`, itself a :class:`ValueError`, with one
message that names the file, field or row and what was expected. The command line turns these
into one line on stderr and exit status 2.
"""


class FastsimError(ValueError):
    """Base class of every input error fastsim raises."""


class TraceError(FastsimError):
    """A routing trace (file or arrays) is malformed or contradicts its metadata."""


class ProfileError(FastsimError):
    """A model or hardware profile is unknown, malformed or inconsistent with the trace."""


class ConfigError(FastsimError):
    """A replay configuration is impossible: unknown strategy, bad parameter, cache too small."""


class SpecError(FastsimError):
    """A sweep spec is malformed."""
