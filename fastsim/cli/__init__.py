"""The ``fastsim`` command line."""
