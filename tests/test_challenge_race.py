"""Simultaneous sign-ins with the same code: exactly one wins (SPEC "Signing in" 4, Decisions 6).

The guarantee is a conditional UPDATE whose row count says who won, so it is tested where
requests really run at once: threads against PostgreSQL, in a throwaway database created for
each test (SQLite serialises writers, which would hide a read-then-write bug).
"""

import socket
import threading
import uuid
from datetime import UTC

import pyotp
import pytest

from models import crypto
from models.events import SIGNED_IN, SecurityEvent
from models.sessions import ACTIVE, UserSession
from models.verification import EMAIL, TOTP, VerificationMethod
from tests.test_challenge import VERIFY, sent_codes

HOST, PORT = "127.0.0.1", 5432


def _postgres_answers() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError:
        return False
    return True


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not _postgres_answers(),
        reason="PostgreSQL does not answer on 127.0.0.1:5432; the race test needs real "
        "concurrent transactions (SQLite serialises writers)",
    ),
]


@pytest.fixture
def race_database_url():
    """A database of its own for each test, dropped afterwards: no other run interferes."""
    import psycopg

    name = f"twostep_race_{uuid.uuid4().hex[:12]}"
    server = psycopg.connect(
        host=HOST, port=PORT, user="postgres", dbname="postgres", autocommit=True
    )
    try:
        with server.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@{HOST}:{PORT}/{name}"
        with server.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        server.close()


@pytest.fixture
def app_config(race_database_url):
    return {"DATABASE_URL": race_database_url, "MAX_FAILED_CODES": 1000}


def at_once(browsers, data):
    """POST `data` to the code box from every browser at the same moment; the statuses."""
    for browser in browsers:
        browser.get(VERIFY)  # load the page (and its CSRF token) first, as a person would
    barrier = threading.Barrier(len(browsers))
    statuses = [None] * len(browsers)

    def attempt(index):
        barrier.wait()
        statuses[index] = browsers[index].post(VERIFY, data).status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_the_same_authenticator_code_at_once_lets_exactly_one_in(new_browser, factory, clock):
    user = factory.family(email="pat@example.com", two_step=True)
    secret = pyotp.random_base32()
    VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(secret))
    for round_number in range(4):
        clock.advance(seconds=30)
        browsers = [new_browser() for _ in range(4)]
        for browser in browsers:
            browser.login("pat@example.com")
        code = pyotp.TOTP(secret).at(clock().replace(tzinfo=UTC))
        statuses = at_once(browsers, {"code": code})
        assert sorted(statuses) == [303, 422, 422, 422], round_number
        winners = UserSession.select().where(UserSession.state == ACTIVE).count()
        assert winners == round_number + 1
    assert SecurityEvent.select().where(SecurityEvent.kind == SIGNED_IN).count() == 4


def test_the_same_emailed_code_at_once_lets_exactly_one_in(new_browser, factory):
    user = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=user, kind=EMAIL, destination="pat@example.com")
    browsers = [new_browser() for _ in range(4)]
    browsers[0].login("pat@example.com")  # sends the code; the others are within the cooldown
    for browser in browsers[1:]:
        browser.login("pat@example.com")
    (code,) = sent_codes()
    statuses = at_once(browsers, {"code": code})
    assert sorted(statuses) == [303, 422, 422, 422]
    assert SecurityEvent.select().where(SecurityEvent.kind == SIGNED_IN).count() == 1
