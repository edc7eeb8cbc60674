"""The benchmark (a script, not a test): seeds N users, starts gunicorn with 2 workers on SQLite
and on PostgreSQL (TwoStep, and beside it the floor: a bare Flask + peewee app doing one indexed
SELECT, bench/floor.py), drives each scenario from a separate process (bench/load.py, raw HTTP
over asyncio) and prints one table of requests/s, the server's CPU per request (gunicorn's
processes, from /proc), p50, p99, response size and SQL queries per request, each scenario's
share of the floor both ways (requests/s and server CPU per request), and the budgets.

    make bench                                   # 1,000 users, SQLite and PostgreSQL
    .venv/bin/python bench/run.py --users 1000 --users 100000 --seconds 5 --database postgres

Everything runs on this machine (127.0.0.1) and stops by itself; the numbers are also written
to bench/results/<time>.json.
"""

import argparse
import hashlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
SCENARIOS = [
    "floor",
    "floor_kept",
    "baseline",
    "window",
    "tab",
    "picker",
    "verify",
    "api_verify",
    "password",
]
LABELS = {
    "floor": "floor (bare Flask, 1 read)",
    "floor_kept": "floor, connection kept",
    "baseline": "baseline (1 indexed read)",
    "window": "2SV window, full page",
    "tab": "tab partial (HTMX)",
    "picker": "method picker (3 methods)",
    "verify": "authenticator verify",
    "api_verify": "API verify (JSON)",
    "password": "password step (argon2id)",
}
# The scenarios the floor app serves; every other one is TwoStep's.
FLOOR_SCENARIOS = {"floor", "floor_kept"}
# The sign-in scenarios whose p50 must not grow with the number of logins.
VERIFY_SCENARIOS = ["verify", "api_verify"]
# Budgets: the floor's server CPU per request over the scenario's (its share of the floor),
# and SQL statements per request.
CPU_BUDGET = {"verify": 0.60, "window": 0.65, "tab": 0.85, "api_verify": 0.60}
# The statement budgets are tests/test_queries.py's, for a typical request; one more is
# allowed at most: a signed-in session's once-a-minute last_seen_at refresh. verify: 6 since
# the attempt is reserved before the code is judged (Decisions 17).
QUERY_BUDGET = {"verify": 6, "window": 6, "tab": 3}
ACTIVE_SESSIONS = 200  # signed-in browsers used by the page scenarios
PASSWORD_LOGINS = 200  # logins whose email and password the password-step scenario sends
VERIFY_USERS = 10_000  # logins whose pending sign-ins the verify scenario completes (at most)
SESSIONS_PER_VERIFY_USER = 3  # one per time step: the one before, the current and the next


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Where the rate limits count unless --redis (or BENCH_REDIS) says otherwise.
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")


def limit_storage(redis_url: str) -> str:
    """Where the rate limits count: Redis, as in production, when it answers; else the
    process's memory (each gunicorn worker then counts alone, as no deployment should).
    Anything but a redis:// address (memory://, say) is used as it is."""
    import redis

    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        return redis_url
    try:
        redis.Redis.from_url(redis_url, socket_timeout=1).ping()
    except redis.RedisError:
        return "memory://"
    return redis_url


def environment(database_url: str, limits_url: str = "memory://") -> dict:
    from cryptography.fernet import Fernet

    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "TWOSTEP_ENV": "production",
        # No provider here: codes and emails stay in the outbox table.
        "OUTBOX_IN_PRODUCTION": "1",
        # One client address sends everything here: the per-IP limits would measure themselves.
        "SIGN_IN_ATTEMPTS_PER_IP": "1000000 per minute",
        "SEND_CODES_PER_IP": "1000000 per minute",
        "RATELIMIT_STORAGE_URI": limits_url,
    }


class Database:
    """A throwaway database: a file in a temporary folder, or a PostgreSQL database."""

    def __init__(self, kind: str, server: str):
        self.kind = kind
        self.server = server.rstrip("/")
        self.folder = tempfile.mkdtemp(prefix="twostep-bench-")
        self.name = f"twostep_bench_{uuid.uuid4().hex[:8]}"

    @property
    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder}/bench.db"
        return f"{self.server}/{self.name}"

    def _admin(self, statement: str) -> None:
        import psycopg

        connection = psycopg.connect(f"{self.server}/postgres", autocommit=True)
        with connection.cursor() as cursor:
            cursor.execute(statement)
        connection.close()

    def __enter__(self):
        if self.kind == "postgres":
            self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc):
        if self.kind == "postgres":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        for path in Path(self.folder).glob("*"):
            path.unlink()
        os.rmdir(self.folder)


def seed(env: dict, users: int, plan_path: Path) -> None:
    """Create the logins (an authenticator app and an email each), sessions, and the plan."""
    os.environ.update(env)
    from itsdangerous import URLSafeTimedSerializer

    import models
    from app import create_app
    from models import crypto, migrations
    from models.clock import system_now
    from models.events import SIGNED_IN, SecurityEvent
    from models.people import FAMILY, Center, Membership, User
    from models.sessions import ACTIVE, APP, PENDING, UserSession
    from models.verification import EMAIL, SMS, TOTP, VerificationMethod
    from services.account.passwords import hash_password

    app = create_app()
    serializer = app.session_interface.get_signing_serializer(app)
    csrf_signer = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token")
    with app.app_context():
        database = models.db
        database.connect(reuse_if_open=True)
        migrations.upgrade(database)
        password_hash = hash_password("bench-password")
        moment = system_now()
        center = Center.create(name="Bench Early Learning", created_at=moment)
        secrets_by_user = {}
        active_count = min(ACTIVE_SESSIONS, users)
        # The picker's logins: the last ones (apart from the window's, given enough logins).
        picker_ids = range(users - active_count + 1, users + 1)
        chunk = 1000
        for start in range(1, users + 1, chunk):
            ids = range(start, min(users, start + chunk - 1) + 1)
            with database.atomic():
                User.insert_many(
                    [
                        {
                            "id": i,
                            "email": f"bench{i}@example.com",
                            "name": f"Bench Person {i}",
                            "password_hash": password_hash,
                            "two_step_enabled": True,
                            "created_at": moment,
                        }
                        for i in ids
                    ]
                ).execute()
                Membership.insert_many(
                    [{"user": i, "center": center.id, "role": FAMILY} for i in ids]
                ).execute()
                rows = []
                for i in ids:
                    key = pyotp_secret() if i <= VERIFY_USERS or i <= ACTIVE_SESSIONS else "A" * 32
                    secrets_by_user[i] = key
                    rows.append(
                        {
                            "id": 2 * i - 1,
                            "user": i,
                            "kind": TOTP,
                            "secret": crypto.encrypt(key),
                            "created_at": moment,
                        }
                    )
                    rows.append(
                        {
                            "id": 2 * i,
                            "user": i,
                            "kind": EMAIL,
                            "destination": f"bench{i}@example.com",
                            "created_at": moment,
                        }
                    )
                # The picker's logins have a text message number too: three methods to list.
                rows.extend(
                    {
                        "id": 2 * users + i,
                        "user": i,
                        "kind": SMS,
                        "destination": f"+120155501{i % 100:02d}",  # 555-01xx: fictional
                        "created_at": moment,
                    }
                    for i in ids
                    if i in picker_ids
                )
                VerificationMethod.insert_many(rows).execute()
                SecurityEvent.insert_many(
                    [
                        {
                            "user": i,
                            "actor": i,
                            "kind": SIGNED_IN,
                            "method_kind": TOTP,
                            "created_at": moment - timedelta(days=day),
                        }
                        for i in ids
                        for day in (1, 2)
                    ]
                ).execute()
        if database.obj.__class__.__name__.startswith(("Postgres", "Pooled")):
            for table in ("user", "verification_method"):
                database.execute_sql(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'(SELECT max(id) FROM "{table}"))'
                )

        def session_row(user_id: int, state: str, challenge_method: int | None, **kind) -> str:
            """A new session row (a browser's, or `kind=APP`); the token that names it."""
            token = secrets.token_urlsafe(32)
            # Stamped now, when serving is about to start (not when seeding began: seeding
            # 100,000 logins takes minutes), so every run starts from equally fresh sessions.
            fresh = system_now()
            UserSession.create(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                user=user_id,
                state=state,
                created_at=fresh,
                last_seen_at=fresh,
                authenticated_at=fresh,
                # A pending sign-in challenging this method (the row remembers it).
                challenge_method=challenge_method,
                **kind,
            )
            return token

        def cookie(user_id: int, state: str, challenge_method: int | None = None):
            """A signed session cookie naming a new session row, and its CSRF token."""
            token = session_row(user_id, state, challenge_method)
            # What Flask-WTF keeps in the session, and the signed token forms carry.
            raw_csrf = hashlib.sha1(os.urandom(64)).hexdigest()
            data = {"sid": token, "_permanent": True, "csrf_token": raw_csrf}
            return {"cookie": serializer.dumps(data), "csrf": csrf_signer.dumps(raw_csrf)}

        def app_pending(user_id: int, state: str, challenge_method: int) -> dict:
            """The mobile app's pending sign-in (a session row of kind "app"): its token."""
            return {"token": session_row(user_id, state, challenge_method, kind=APP)}

        def anonymous_form(user_id: int) -> dict:
            """A browser that has opened the sign-in page (its cookie holds only a CSRF
            token), and the form it sends."""
            raw_csrf = hashlib.sha1(os.urandom(64)).hexdigest()
            return {
                "cookie": serializer.dumps({"csrf_token": raw_csrf}),
                "data": {
                    "email": f"bench{user_id}@example.com",
                    "password": "bench-password",
                    "csrf_token": csrf_signer.dumps(raw_csrf),
                },
            }

        with database.atomic():
            active = [cookie(i, ACTIVE)["cookie"] for i in range(1, active_count + 1)]
            pickers = [cookie(i, PENDING)["cookie"] for i in picker_ids]
            # The browser's sign-ins (odd logins) and the app's (even ones): a login's time
            # steps are used once, whichever of the two asks.
            verifying, api_verifying = [], []
            for i in range(1, min(VERIFY_USERS, users) + 1):
                pending = cookie if i % 2 else app_pending
                (verifying if i % 2 else api_verifying).append(
                    {
                        "secret": secrets_by_user[i],
                        "sessions": [
                            pending(i, PENDING, challenge_method=2 * i - 1)
                            for _ in range(SESSIONS_PER_VERIFY_USER)
                        ],
                    }
                )
        database.close()

    plan = {
        "cookie_name": app.config["SESSION_COOKIE_NAME"],
        "scenarios": {
            "floor": {"method": "GET", "path": "/floor", "expect": 200},
            "floor_kept": {"method": "GET", "path": "/floor/kept", "expect": 200},
            "baseline": {"method": "GET", "path": "/bench/baseline", "expect": 200},
            "window": {"method": "GET", "path": "/profile/2sv", "expect": 200, "cookies": active},
            "tab": {
                "method": "GET",
                "path": "/profile/2sv/methods/text-message",
                "headers": {"HX-Request": "true"},
                "expect": 200,
                "cookies": active,
            },
            "picker": {
                "method": "GET",
                "path": "/login/verify/methods",
                "expect": 200,
                "cookies": pickers,
                "contains": ["Authenticator App", "Email", "Text Message"],
            },
            # Signed in: sent on to the home page (a used or unknown session goes to /login).
            "verify": {
                "path": "/login/verify",
                "expect": 303,
                "location": "/",
                "users": verifying,
            },
            # The mobile app's verify step (JSON): signed in, a bearer token in the answer.
            "api_verify": {
                "method": "POST",
                "path": "/api/v1/sign-in/verify",
                "json": True,
                "headers": {"Accept": "application/json"},
                "expect": 200,
                "json_has": "token",
                "users": api_verifying,
            },
            # The password step: a right password, on to the second step. Bounded by the
            # password hash on purpose; reported apart, with no budget against the baseline.
            "password": {
                "method": "POST",
                "path": "/login",
                "expect": 303,
                "location": "/login/verify",
                "forms": [anonymous_form(i) for i in range(1, min(PASSWORD_LOGINS, users) + 1)],
            },
        },
    }
    plan_path.write_text(json.dumps(plan))


def pyotp_secret() -> str:
    import pyotp

    return pyotp.random_base32()


def start_server(env: dict, port: int, log_path: Path, app: str) -> subprocess.Popen:
    """gunicorn serving `app` on `port` as production does (deploy/gunicorn.conf.py, two
    workers), once it answers /healthz."""
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    server = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            "-c",
            "deploy/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            # Production recycles a worker every ~5,000 requests (a guard against leaks); here
            # that would put a cold worker into some rounds and not others.
            "--max-requests",
            "0",
            app,
        ],
        cwd=ROOT,
        env={**os.environ, **env, "PURGE_EVERY_SECONDS": "0"},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"gunicorn did not start; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    """Stop a server start_server started (its whole process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def measure(kind: str, users: int, args) -> dict:
    """Seed a throwaway database, serve it (TwoStep and the floor), run the interleaved
    rounds of every scenario, and return one combined row per scenario."""
    print(f"-- {kind}, {users:,} users: seeding", flush=True)
    with Database(kind, args.postgres) as database:
        env = environment(database.url, args.limits)
        plan_path = Path(database.folder) / "plan.json"
        began = time.monotonic()
        seeder = subprocess.run(
            [PYTHON, __file__, "--seed-only", str(users), str(plan_path)],
            env={**os.environ, **env},
            cwd=ROOT,
            check=False,
        )
        if seeder.returncode:
            raise SystemExit("seeding failed")
        print(f"   seeded in {time.monotonic() - began:.0f} s; serving", flush=True)
        servers = {}
        rounds = {name: [] for name in args.scenarios}
        try:
            for which, app in (
                ("twostep", "bench.server:create_bench_app()"),
                ("floor", "bench.floor:create_floor_app()"),
            ):
                port = free_port()
                log = Path(database.folder) / f"gunicorn-{which}.log"
                servers[which] = (start_server(env, port, log, app), port)
            # Interleaved rounds: every scenario once per round, so a change in the machine's
            # load during the run touches them all alike; each round's shares are against that
            # round's floor, and the medians are reported.
            for index in range(args.rounds):
                for name in args.scenarios:
                    server, port = servers["floor" if name in FLOOR_SCENARIOS else "twostep"]
                    row = run_load(plan_path, name, port, server.pid, index, args)
                    rounds[name].append(row)
                    print(
                        f"   round {index + 1} {name:10} {row['rps']:8.1f} req/s  "
                        f"({row['requests']} in {row['seconds']} s)  "
                        f"server {row['server_cpu_ms'] or 0:5.2f} ms CPU  "
                        f"client {row['client_cpu_ms'] or 0:5.2f} ms CPU  "
                        f"p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  "
                        f"{row['queries']} queries"
                        + (f"  ERRORS {row['errors']}" if row["errors"] else ""),
                        flush=True,
                    )
        finally:
            for server, _ in servers.values():
                stop_server(server)
    return combine(rounds)


def run_load(plan_path: Path, name: str, port: int, server_pid: int, index: int, args) -> dict:
    """One round of one scenario, from its own process (bench/load.py)."""
    load = subprocess.run(
        [
            PYTHON,
            str(ROOT / "bench" / "load.py"),
            str(plan_path),
            name,
            "--base",
            f"http://127.0.0.1:{port}",
            "--server-pid",
            str(server_pid),
            "--seconds",
            str(args.seconds),
            "--concurrency",
            str(args.concurrency),
            "--part",
            f"{index}/{args.rounds}",
        ],
        capture_output=True,
        text=True,
        timeout=args.seconds * 4 + 60,
        check=False,
    )
    if load.returncode:
        raise SystemExit(f"load generator failed on {name}: {load.stderr[-2000:]}")
    return json.loads(load.stdout)


def median_of(rows: list[dict], key: str, digits: int = 2):
    """The median of one measurement over the rounds (None when no round has it)."""
    values = [row[key] for row in rows if row.get(key) is not None]
    return round(statistics.median(values), digits) if values else None


def cpu_shares_of(rows: list[dict], floors: list[dict]) -> list[float]:
    """Each round's floor server CPU per request over the scenario's."""
    return [
        floor["server_cpu_ms"] / row["server_cpu_ms"]
        for row, floor in zip(rows, floors, strict=True)
        if row["server_cpu_ms"] and floor["server_cpu_ms"]
    ]


def combine(rounds: dict) -> dict:
    """One row per scenario: medians over the rounds, and each round's share of that round's
    floor, both ways: requests/s over the floor's, and the floor's server CPU per request over
    the scenario's; and the CPU share against the floor that keeps its connection."""
    results = {}
    floors, kept_floors = rounds["floor"], rounds["floor_kept"]
    for name, rows in rounds.items():
        rps_shares = [
            row["rps"] / floor["rps"] if floor["rps"] else 0
            for row, floor in zip(rows, floors, strict=True)
        ]
        cpu_shares = cpu_shares_of(rows, floors)
        kept_shares = cpu_shares_of(rows, kept_floors)
        queries = [row["queries"] for row in rows if row["queries"] is not None]
        results[name] = {
            "rps": median_of(rows, "rps", 1),
            "share": round(statistics.median(rps_shares), 3),
            "server_cpu_ms": median_of(rows, "server_cpu_ms", 3),
            "cpu_share": round(statistics.median(cpu_shares), 3) if cpu_shares else None,
            "kept_cpu_share": round(statistics.median(kept_shares), 3) if kept_shares else None,
            "client_cpu_ms": median_of(rows, "client_cpu_ms", 3),
            "p50_ms": median_of(rows, "p50_ms"),
            "p99_ms": median_of(rows, "p99_ms"),
            "bytes": round(statistics.median(row["bytes"] for row in rows)),
            "queries": max(queries) if queries else None,
            "queries_median": median_of(rows, "queries_median", 1) if queries else None,
            "requests": sum(row["requests"] for row in rows),
            "errors": [error for row in rows for error in row["errors"]][:5],
            "rounds": rows,
        }
    return results


def verdicts(runs: list[dict]) -> list[str]:
    """The budgets, checked on each run."""
    lines = []
    for run in runs:
        results, label = run["results"], f"{run['database']}, {run['users']:,} users"
        for name, share in CPU_BUDGET.items():
            if name not in results:
                continue
            got = results[name]["cpu_share"] or 0
            kept = results[name]["kept_cpu_share"] or 0
            mark = "ok" if got >= share else "MISSED"
            lines.append(
                f"{label}: {name} at {got:.2f} of the floor's server CPU per request "
                f"(budget {share:.2f}; {results[name]['share']:.2f} of its requests/s; "
                f"{kept:.2f} of the floor that keeps its connection) {mark}"
            )
        for name, most in QUERY_BUDGET.items():
            if name not in results:
                continue
            got, typical = results[name]["queries"], results[name]["queries_median"]
            fits = got is not None and typical <= most and got <= most + 1
            lines.append(
                f"{label}: {name} {typical} queries typically, {got} at most (budget {most}, "
                f"and one more for the last_seen_at refresh) {'ok' if fits else 'MISSED'}"
            )
        if "window" in results and "tab" in results:
            ratio = results["window"]["bytes"] / max(1, results["tab"]["bytes"])
            mark = "ok" if ratio >= 5 else "MISSED"
            lines.append(f"{label}: full page {ratio:.1f}x the tab partial (budget 5x) {mark}")
        if "password" in results:
            password = results["password"]
            lines.append(
                f"{label}: password step {password['rps']:.0f} sign-ins/s, p50 "
                f"{password['p50_ms']:.0f} ms (bounded by argon2id on purpose; no budget)"
            )
        clients = [row["client_cpu_ms"] for row in results.values() if row["client_cpu_ms"]]
        if clients:
            lines.append(
                f"{label}: the load generator's own CPU per request "
                f"{min(clients):.2f}-{max(clients):.2f} ms"
            )
    by_key = {(run["database"], run["users"]): run for run in runs}
    for (database, users), run in sorted(by_key.items()):
        small = by_key.get((database, 1000))
        if users > 1000 and small:
            for name in VERIFY_SCENARIOS:
                if name not in run["results"] or name not in small["results"]:
                    continue
                big_p50 = run["results"][name]["p50_ms"]
                small_p50 = small["results"][name]["p50_ms"]
                ratio = big_p50 / small_p50 if small_p50 else 0
                mark = "ok" if ratio <= 1.2 else "MISSED"
                lines.append(
                    f"{database}: {name} p50 at {users:,} users is {ratio:.2f}x that at 1,000 "
                    f"(budget 1.2x) {mark}"
                )
    return lines


def table(runs: list[dict]) -> str:
    """The results as a text table: one line per database, size and scenario."""
    header = (
        f"{'database':9} {'users':>8}  {'scenario':27} {'req/s':>8} {'share':>6} "
        f"{'CPU ms':>7} {'share':>6} {'p50 ms':>7} {'p99 ms':>7} {'client':>7} "
        f"{'bytes':>7} {'SQL':>5}"
    )
    lines = [
        "share: of the floor's requests/s, then the floor's server CPU per request over the "
        "scenario's; CPU ms: the server's (gunicorn) per request; client: the load "
        "generator's CPU ms per request",
        header,
        "-" * len(header),
    ]
    for run in runs:
        for name in SCENARIOS:
            if name not in run["results"]:
                continue
            row = run["results"][name]
            sql = "-"
            if row["queries"] is not None and row["queries"] >= 0:
                typical = row["queries_median"]
                sql = f"{typical:g}" + (f"/{row['queries']}" if row["queries"] != typical else "")
            lines.append(
                f"{run['database']:9} {run['users']:>8,}  {LABELS[name]:27} {row['rps']:>8.1f} "
                f"{row['share']:>6.2f} {row['server_cpu_ms'] or 0:>7.3f} "
                f"{row['cpu_share'] or 0:>6.2f} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} "
                f"{row['client_cpu_ms'] or 0:>7.3f} {row['bytes']:>7} {sql:>5}"
            )
    return "\n".join(lines)


def machine() -> dict:
    load = os.getloadavg()
    memory = None
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        memory = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": [round(value, 2) for value in load],
    }


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--seed-only":
        seed(dict(os.environ), int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--users", type=int, action="append", help="logins to seed (repeatable)")
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of every scenario (medians)"
    )
    parser.add_argument(
        "--database", choices=["sqlite", "postgres", "both"], default="both", action="store"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server (a throwaway database is created and dropped there)",
    )
    parser.add_argument(
        "--redis",
        default=REDIS_URL,
        help="Redis for the rate limits, as in production (memory:// when it does not answer)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name in SCENARIOS if name not in FLOOR_SCENARIOS],
        help="measure only this scenario, beside the floor (repeatable; a quick look, not a "
        "report: the budgets' table needs every scenario)",
    )
    args = parser.parse_args()
    args.scenarios = (
        [name for name in SCENARIOS if name in FLOOR_SCENARIOS or name in args.only]
        if args.only
        else SCENARIOS
    )
    args.limits = limit_storage(args.redis)
    print(f"rate limits counted in {args.limits}", flush=True)
    users_list = args.users or [1000]
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    info = machine()
    runs = []
    for kind in kinds:
        for users in users_list:
            before = [round(value, 2) for value in os.getloadavg()]
            results = measure(kind, users, args)
            runs.append(
                {
                    "database": kind,
                    "users": users,
                    "results": results,
                    "load_average": {
                        "before": before,
                        "after": [round(value, 2) for value in os.getloadavg()],
                    },
                }
            )
    report = table(runs)
    checks = verdicts(runs)
    print()
    print(report)
    print()
    print("\n".join(checks))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(
        json.dumps(
            {
                "machine": info,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "rate_limit_storage": args.limits,
                "runs": runs,
                "budgets": checks,
            },
            indent=2,
        )
    )
    print(f"\nWritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
