"""Production mode: the health check, proxy headers, HSTS and Secure cookies, pooled
PostgreSQL connections, and one structured log line per request."""

import json
import logging

import pytest
from peewee import PostgresqlDatabase, SqliteDatabase
from playhouse.pool import PooledPostgresqlDatabase

import models
from app import create_app
from models.sessions import UserSession
from tests.conftest import PASSWORD, TEST_DATABASE_URL, Browser

PRODUCTION = {
    "TWOSTEP_ENV": "production",
    "ENCRYPTION_KEYS": "3Q6sKq7Lr0nqzv1o0cJ8oXxS3qj5JZt4gqJ0b2mVw6Y=",
    "OUTBOX_IN_PRODUCTION": True,
}


def request_lines(caplog):
    """The per-request log lines captured, parsed."""
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if getattr(record, "json_line", False)
    ]


def test_healthz_answers_200_when_the_database_answers(browser):
    response = browser.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-folder/twostep.db",
        "postgresql://postgres@127.0.0.1:9/nothing-listens-here",
    ],
)
def test_healthz_answers_503_when_the_database_does_not(tmp_path, url):
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": url})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"


def test_production_sends_hsts_and_secure_cookies(app_factory):
    production = app_factory(PRODUCTION)
    response = production.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]


def test_development_serves_plain_http(browser):
    response = browser.get("/login")
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"]


@pytest.fixture
def app_factory(app):
    """More apps on the test database, with other settings."""

    def make(settings):
        config = dict(app.config)
        config.update(settings)
        return create_app(config)

    yield make
    models.init_database(app.config["DATABASE_URL"])


def test_proxy_headers_are_ignored_unless_configured(app, app_factory, factory, caplog):
    factory.family(email="pat@example.com")
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    caplog.set_level(logging.INFO)

    app.test_client().get("/login", headers=headers)
    assert request_lines(caplog)[-1]["ip"] == "127.0.0.1"

    behind = app_factory({"PROXY_FIX_X_FOR": 1, "PROXY_FIX_X_PROTO": 1})
    client = behind.test_client()
    client.get("/login", headers=headers)
    assert request_lines(caplog)[-1]["ip"] == "203.0.113.9"
    # What the app behind the middleware sees: the client's address and https.
    environ = {}

    def capture(env, start_response):
        environ.update(env)
        start_response("204 No Content", [])
        return [b""]

    behind.wsgi_app.app = capture
    client.get("/", headers=headers)
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["REMOTE_ADDR"] == "203.0.113.9"


def test_proxy_fix_sets_the_address_sessions_record(app_factory, factory, db):
    factory.family(email="pat@example.com")
    behind = app_factory({"PROXY_FIX_X_FOR": 1})
    browser = Browser(behind.test_client())
    browser.get("/login")
    response = browser.post(
        "/login",
        {"email": "pat@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert response.status_code == 303
    assert UserSession.get().ip == "198.51.100.7"


def test_postgresql_connections_are_pooled_in_production():
    url = "postgresql://postgres@127.0.0.1:5432/anything"
    single = models.init_database(url)
    assert isinstance(single, PostgresqlDatabase)
    assert not isinstance(single, PooledPostgresqlDatabase)
    pooled = models.init_database(url, pool_size=4)
    assert isinstance(pooled, PooledPostgresqlDatabase)
    assert pooled._max_connections == 4
    assert isinstance(
        models.init_database(url.replace("postgresql", "postgresql+pool")), PooledPostgresqlDatabase
    )
    assert isinstance(models.init_database("sqlite:///:memory:", pool_size=4), SqliteDatabase)


def test_production_app_pools_postgresql_by_default(app_factory):
    production = app_factory(
        {**PRODUCTION, "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/anything"}
    )
    assert production and isinstance(models.db.obj, PooledPostgresqlDatabase)


@pytest.mark.postgres
@pytest.mark.ci_may_skip  # the SQLite pass leaves it to the PostgreSQL pass
def test_a_pooled_connection_is_reused_across_requests(app_factory):
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    pooled = app_factory({"DATABASE_POOL_SIZE": 2})
    client = pooled.test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/login").status_code == 200
    # One connection served every request, and went back to the pool each time.
    assert len(models.db.obj._in_use) == 0
    assert len(models.db.obj._connections) == 1


def test_one_json_line_per_request(app, browser, factory, caplog):
    caplog.set_level(logging.INFO)
    user = factory.family(email="pat@example.com")
    browser.get("/login?next=/profile%3Fsecret%3D1", headers={"X-Request-ID": "lb-42"})
    line = request_lines(caplog)[-1]
    assert line["request_id"] == "lb-42"
    assert line["method"] == "GET"
    assert line["path"] == "/login"  # no query string
    assert line["status"] == 200
    assert line["user_id"] is None
    assert isinstance(line["duration_ms"], float)

    browser.login("pat@example.com")
    response = browser.get("/profile")
    line = request_lines(caplog)[-1]
    assert line["user_id"] == user.id and line["path"] == "/profile"
    assert response.headers["X-Request-ID"] == line["request_id"]
    assert len(line["request_id"]) == 32  # generated


def test_a_request_id_that_does_not_look_like_one_is_replaced(browser, caplog):
    caplog.set_level(logging.INFO)
    response = browser.get("/login", headers={"X-Request-ID": 'evil" {"status":200}'})
    assert response.headers["X-Request-ID"] != 'evil" {"status":200}'
    assert request_lines(caplog)[-1]["request_id"] == response.headers["X-Request-ID"]


def test_secret_path_segments_are_not_logged(app, caplog):
    from flask import Flask

    from blueprints import request_log

    demo = Flask("demo")
    request_log.init_app(demo)

    @demo.route("/reset/<token>")
    def reset(token):
        return "ok"

    caplog.set_level(logging.INFO)
    demo.test_client().get("/reset/s3cr3t-t0ken-value")
    lines = [r.getMessage() for r in caplog.records]
    assert not any("s3cr3t-t0ken-value" in line for line in lines)
    assert request_lines(caplog)[-1]["path"] == "/reset/[redacted]"
