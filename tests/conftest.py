"""Shared test settings.

Hypothesis example counts come from a profile: ``ci`` (the default, sized to keep ``.ci/run``
well under its time limit) or ``slow`` (``pytest --slow``, for local runs before a release).
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FASTSIM_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    print_blob=True,
)
settings.register_profile(
    "slow",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="larger hypothesis runs and slow checks")


def pytest_configure(config):
    settings.load_profile("slow" if config.getoption("--slow") else "ci")
