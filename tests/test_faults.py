"""Faults: PostgreSQL and Redis cut or hanging behind a TCP proxy (tests/tcp_proxy.py).

What must hold: no request waits past the timeouts (+1 s), the app answers with its own 503
page (Retry-After, never a bare Werkzeug error, signed-in people included) while PostgreSQL
does not answer, sign-in keeps working while Redis does not (limits per process), /healthz
says so within 2 s, and everything recovers when the server is back.
"""

import os
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import models
from app import create_app
from tests.conftest import PASSWORD, TEST_DATABASE_URL, Browser, Factory
from tests.servers import Browser as HttpBrowser
from tests.servers import app_env, gunicorns, prepare
from tests.tcp_proxy import TcpProxy

POSTGRES_SERVER = TEST_DATABASE_URL or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT = 2
STATEMENT_TIMEOUT = 1
# The longest any request may take while a server hangs: the slower of the two timeouts, the
# half second models.deadline adds to the statement timeout, and 1 s of slack.
REQUEST_BOUND = max(CONNECT_TIMEOUT, STATEMENT_TIMEOUT + 0.5) + 1


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _server_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (5432 if "postgres" in url else 6379)


needs_postgres = pytest.mark.skipif(
    not _answers(*_server_of(POSTGRES_SERVER)),
    reason=f"PostgreSQL does not answer at {POSTGRES_SERVER}",
)
needs_redis = pytest.mark.skipif(
    not _answers(*_server_of(REDIS_URL)), reason=f"Redis does not answer at {REDIS_URL}"
)


@contextmanager
def throwaway_postgres():
    """A new PostgreSQL database on the test server, dropped afterwards; yields its URL."""
    import psycopg

    name = f"twostep_faults_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(POSTGRES_SERVER, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(POSTGRES_SERVER)._replace(path=f"/{name}"))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def through(proxy: TcpProxy, url: str) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))


def timed(call):
    """(result, seconds) of `call()`."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.fixture
def postgres_proxy():
    if not _answers(*_server_of(POSTGRES_SERVER)):
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_SERVER}")
    with throwaway_postgres() as url, TcpProxy(_server_of(url)[1], _server_of(url)[0]) as proxy:
        yield proxy, url


@pytest.fixture
def app_on_proxied_postgres(postgres_proxy, tmp_path):
    proxy, url = postgres_proxy
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DATABASE_URL": through(proxy, url),
            "DATABASE_POOL_SIZE": 4,
            "DATABASE_CONNECT_TIMEOUT": CONNECT_TIMEOUT,
            "DATABASE_STATEMENT_TIMEOUT": STATEMENT_TIMEOUT,
            "RATELIMIT_STORAGE_URI": "memory://",
            "RATELIMIT_ENABLED": True,
            "SENDGRID_API_KEY": "",
            "VONAGE_API_KEY": "",
            "PURGE_EVERY_SECONDS": 0,
        }
    )
    with app.app_context():
        models.create_tables()
        Factory().family(email="pat@example.com")
        models.db.close()
    yield app, proxy
    models.db.obj.close_all()  # the pool's idle connections, before the database is dropped


def _signed_in(app) -> Browser:
    browser = Browser(app.test_client())
    response = browser.login("pat@example.com", PASSWORD)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert browser.get("/").status_code == 200
    return browser


def _assert_unavailable_page(response, seconds):
    body = response.get_data(as_text=True)
    assert response.status_code == 503, body[:500]
    assert int(response.headers["Retry-After"]) > 0
    assert "Try again in a minute" in body
    assert "Internal Server Error" not in body
    assert seconds < REQUEST_BOUND


@needs_postgres
@pytest.mark.parametrize("fault", ["hang", "cut"])
def test_postgresql_fault_gets_the_apps_503_page_in_time_and_recovers(
    app_on_proxied_postgres, fault
):
    app, proxy = app_on_proxied_postgres
    signed_in = _signed_in(app)
    visitor = Browser(app.test_client())
    getattr(proxy, fault)()

    for browser, path in ((signed_in, "/"), (signed_in, "/profile/2sv"), (visitor, "/login")):
        response, seconds = timed(lambda b=browser, p=path: b.get(p))
        _assert_unavailable_page(response, seconds)
    # Signing in while the database is away: the same page, nothing half done.
    response, seconds = timed(
        lambda: visitor.post("/login", {"email": "pat@example.com", "password": PASSWORD})
    )
    _assert_unavailable_page(response, seconds)

    health, seconds = timed(lambda: app.test_client().get("/healthz"))
    assert health.status_code == 503 and health.json["status"] == "unavailable"
    assert seconds < 2

    proxy.restore()
    deadline = time.monotonic() + 10
    while app.test_client().get("/healthz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert app.test_client().get("/healthz").json["status"] == "ok"
    # The signed-in person is still signed in (the session is a row that was never touched).
    assert signed_in.get("/").status_code == 200
    assert _signed_in(app)


@needs_postgres
def test_htmx_request_during_a_postgresql_fault_gets_a_toast(app_on_proxied_postgres):
    app, proxy = app_on_proxied_postgres
    signed_in = _signed_in(app)
    proxy.cut()
    response = signed_in.get("/profile/2sv", htmx=True)
    assert response.status_code == 503
    assert response.headers["HX-Retarget"] == "#toast"
    body = response.get_data(as_text=True)
    assert "<html" not in body and "reach its records right now" in body
    assert int(response.headers["Retry-After"]) > 0
    # The API answers with a problem document, not a page.
    api = app.test_client().get("/api/v1/two-step", headers={"Authorization": "Bearer x"})
    assert api.status_code == 503
    assert api.json["code"] == "unavailable" and int(api.headers["Retry-After"]) > 0


@pytest.fixture
def redis_proxy():
    if not _answers(*_server_of(REDIS_URL)):
        pytest.skip(f"Redis does not answer at {REDIS_URL}")
    host, port = _server_of(REDIS_URL)
    with TcpProxy(port, host) as proxy:
        yield proxy


@needs_redis
@pytest.mark.parametrize("fault", ["hang", "cut"])
def test_redis_fault_keeps_sign_in_working_with_limits_in_memory(
    redis_proxy, app_config, tmp_path, fault
):
    prefix = f"twostep-faults-{uuid.uuid4().hex}"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
            "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{redis_proxy.port}/0",
            "RATELIMIT_KEY_PREFIX": prefix,
            "RATELIMIT_ENABLED": True,
            "SIGN_IN_ATTEMPTS_PER_IP": "3 per minute",
            "SENDGRID_API_KEY": "",
            "VONAGE_API_KEY": "",
        }
    )
    with app.app_context():
        models.create_tables()
        Factory().family(email="pat@example.com")
    assert app.test_client().get("/healthz").json["status"] == "ok"

    getattr(redis_proxy, fault)()
    browser = Browser(app.test_client())
    response, seconds = timed(lambda: browser.login("pat@example.com"))
    assert response.status_code == 303 and seconds < 1 + 1
    health, seconds = timed(lambda: app.test_client().get("/healthz"))
    assert health.status_code == 200 and health.json["status"] == "degraded"
    assert "Redis" in health.json["rate_limits"] and seconds < 2

    # The per-IP limit still holds, counted in this process's memory.
    statuses = []
    for _attempt in range(5):
        other = Browser(app.test_client())
        statuses.append(other.login("pat@example.com", "wrong password").status_code)
    assert 429 in statuses
    assert all(status in (422, 429) for status in statuses)

    redis_proxy.restore()
    assert app.test_client().get("/healthz").json["status"] == "ok"


# Real app processes: gunicorn (3 sync workers) on PostgreSQL and Redis, each behind a proxy,
# under a few concurrent sign-ins while each is cut, hung and restored. -----------------------

WORKERS = 3
SIGN_INS = 3  # concurrent sign-in flows: no more than the workers, so none waits in a queue
FAMILY_LOGINS = ["parent@example.com", "maple-parent@example.com"]
TWO_STEP_LOGIN = "both@example.com"  # staff and family: 2SV required, given an email method


class Served:
    """One gunicorn instance and what the test reads from it."""

    def __init__(self, url: str, database_url: str, log: Path):
        self.url = url
        self.database_url = database_url
        self.log = log

    def sql(self, statement: str, parameters=()):
        import psycopg

        with (
            psycopg.connect(self.database_url, connect_timeout=5, autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else None

    def last_code(self, to: str) -> str | None:
        rows = self.sql('SELECT body FROM outbox_message WHERE "to" = %s ORDER BY id DESC', (to,))
        return re.search(r"\b(\d{6})\b", rows[0][0]).group(1) if rows else None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """gunicorn with PostgreSQL (a throwaway database) and Redis (a uuid key prefix) each
    reached through a TcpProxy; yields (instance, postgres proxy, redis proxy)."""
    for host, port, what in (
        (*_server_of(POSTGRES_SERVER), "PostgreSQL"),
        (*_server_of(REDIS_URL), "Redis"),
    ):
        if not _answers(host, port):
            pytest.skip(f"{what} does not answer at {host}:{port}")
    folder = tmp_path_factory.mktemp("faults")
    with (
        throwaway_postgres() as database_url,
        TcpProxy(_server_of(database_url)[1], _server_of(database_url)[0]) as postgres,
        TcpProxy(_server_of(REDIS_URL)[1], _server_of(REDIS_URL)[0]) as redis,
    ):
        env = app_env(
            through(postgres, database_url),
            DATABASE_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
            DATABASE_STATEMENT_TIMEOUT=str(STATEMENT_TIMEOUT),
            RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{redis.port}/0",
            RATELIMIT_KEY_PREFIX=f"twostep-faults-{uuid.uuid4().hex}",
            SIGN_IN_ATTEMPTS_PER_IP="1000 per minute",
            SEND_CODES_PER_IP="1000 per hour",
            CODE_RESEND_COOLDOWN="0",
            CODE_SENDS_PER_HOUR="1000",
        )
        prepare(env)
        log = folder / "gunicorn.log"
        with gunicorns(env, [log], WORKERS, healthy=_healthy, seconds=60) as [(url, _process)]:
            instance = Served(url, database_url, log)
            _give_email_method(instance, TWO_STEP_LOGIN)
            yield instance, postgres, redis


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=3).json().get("status") == "ok"
    except (httpx.HTTPError, ValueError):
        return False


def _give_email_method(instance: Served, email: str) -> None:
    instance.sql(
        "INSERT INTO verification_method (user_id, kind, destination, secret, last_totp_step, "
        "created_at) SELECT id, 'email', email, '', 0, now() FROM \"user\" WHERE email = %s",
        (email,),
    )
    instance.sql('UPDATE "user" SET two_step_enabled = true WHERE email = %s', (email,))


@dataclass
class Flow:
    """One sign-in as a browser does it: every request's status and seconds."""

    email: str
    steps: list[tuple[str, int, float]] = field(default_factory=list)
    signed_in: bool = False


def _sign_in(instance: Served, email: str) -> Flow:
    """Password, then (for the 2SV login) the emailed code, then the home page."""
    flow = Flow(email)
    browser = HttpBrowser(timeout=15)  # far above any bound asserted: a hang shows as slow

    def step(name, call):
        started = time.monotonic()
        try:
            response = call()
        except Exception as error:  # a connection error: recorded, never raised past here
            flow.steps.append((name, 0, time.monotonic() - started))
            raise _Stop from error
        flow.steps.append((name, response.status_code, time.monotonic() - started))
        if response.status_code >= 400:
            raise _Stop
        return response

    try:
        step("login page", lambda: browser.get(f"{instance.url}/login"))
        step(
            "password",
            lambda: browser.post(
                f"{instance.url}/login", {"email": email, "password": "twostep-demo"}
            ),
        )
        if email == TWO_STEP_LOGIN:
            step("code page", lambda: browser.get(f"{instance.url}/login/verify"))
            code = instance.last_code(email)
            step("code", lambda: browser.post(f"{instance.url}/login/verify", {"code": code}))
        home = step("home", lambda: browser.get(f"{instance.url}/", follow=False))
        flow.signed_in = home.status_code == 200 and "Sign out" in home.text
    except _Stop:
        pass
    finally:
        browser.close()
    return flow


class _Stop(Exception):
    pass


def _concurrent_sign_ins(instance: Served) -> list[Flow]:
    logins = [FAMILY_LOGINS[0], FAMILY_LOGINS[1], TWO_STEP_LOGIN][:SIGN_INS]
    with ThreadPoolExecutor(max_workers=SIGN_INS) as pool:
        return list(pool.map(lambda email: _sign_in(instance, email), logins))


def _timed_health(instance: Served):
    import httpx

    started = time.monotonic()
    response = httpx.get(f"{instance.url}/healthz", timeout=15)
    return response, time.monotonic() - started


def _wait_healthy(instance: Served, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not _healthy(instance.url):
        assert time.monotonic() < deadline, f"not healthy again\n{instance.log_tail()}"
        time.sleep(0.3)


def _assert_no_impossible_rows(instance: Served) -> None:
    """No used sign-in code without the sign-in it earned; no signed-in session of a 2SV login
    without a sign-in that went through its second step."""
    used = instance.sql(
        "SELECT user_id, count(*) FROM one_time_code WHERE purpose = 'sign_in' "
        "AND used_at IS NOT NULL GROUP BY user_id"
    )
    for user_id, count in used:
        [(signed_in,)] = instance.sql(
            "SELECT count(*) FROM security_event WHERE user_id = %s AND kind = 'signed_in' "
            "AND method_kind = 'email'",
            (user_id,),
        )
        assert signed_in >= count, f"user {user_id}: {count} used codes, {signed_in} sign-ins"
    [(active,)] = instance.sql(
        'SELECT count(*) FROM user_session s JOIN "user" u ON u.id = s.user_id '
        "WHERE u.email = %s AND s.state = 'active'",
        (TWO_STEP_LOGIN,),
    )
    [(second_steps,)] = instance.sql(
        'SELECT count(*) FROM security_event e JOIN "user" u ON u.id = e.user_id '
        "WHERE u.email = %s AND e.kind = 'signed_in' AND e.method_kind = 'email'",
        (TWO_STEP_LOGIN,),
    )
    assert active <= second_steps
    [(never_live,)] = instance.sql(
        "SELECT count(*) FROM one_time_code WHERE used_at IS NOT NULL AND expires_at < created_at"
    )
    assert never_live == 0  # a code whose send never completed was never accepted


@pytest.mark.postgres
@pytest.mark.redis
def test_gunicorn_under_sign_ins_while_postgresql_and_redis_are_cut_hung_and_restored(served):
    instance, postgres, redis = served
    healthy = _concurrent_sign_ins(instance)
    assert all(flow.signed_in for flow in healthy), [flow.steps for flow in healthy]
    # What a request costs on this machine now (argon2 included): the bounds below add the
    # timeouts to it, so a loaded machine is not mistaken for a hang.
    baseline = max(seconds for flow in healthy for _name, _status, seconds in flow.steps)

    for fault in ("cut", "hang"):
        # Redis: sign-ins go on, the limits counted per process; /healthz says "degraded".
        getattr(redis, fault)()
        flows = _concurrent_sign_ins(instance)
        assert all(flow.signed_in for flow in flows), [flow.steps for flow in flows]
        for flow in flows:
            for name, _status, seconds in flow.steps:
                assert seconds < baseline + 0.5 + 1, (fault, flow.email, name, seconds)
        health, seconds = _timed_health(instance)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert seconds < 2
        redis.restore()
        _wait_healthy(instance)

        # PostgreSQL: the app's 503 page in time; /healthz 503 within 2 s; then recovery.
        getattr(postgres, fault)()
        flows = _concurrent_sign_ins(instance)
        for flow in flows:
            assert not flow.signed_in
            for name, status, seconds in flow.steps:
                assert status in (200, 303, 503), (fault, flow.email, name, status)
                assert seconds < baseline + REQUEST_BOUND, (fault, flow.email, name, seconds)
            assert flow.steps[-1][1] == 503, flow.steps
        health, seconds = _timed_health(instance)
        assert health.status_code == 503 and seconds < 2
        postgres.restore()
        _wait_healthy(instance)
        flows = _concurrent_sign_ins(instance)
        assert all(flow.signed_in for flow in flows), [flow.steps for flow in flows]

    _assert_no_impossible_rows(instance)
    assert "Unhandled error" not in instance.log.read_text(errors="replace")  # never a 500
