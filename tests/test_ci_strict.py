"""tests/ci_strict.py: under CI=true a skip is an error; elsewhere it stays a skip."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = {
    "conftest.py": """
        from tests.ci_strict import pytest_make_collect_report, pytest_runtest_makereport
    """,
    "test_services.py": """
        import pytest

        def test_skips_in_its_body():
            pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")

        @pytest.mark.skipif(True, reason="no Redis answers on 127.0.0.1:6379")
        def test_skipped_by_a_mark():
            pass

        @pytest.fixture
        def browser():
            pytest.skip("Chromium is not installed")

        def test_skips_in_a_fixture(browser):
            pass

        @pytest.mark.ci_may_skip
        def test_skips_by_the_runs_choice():
            pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")

        @pytest.mark.xfail(reason="known")
        def test_expected_to_fail():
            assert False

        def test_runs():
            assert True
    """,
    "test_whole_module.py": """
        import pytest

        pytest.importorskip("a_module_nobody_installed")

        def test_never_collected():
            pass
    """,
}


@pytest.fixture
def run_suite(tmp_path):
    """Run the small suite above in its own pytest process, with or without CI=true."""
    for name, text in SUITE.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    ci_may_skip: a choice\n")

    def run(ci: bool, module: str = "test_services.py") -> subprocess.CompletedProcess:
        environment = {k: v for k, v in os.environ.items() if k != "CI"}
        environment["PYTHONPATH"] = str(ROOT)
        if ci:
            environment["CI"] = "true"
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", module],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_outside_ci_a_missing_service_is_a_skip(run_suite):
    result = run_suite(ci=False)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 4 skipped, 1 xfailed" in result.stdout
    assert run_suite(ci=False, module="test_whole_module.py").returncode == 5  # nothing ran


def test_under_ci_a_missing_service_is_an_error(run_suite):
    result = run_suite(ci=True)
    assert result.returncode == 1, result.stdout
    for test in ("test_skips_in_its_body", "test_skipped_by_a_mark", "test_skips_in_a_fixture"):
        assert f"FAILED test_services.py::{test}" in result.stdout or (
            f"ERROR test_services.py::{test}" in result.stdout
        )
    assert "was skipped under CI=true (PostgreSQL does not answer" in result.stdout
    assert "SKIPPED [1] test_services.py" in result.stdout  # the run's own choice
    assert "1 xfailed" in result.stdout and "1 passed" in result.stdout


def test_under_ci_a_module_that_skips_whole_is_an_error(run_suite):
    result = run_suite(ci=True, module="test_whole_module.py")
    assert result.returncode != 0
    assert "ERROR test_whole_module.py" in result.stdout
    assert "skipped under CI=true (could not import" in result.stdout
