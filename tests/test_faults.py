"""Faults: PostgreSQL and Redis cut or hanging behind a TCP proxy (tests/tcp_proxy.py).

What must hold: no request waits past the timeouts (+1 s), the app answers with its own 503
page (Retry-After, never a bare Werkzeug error, signed-in people included) while PostgreSQL
does not answer, sign-in keeps working while Redis does not (limits per process), /healthz
says so within 2 s, and everything recovers when the server is back.
"""

import os
import socket
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

import models
from app import create_app
from tests.conftest import PASSWORD, TEST_DATABASE_URL, Browser, Factory
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
