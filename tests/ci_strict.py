"""Under CI=true a skipped test is an error: CI cannot pass with half the suite skipped because
PostgreSQL, Redis or Chromium was missing. tests/conftest.py imports these hooks, so `make test`
is the same command everywhere; outside CI, skips stay skips and say why.

A test that skips by the run's choice rather than for a missing service (a PostgreSQL-only test
during the SQLite pass) carries `@pytest.mark.ci_may_skip`.
"""

import os

import pytest

MARK = "ci_may_skip"


def strict() -> bool:
    """Whether skips are errors: in CI (`.ci/run` exports CI=true)."""
    return os.environ.get("CI") == "true"


def _reason(report) -> str:
    """The reason pytest gave for a skip (longrepr is (file, line, reason) for skips)."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _as_error(report, what: str) -> None:
    """Turn a skip report into a failure that says why CI refuses it."""
    report.outcome = "failed"
    report.longrepr = (
        f"{what} was skipped under CI=true ({_reason(report)}). In CI every service the tests "
        "need must answer and every tool must be installed (.ci/run starts and installs them); "
        f"a skip that is the run's own choice is marked @pytest.mark.{MARK}."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that skipped (at set-up, in its body or by a skip mark) fails instead, in CI."""
    outcome = yield
    report = outcome.get_result()
    expected = hasattr(report, "wasxfail") or item.get_closest_marker(MARK) is not None
    if report.skipped and strict() and not expected:
        _as_error(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module that skipped as a whole (pytest.importorskip at its top) fails instead, in CI."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and strict():
        _as_error(report, f"The module {collector.nodeid}")
