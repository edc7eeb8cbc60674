"""Where a scenario's time goes (a script, not a test): seeds a throwaway database as
`bench/run.py` does, then runs one scenario's requests through Flask's test client in this
process and prints the CPU per request, or cProfile's table timed on CPU.

    .venv/bin/python bench/hotspots.py sqlite window              # CPU per request, 5 repeats
    .venv/bin/python bench/hotspots.py postgres verify --profile   # cProfile, by cumulative time
    .venv/bin/python bench/hotspots.py sqlite tab --profile --sort tottime --top 40

The test client costs more than gunicorn's parsing, so compare these numbers with each other
(before and after a change, on the same machine), not with bench/run.py's. The verify
scenarios use each seeded pending sign-in once, with the current time step's code.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402

SCENARIOS = ["floor", "floor_kept", "baseline", "window", "tab", "picker", "verify", "api_verify"]


def requests_for(plan: dict, scenario: str, count: int):
    """A function sending the k-th request of `scenario` through a test client."""
    import pyotp

    from bench.floor import create_floor_app
    from bench.server import create_bench_app

    if scenario in ("floor", "floor_kept"):
        client = create_floor_app().test_client()
        path = "/floor/kept" if scenario == "floor_kept" else "/floor"
        return lambda k: client.get(path), count, {"expect": 200}
    app = create_bench_app()
    client = app.test_client()
    spec = plan["scenarios"][scenario]
    cookie_name = plan["cookie_name"]
    if scenario == "baseline":
        return lambda k: client.get("/bench/baseline"), count, spec
    if scenario in ("window", "tab", "picker"):
        cookies = spec["cookies"]

        def page(k):
            client.set_cookie(cookie_name, cookies[k % len(cookies)])
            return client.get(spec["path"], headers=spec.get("headers", {}))

        return page, count, spec
    users = spec["users"]

    def verify(k):
        user = users[k]
        session, code = user["sessions"][0], pyotp.TOTP(user["secret"]).now()
        if scenario == "api_verify":
            body = {"pending_token": session["token"], "code": code}
            return client.post(spec["path"], json=body, headers=spec["headers"])
        client.set_cookie(cookie_name, session["cookie"])
        return client.post(spec["path"], data={"code": code, "csrf_token": session["csrf"]})

    return verify, min(count, len(users)), spec


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", choices=["sqlite", "postgres"])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=1000, help="per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="without --profile")
    parser.add_argument("--profile", action="store_true", help="print cProfile's table")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--out", help="also write the profile here (for snakeviz, pstats)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--redis",
        default=bench_run.REDIS_URL,
        help="Redis for the rate limits, as bench/run.py (memory:// when it does not answer)",
    )
    args = parser.parse_args()

    verify = args.scenario in ("verify", "api_verify")
    # A verify uses one pending sign-in per request, and each login once per time step.
    repeats = 1 if (args.profile or verify) else args.repeats
    with bench_run.Database(args.database, args.postgres) as database:
        env = bench_run.environment(database.url, bench_run.limit_storage(args.redis))
        plan_path = Path(database.folder) / "plan.json"
        subprocess.run(
            [
                bench_run.PYTHON,
                str(ROOT / "bench" / "run.py"),
                "--seed-only",
                "1000",
                str(plan_path),
            ],
            env={**os.environ, **env},
            check=True,
        )
        os.environ.update(env)
        plan = json.loads(plan_path.read_text())
        send, count, spec = requests_for(plan, args.scenario, args.requests)
        import logging

        logging.getLogger("app").setLevel(logging.WARNING)  # the request log line's I/O

        def check(response):
            if response.status_code != spec["expect"]:
                sys.exit(f"{args.scenario}: {response.status_code} instead of {spec['expect']}")

        if not verify:
            for k in range(200):  # warm: templates compiled, statements prepared
                check(send(k))
        per_request, profiler = [], cProfile.Profile(time.process_time)
        for _ in range(repeats):
            started = time.process_time()
            if args.profile:
                profiler.enable()
            for k in range(count):
                check(send(k))
            if args.profile:
                profiler.disable()
            per_request.append((time.process_time() - started) / count * 1000)
        cpu = ", ".join(f"{ms:.3f}" for ms in per_request)
        print(
            f"{args.database} {args.scenario}: {count} requests x {repeats}: "
            f"median {statistics.median(per_request):.3f} ms CPU per request ({cpu})"
        )
        if args.profile:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
            if args.out:
                stats.dump_stats(args.out)


if __name__ == "__main__":
    main()
