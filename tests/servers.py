"""Real app processes for the tests that need them: gunicorn, with deploy/gunicorn.conf.py, on
a throwaway database, and a browser-like HTTP client. tests/test_limits_race.py,
test_worker_killed.py, test_instances.py and test_faults.py share these.

The servers run in development mode: gunicorn's config defaults to production, whose `Secure`
session cookie a client never sends back over plain http, so every request after the first
would look signed out. Nothing from the developer's shell (provider keys, another
DATABASE_URL) leaks in. Every server binds a free port of 127.0.0.1 and is stopped by its pid.
"""

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_SERVER = (TEST_DATABASE_URL or "postgresql://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
DEMO_PASSWORD = "twostep-demo"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_reason() -> str | None:
    """None when the PostgreSQL server answers, else why not (a skip's reason)."""
    import psycopg

    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.Error as error:
        return f"PostgreSQL does not answer at {PG_SERVER}: {str(error).strip()}"
    return None


@contextmanager
def throwaway_database(kind: str, folder: Path, prefix: str) -> Iterator[str]:
    """The URL of a new database: a SQLite file in `folder`, or a PostgreSQL database on the
    test server (skipped, saying why, when it does not answer), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'{prefix}.db'}"
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"twostep_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=5, autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{PG_SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def app_env(database_url: str, **settings: str) -> dict:
    """The servers' environment: development mode, fresh keys, a pool of 2, rate limits in
    memory with the per-IP ones out of the way, no purge thread; `settings` on top."""
    from cryptography.fernet import Fernet

    from app import ENVIRONMENT

    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    env.update(
        {
            "TWOSTEP_ENV": "development",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": "2",
            "RATELIMIT_STORAGE_URI": "memory://",
            "SIGN_IN_ATTEMPTS_PER_IP": "100000 per minute",
            "SEND_CODES_PER_IP": "100000 per hour",
            "PURGE_EVERY_SECONDS": "0",
            **settings,
        }
    )
    return env


def prepare(env: dict) -> None:
    """Migrate the database and load the demo logins (password DEMO_PASSWORD)."""
    for command in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run(
            [BIN / "flask", "--app", "app", *command],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=180,
        )


def log_tail(logs: list[Path], characters: int = 3000) -> str:
    """The end of each server's log: what to read when a test fails."""
    return "\n".join(
        f"--- {path.name}\n" + path.read_text(errors="replace")[-characters:] for path in logs
    )


def answers_200(url: str) -> bool:
    """Whether `url`/healthz answers 200."""
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def gunicorns(
    env: dict,
    logs: list[Path],
    workers: int | None = None,
    healthy: Callable[[str], bool] = answers_200,
    seconds: float = 90,
) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """One gunicorn per log file (with `workers` sync workers, else the env's
    WEB_CONCURRENCY), each waited for until `healthy`; yields their (URL, process) pairs and
    stops them, each by its own pid."""
    servers: list[tuple[str, subprocess.Popen]] = []
    if workers is not None:
        env = {**env, "WEB_CONCURRENCY": str(workers)}
    try:
        for log in logs:
            port = free_port()
            with open(log, "wb") as output:
                process = subprocess.Popen(
                    [
                        BIN / "gunicorn",
                        "-c",
                        "deploy/gunicorn.conf.py",
                        "--bind",
                        f"127.0.0.1:{port}",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=output,
                    stderr=output,
                )
            servers.append((f"http://127.0.0.1:{port}", process))
        deadline = time.monotonic() + seconds
        for url, process in servers:
            while not healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn at {url} did not start\n{log_tail(logs)}")
                time.sleep(0.2)
        yield servers
    finally:
        for _url, process in servers:
            if process.poll() is None:
                process.terminate()
        for _url, process in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class Browser:
    """One cookie jar that may use any instance, carrying the CSRF token of the last page it
    loaded, as a browser does (the hidden field, or htmx's X-CSRFToken header)."""

    TOKEN = re.compile(
        r'"X-CSRFToken": "([^"]+)"|<input[^>]*\bname="csrf_token"[^>]*\bvalue="([^"]+)"'
    )

    def __init__(self, timeout: float):
        import httpx

        self.http = httpx.Client(timeout=timeout, follow_redirects=False)
        self.token = None

    def close(self):
        self.http.close()

    def get(self, url: str, follow: bool = True):
        response = self.http.get(url, follow_redirects=follow)
        found = self.TOKEN.search(response.text)
        if found:
            self.token = found.group(1) or found.group(2)
        return response

    def post(self, url: str, data: dict | None = None):
        assert self.token, "load a page before posting a form"
        return self.http.post(url, data={**(data or {}), "csrf_token": self.token})

    def sign_in(self, base: str, email: str) -> None:
        """The password step of a demo login; the browser is then on the code box (its
        token loaded)."""
        self.get(f"{base}/login")
        response = self.post(f"{base}/login", {"email": email, "password": DEMO_PASSWORD})
        assert response.status_code == 303, response.text[:2000]
        page = self.get(f"{base}/login/verify")
        assert page.status_code == 200 and "Verification code" in page.text, page.text[:2000]


@contextmanager
def browser_maker(timeout: float) -> Iterator[Callable[[], Browser]]:
    """A maker of new browsers, each closed at the end."""
    made: list[Browser] = []

    def new() -> Browser:
        made.append(Browser(timeout))
        return made[-1]

    try:
        yield new
    finally:
        for browser in made:
            browser.close()
