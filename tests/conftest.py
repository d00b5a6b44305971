"""Shared test settings.

Hypothesis example counts come from a profile: ``ci`` (the default, sized to keep ``.ci/run``
well under its time limit) or ``slow`` (``pytest --slow``, for local runs before a release). Tests
that need fewer or more examples than the profile scale it (``hypothesis_budget.examples``), never
fix a count of their own.

Every run draws a fresh Hypothesis seed, so successive CI runs explore different inputs; the seed
is printed at the top and at the end of the run, and ``--hypothesis-seed=N`` (or
``FASTSIM_HYPOTHESIS_SEED=N``) replays it. A failing example also prints its reproduction blob.

When ``CI`` is set, a skipped test fails the run: CI installs every extra, so a skip there means a
check silently did not happen.
"""
from __future__ import annotations

import os
import secrets

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FASTSIM_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "slow",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

_SKIPPED: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="larger hypothesis runs and slow checks")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    settings.load_profile("slow" if config.getoption("--slow") else "ci")
    # runs before Hypothesis's own plugin, which then forces this seed on every test
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = int(os.environ.get("FASTSIM_HYPOTHESIS_SEED") or secrets.randbits(32))


def _seed_line(config) -> str:
    seed = config.getoption("hypothesis_seed")
    return f"hypothesis seed {seed} (replay with --hypothesis-seed={seed} or FASTSIM_HYPOTHESIS_SEED={seed})"


def pytest_report_header(config):
    return [_seed_line(config), f"hypothesis profile {settings.get_current_profile_name()!r}"]


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminalreporter.write_line(_seed_line(config))
    if _SKIPPED and os.environ.get("CI"):
        terminalreporter.write_line(
            f"CI is set and {len(_SKIPPED)} test(s) were skipped; in CI every extra is installed, so "
            f"a skip is a failure: {', '.join(_SKIPPED[:10])}",
            red=True,
        )


def pytest_sessionfinish(session, exitstatus):
    if _SKIPPED and os.environ.get("CI") and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
