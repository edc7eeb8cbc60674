"""Several instances behind a load balancer: two gunicorn processes on two ports of 127.0.0.1,
one PostgreSQL database (a throwaway one, created and dropped here) and one Redis database
(flushed before and after), the same SECRET_KEY and ENCRYPTION_KEYS. A browser (one cookie
jar) moves between them:

- a code asked for through instance A is accepted through instance B;
- wrong codes typed on A and on B add up to one pause;
- a per-IP rate limit (SIGN_IN_ATTEMPTS_PER_IP, set low) trips across both;
- a session started on A works on B, and signing out on A ends it on B.

The instances run in development mode: gunicorn's config defaults to production, whose
`Secure` session cookie a client never sends back over plain http, so every request after
the first would look signed out. Skips, saying why, when PostgreSQL or Redis don't answer.
"""

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import TEST_DATABASE_URL

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_SERVER = (TEST_DATABASE_URL or "postgresql://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases this test may claim (others belong to tests/test_rate_limits.py (14) and to
# anything a developer runs on 0).
REDIS_DATABASES = range(1, 14)
CLAIM_KEY = "twostep:test_instances:claim"
DEMO_PASSWORD = "twostep-demo"
SIGN_IN_LIMIT = 8  # per minute and per IP, shared by every instance through Redis
TIMEOUT = 10  # seconds, every HTTP request


def _postgres_answers() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    import psycopg

    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.Error as error:
        return f"PostgreSQL does not answer at {PG_SERVER}: {str(error).strip()}"
    return None


def _redis_answers() -> str | None:
    import redis

    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3).ping()
    except redis.RedisError as error:
        return f"Redis does not answer at {REDIS_HOST}:{REDIS_PORT}: {error}"
    return None


def _claim_redis_database():
    """A Redis database nobody else is using (empty), claimed with a key of ours, then
    flushed: two test runs side by side never share rate-limit counters."""
    import redis

    for number in REDIS_DATABASES:
        store = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=3)
        if store.set(CLAIM_KEY, os.getpid(), nx=True, ex=3600) and store.dbsize() == 1:
            return number, store
    pytest.skip("no free Redis database (1-13) to run two instances against")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """Two app processes sharing one database and one Redis."""

    def __init__(self, database_url: str, store, env: dict, logs: list[Path]):
        self.database_url = database_url
        self.store = store
        self.env = env
        self.logs = logs
        self.a = self.b = ""

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:] for path in self.logs
        )

    def sql(self, statement: str, parameters=()):
        import psycopg

        with (
            psycopg.connect(self.database_url, connect_timeout=5, autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else None

    def last_code(self, to: str) -> str:
        """The 6 digits of the newest message the outbox holds for `to`."""
        rows = self.sql('SELECT body FROM outbox_message WHERE "to" = %s ORDER BY id DESC', (to,))
        assert rows, f"no message was sent to {to}"
        return re.search(r"\b(\d{6})\b", rows[0][0]).group(1)

    def flush_limits(self) -> None:
        """Forget every rate-limit counter (each test starts from none)."""
        self.store.flushdb()
        self.store.set(CLAIM_KEY, os.getpid(), ex=3600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for reason in (_postgres_answers(), _redis_answers()):
        if reason:
            pytest.skip(reason)
    import psycopg
    from cryptography.fernet import Fernet

    from app import ENVIRONMENT

    folder = tmp_path_factory.mktemp("instances")
    name = f"twostep_instances_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=5, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    number, store = _claim_redis_database()
    store.flushdb()
    store.set(CLAIM_KEY, os.getpid(), ex=3600)

    # Nothing from the developer's shell (provider keys, another DATABASE_URL) leaks in.
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    env.update(
        {
            "TWOSTEP_ENV": "development",  # plain-http cookies (see the module's docstring)
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": f"{PG_SERVER}/{name}",
            "DATABASE_POOL_SIZE": "2",  # pooled, as in production
            "RATELIMIT_STORAGE_URI": f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}",
            "SIGN_IN_ATTEMPTS_PER_IP": f"{SIGN_IN_LIMIT} per minute",
            "SEND_CODES_PER_IP": "100 per hour",
            "PURGE_EVERY_SECONDS": "0",
            "WEB_CONCURRENCY": "1",
        }
    )
    servers = []
    logs = [folder / "a.log", folder / "b.log"]
    made = Cluster(env["DATABASE_URL"], store, env, logs)
    try:
        for command in (["db", "upgrade"], ["seed-demo"]):
            subprocess.run(
                [BIN / "flask", "--app", "app", *command],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=120,
            )
        urls = []
        for log in logs:
            port = _free_port()
            with open(log, "wb") as output:
                servers.append(
                    subprocess.Popen(
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
                )
            urls.append(f"http://127.0.0.1:{port}")
        _wait_until_healthy(urls, servers, made)
        made.a, made.b = urls
        yield made
    finally:
        for server in servers:  # each stopped by its own pid
            if server.poll() is None:
                server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        store.flushdb()
        store.close()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _wait_until_healthy(urls, servers, cluster, seconds=45):
    import httpx

    deadline = time.monotonic() + seconds
    for url, server in zip(urls, servers, strict=True):
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"instance {url} did not start\n{cluster.log_tail()}")
            time.sleep(0.2)


@pytest.fixture
def instances(cluster):
    cluster.flush_limits()
    return cluster


class Browser:
    """One cookie jar used against any instance, carrying the CSRF token of the last page
    it loaded, as a browser does (the hidden field, or htmx's X-CSRFToken header)."""

    TOKEN = re.compile(
        r'"X-CSRFToken": "([^"]+)"|<input[^>]*\bname="csrf_token"[^>]*\bvalue="([^"]+)"'
    )

    def __init__(self):
        import httpx

        self.http = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
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
        response = self.http.post(url, data={**(data or {}), "csrf_token": self.token})
        if response.status_code == 303:
            self.token = None  # a sign-in or sign-out starts a new session: new token
        return response

    def sign_in_with_password(self, base: str, email: str):
        self.get(f"{base}/login")
        return self.post(f"{base}/login", {"email": email, "password": DEMO_PASSWORD})


@pytest.fixture
def browser():
    made = Browser()
    yield made
    made.close()


def explain(response, cluster) -> str:
    """What to read when a status is not the expected one: the page, then the servers' logs."""
    return (
        f"{response.status_code} from {response.url}\n{response.text[:3000]}\n{cluster.log_tail()}"
    )


def with_email_method(cluster, email: str) -> None:
    """Give a demo login an email method and turn 2SV on (the set-up itself is tested in
    tests/test_window.py); clear any count or pause left from before."""
    moment = datetime.now(UTC).replace(tzinfo=None)
    cluster.sql(
        "INSERT INTO verification_method (user_id, kind, destination, secret, last_totp_step, "
        "created_at) SELECT id, 'email', email, '', 0, %s FROM \"user\" WHERE email = %s "
        "ON CONFLICT DO NOTHING",
        (moment, email),
    )
    cluster.sql(
        'UPDATE "user" SET two_step_enabled = true, failed_code_count = 0, '
        "verification_paused_until = NULL WHERE email = %s",
        (email,),
    )


def on_verify_page(browser, base: str) -> None:
    page = browser.get(f"{base}/login/verify")
    assert page.status_code == 200 and "Verification code" in page.text


def test_a_code_asked_for_on_a_is_accepted_on_b(instances, browser):
    with_email_method(instances, "parent@example.com")
    response = browser.sign_in_with_password(instances.a, "parent@example.com")
    assert response.status_code == 303, explain(response, instances)
    assert response.headers["Location"].endswith("/login/verify")
    code = instances.last_code("parent@example.com")  # sent by instance A

    on_verify_page(browser, instances.b)
    response = browser.post(f"{instances.b}/login/verify", {"code": code})
    assert response.status_code == 303, explain(response, instances)
    profile = browser.get(f"{instances.b}/profile", follow=False)
    assert profile.status_code == 200, explain(profile, instances)


def test_a_session_started_on_a_works_on_b_and_sign_out_on_a_ends_it_on_b(instances, browser):
    email = "both@example.com"  # staff and family: 2SV required
    with_email_method(instances, email)
    assert browser.sign_in_with_password(instances.a, email).status_code == 303
    on_verify_page(browser, instances.a)
    response = browser.post(f"{instances.a}/login/verify", {"code": instances.last_code(email)})
    assert response.status_code == 303, explain(response, instances)

    for base in (instances.b, instances.a, instances.b):
        profile = browser.get(f"{base}/profile", follow=False)
        assert profile.status_code == 200, explain(profile, instances)
        assert "Blair Both" in profile.text

    response = browser.post(f"{instances.a}/logout")
    assert response.status_code == 303, explain(response, instances)
    # The row is gone, so the same cookie opens nothing on B either.
    after = browser.get(f"{instances.b}/profile", follow=False)
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    (sessions,) = instances.sql(
        'SELECT count(*) FROM user_session s JOIN "user" u ON u.id = s.user_id WHERE u.email = %s',
        (email,),
    )
    assert sessions == (0,)


def test_wrong_codes_on_a_and_b_add_up_to_one_pause(instances, browser):
    email = "maple-parent@example.com"
    with_email_method(instances, email)
    assert browser.sign_in_with_password(instances.a, email).status_code == 303
    right = instances.last_code(email)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    on_verify_page(browser, instances.a)
    statuses = []
    for attempt in range(4):  # A, B, A, B
        base = instances.a if attempt % 2 == 0 else instances.b
        response = browser.post(f"{base}/login/verify", {"code": wrong})
        statuses.append(response.status_code)
        assert response.status_code == 422, explain(response, instances)
    (count,) = instances.sql('SELECT failed_code_count FROM "user" WHERE email = %s', (email,))
    assert count == (4,)  # counted in the database, not in either process

    fifth = browser.post(f"{instances.b}/login/verify", {"code": wrong})
    assert fifth.status_code == 429, explain(fifth, instances)
    assert "verification is paused" in fifth.text
    ((paused_until,),) = instances.sql(
        'SELECT verification_paused_until FROM "user" WHERE email = %s', (email,)
    )
    assert paused_until is not None
    # During the pause even the right code is refused, on either instance.
    refused = browser.post(f"{instances.a}/login/verify", {"code": right})
    assert refused.status_code == 429 and "verification is paused" in refused.text


def test_a_per_ip_rate_limit_is_shared_by_the_instances(instances, browser):
    """SIGN_IN_ATTEMPTS_PER_IP is 8 a minute, counted in Redis: alternating between the
    instances, the 9th attempt is refused (each process alone would allow 8 of its own)."""
    browser.get(f"{instances.a}/login")
    statuses = []
    for attempt in range(SIGN_IN_LIMIT + 1):
        base = instances.a if attempt % 2 == 0 else instances.b
        response = browser.post(
            f"{base}/login", {"email": "nobody@example.com", "password": "not the password"}
        )
        statuses.append(response.status_code)
    assert statuses == [422] * SIGN_IN_LIMIT + [429], explain(response, instances)
    assert "Too many attempts from this network" in response.text
    assert int(response.headers["Retry-After"]) > 0
    assert any(key != CLAIM_KEY.encode() for key in instances.store.scan_iter())
