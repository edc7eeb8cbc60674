"""bench/: the benchmark still runs end to end on a tiny scale - seeding, gunicorn, the load
generator for every scenario - and each scenario's requests get the answer they should (a
sign-in that is sent back to /login, say, counts as an error, not as a sign-in).

Numbers are not checked here (README "Benchmark"): only that every scenario measured something,
without errors, within the SQL statement budgets, with the server's and the client's CPU per
request read and the shares of the floor computed both ways."""

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench  # noqa: E402


@pytest.fixture
def bench_args():
    return argparse.Namespace(
        seconds=0.5,
        rounds=1,
        concurrency=2,
        postgres="postgresql://postgres@127.0.0.1:5432",
        limits="memory://",
        scenarios=bench.SCENARIOS,
    )


def test_every_scenario_runs_without_errors_on_sqlite(bench_args, capsys):
    results = bench.measure("sqlite", 50, bench_args)

    assert set(results) == set(bench.SCENARIOS)
    for name, row in results.items():
        assert row["requests"] > 0, name
        assert row["errors"] == [], (name, row["errors"])
        assert row["rps"] > 0, name
        # The gunicorn processes' CPU was read (a clock tick is 10 ms: more than none).
        assert row["server_cpu_ms"] > 0, name
        assert row["client_cpu_ms"] > 0, name
        assert row["cpu_share"] > 0, name
    assert results["floor"]["share"] == results["floor"]["cpu_share"] == 1
    assert results["floor_kept"]["kept_cpu_share"] == 1
    assert all(row["kept_cpu_share"] > 0 for row in results.values())
    # The floor app is not TwoStep (no query counter), the baseline is.
    assert results["floor"]["queries"] is None
    assert results["baseline"]["queries"] == 1
    for name, most in bench.QUERY_BUDGET.items():
        assert 0 < results[name]["queries_median"] <= most, name
        assert results[name]["queries"] <= most + 1, name  # a last_seen_at refresh
    # The answers are the pages they should be: a partial is smaller than its page.
    assert results["window"]["bytes"] > 5 * results["tab"]["bytes"]
    checks = bench.verdicts([{"database": "sqlite", "users": 50, "results": results}])
    assert any("password step" in line for line in checks)
    assert any("verify at" in line and "server CPU per request" in line for line in checks)
    assert "authenticator verify" in bench.table(
        [{"database": "sqlite", "users": 50, "results": results}]
    )
