"""Fixtures: an app on a fresh database (SQLite, or PostgreSQL via TEST_DATABASE_URL), a
moveable clock, a browser-like client that carries the CSRF token, and user factories."""

import os
import re
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import pytest

import models
from app import create_app
from models.clock import FrozenClock
from models.people import FAMILY, STAFF, Center, Membership, User
from services.account.passwords import hash_password
from tests.artifacts import watch_for_artifacts
from tests.ci_strict import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
PASSWORD = "correct horse battery"
START = datetime(2026, 11, 26, 12, 0, 5)

_password_hash = None


def _hash_once() -> str:
    """argon2 is slow on purpose; tests share one hash of PASSWORD."""
    global _password_hash
    if _password_hash is None:
        _password_hash = hash_password(PASSWORD)
    return _password_hash


@pytest.fixture
def clock():
    return FrozenClock(START)


@pytest.fixture
def app_config():
    """Settings a test module may override."""
    return {}


@pytest.fixture(scope="session")
def postgres_url():
    """With TEST_DATABASE_URL set, a throwaway database of this pytest run on that server, so
    runs side by side (and a developer's own data) never meet."""
    if not TEST_DATABASE_URL:
        yield None
        return
    import psycopg
    from psycopg import sql

    parts = urlsplit(TEST_DATABASE_URL)
    name = f"twostep_test_{os.getpid()}"
    admin = psycopg.connect(TEST_DATABASE_URL, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with admin.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    admin.close()


@pytest.fixture
def app(tmp_path, clock, app_config, postgres_url):
    url = postgres_url or f"sqlite:///{tmp_path / 'test.db'}"
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": url,
        "CLOCK": clock,
        # Flask-Limiter keeps the last app's RATELIMIT_ENABLED as the default of the next:
        # a module that turns limits off (test_fuzz) must not turn them off for the rest.
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
        "SENDGRID_API_KEY": "",
        "VONAGE_API_KEY": "",
        # On PostgreSQL the tables of the previous test are still there when the app starts
        # (dropped just below); tests/test_crypto.py checks the start-up key check itself.
        "CHECK_STORED_KEYS_AT_START": False,
    }
    config.update(app_config)
    app = create_app(config)
    # Every page and partial any test receives is checked for template leaks.
    artifacts = watch_for_artifacts(app)
    with app.app_context():
        if postgres_url:
            models.db.drop_tables(models.all_models(), safe=True, cascade=True)
        models.create_tables()
    yield app
    if not models.db.is_closed():
        models.db.close()
    assert not artifacts, "Template artifacts in what the app sent:\n" + "\n".join(artifacts)


@pytest.fixture
def db(app):
    """An app context with the database open, for tests that use models directly."""
    with app.app_context():
        models.db.connect(reuse_if_open=True)
        yield models.db


CSRF_PATTERN = re.compile(
    r'"X-CSRFToken": "([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"'
)


class Browser:
    """A test client that behaves like a browser: it keeps the CSRF token of the last page
    and sends it with every POST (pass csrf=False to leave it out)."""

    def __init__(self, client):
        self.client = client
        self.csrf_token = None
        self.last_location = "/login"

    def _remember_token(self, response):
        if response.status_code in (301, 302, 303) or "HX-Redirect" in response.headers:
            # A sign-in or sign-out starts a new session with a new token: like a browser,
            # load the next page before the next form.
            self.csrf_token = None
            self.last_location = response.headers.get("HX-Redirect") or response.headers.get(
                "Location", "/login"
            )
        elif response.mimetype == "text/html":
            match = CSRF_PATTERN.search(response.get_data(as_text=True))
            if match:
                self.csrf_token = match.group(1) or match.group(2)
        return response

    def get(self, url, htmx=False, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self._remember_token(self.client.get(url, headers=headers, **kwargs))

    def post(self, url, data=None, htmx=False, csrf=True, **kwargs):
        headers = kwargs.pop("headers", {})
        data = dict(data or {})
        if csrf:
            if self.csrf_token is None:
                self.get(self.last_location, follow_redirects=True)
            if htmx:
                headers["X-CSRFToken"] = self.csrf_token
            else:
                data.setdefault("csrf_token", self.csrf_token)
        if htmx:
            headers["HX-Request"] = "true"
        return self._remember_token(self.client.post(url, data=data, headers=headers, **kwargs))

    def login(self, email, password=PASSWORD, **kwargs):
        self.get("/login", follow_redirects=True)
        return self.post("/login", {"email": email, "password": password}, **kwargs)

    def logout(self):
        return self.post("/logout")


@pytest.fixture
def browser(app):
    return Browser(app.test_client())


@pytest.fixture
def new_browser(app):
    """Make another, independent browser (another device)."""
    return lambda: Browser(app.test_client())


class Factory:
    """Creates centers and logins for tests."""

    def __init__(self):
        self.count = 0

    def center(self, name="Sunshine Early Learning"):
        center, _ = Center.get_or_create(name=name)
        return center

    def user(
        self,
        role=FAMILY,
        *,
        email=None,
        name=None,
        center=None,
        admin=False,
        roles=None,
        two_step=False,
    ):
        self.count += 1
        email = email or f"person{self.count}@example.com"
        user = User.create(
            email=email,
            name=name or f"Person {self.count}",
            password_hash=_hash_once(),
            two_step_enabled=two_step,
        )
        center = center or self.center()
        for each_role in roles or [role]:
            Membership.create(
                user=user, center=center, role=each_role, is_admin=admin and each_role == STAFF
            )
        return user

    def family(self, **kwargs):
        return self.user(FAMILY, **kwargs)

    def staff(self, **kwargs):
        return self.user(STAFF, **kwargs)

    def admin(self, **kwargs):
        return self.user(STAFF, admin=True, **kwargs)


@pytest.fixture
def factory(db):
    return Factory()


def is_fragment(response) -> bool:
    """An HTMX partial: HTML without the page around it."""
    body = response.get_data(as_text=True)
    return "<html" not in body and "<body" not in body


def is_full_page(response) -> bool:
    body = response.get_data(as_text=True)
    return "<html" in body and "</html>" in body


# --- the providers' fakes (tests/fake_providers.py): SendGrid over HTTP, Vonage over HTTPS ---


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A throwaway certificate for the fake Vonage's TLS."""
    from tests.fake_providers import self_signed_certificate

    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def sendgrid():
    """A fake SendGrid that accepts every message."""
    from tests.fake_providers import SENDGRID_ACCEPTED, Answer, FakeProvider

    with FakeProvider(Answer(status=SENDGRID_ACCEPTED)) as provider:
        yield provider


@pytest.fixture
def vonage(certificate, monkeypatch):
    """A fake Vonage (HTTPS) that sends every message."""
    import vonage  # noqa: F401 (imported once, before anything is timed: it takes a second)

    from tests.fake_providers import VONAGE_SENT, Answer, FakeProvider

    # This machine sets REQUESTS_CA_BUNDLE, which requests prefers to `verify`: trust the
    # throwaway certificate for this test only.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert_file))
    with FakeProvider(Answer(body=VONAGE_SENT), tls=certificate.server_context()) as provider:
        yield provider


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
