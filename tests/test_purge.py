"""Housekeeping: what `flask purge` (and the opportunistic purge) deletes, and what it keeps."""

from datetime import timedelta

import pytest

from models.outbox import OutboxMessage
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import SIGN_IN, OneTimeCode, PendingSetup, WebAuthnChallenge
from services.housekeeping import purge


def code(user, clock, *, age_minutes, ttl_minutes=10, used=False):
    created = clock() - timedelta(minutes=age_minutes)
    return OneTimeCode.create(
        user=user,
        purpose=SIGN_IN,
        channel="email",
        destination=user.email,
        code_hash="x" * 64,
        created_at=created,
        expires_at=created + timedelta(minutes=ttl_minutes),
        used_at=created if used else None,
    )


def session_row(user, clock, label, *, state=ACTIVE, age_minutes=0, idle_minutes=0):
    return UserSession.create(
        token_hash=label.ljust(64, "0"),
        user=user,
        state=state,
        created_at=clock() - timedelta(minutes=age_minutes),
        last_seen_at=clock() - timedelta(minutes=idle_minutes),
        authenticated_at=clock() - timedelta(minutes=age_minutes),
    )


def ids(model):
    return {row.id for row in model.select(model.id)}


@pytest.fixture
def rows(db, factory, clock):
    user = factory.family(email="pat@example.com")
    other = factory.family(email="sam@example.com")
    made = {
        # Codes: kept for an hour after they expire (the hourly caps count them).
        "code_live": code(user, clock, age_minutes=1),
        "code_expired_recently": code(user, clock, age_minutes=65),  # expired 55 min ago
        "code_used_recently": code(user, clock, age_minutes=30, used=True),
        "code_old": code(user, clock, age_minutes=71),  # expired 61 min ago
        "code_old_used": code(other, clock, age_minutes=200, used=True),
        # Sessions.
        "pending_fresh": session_row(user, clock, "a", state=PENDING, age_minutes=5),
        "pending_ended": session_row(user, clock, "b", state=PENDING, age_minutes=16),
        "active": session_row(user, clock, "c", age_minutes=60, idle_minutes=5),
        "active_idle": session_row(user, clock, "d", age_minutes=60, idle_minutes=31),
        "active_too_old": session_row(other, clock, "e", age_minutes=13 * 60, idle_minutes=1),
        # Set-ups waiting for their code.
        "setup_fresh": PendingSetup.create(
            user=user, kind="totp", created_at=clock() - timedelta(minutes=20)
        ),
        "setup_stale": PendingSetup.create(
            user=other, kind="email", created_at=clock() - timedelta(minutes=31)
        ),
        # The outbox keeps OUTBOX_KEEP_DAYS (7).
        "outbox_recent": OutboxMessage.create(
            channel="email", to="pat@example.com", body="b", created_at=clock() - timedelta(days=6)
        ),
        "outbox_old": OutboxMessage.create(
            channel="sms", to="+12015550123", body="b", created_at=clock() - timedelta(days=8)
        ),
    }
    return made


def test_purge_deletes_only_what_nobody_can_use(app, rows):
    with app.test_request_context():
        deleted = purge()
    assert deleted["codes"] == 2
    assert deleted["pending_sign_ins"] == 1
    assert deleted["sessions"] == 2
    assert deleted["pending_setups"] == 1
    assert deleted["outbox"] == 1
    assert ids(OneTimeCode) == {
        rows[name].id for name in ("code_live", "code_expired_recently", "code_used_recently")
    }
    assert ids(UserSession) == {rows[name].id for name in ("pending_fresh", "active")}
    assert ids(PendingSetup) == {rows["setup_fresh"].id}
    assert ids(OutboxMessage) == {rows["outbox_recent"].id}
    with app.test_request_context():
        assert not any(purge().values())  # nothing more the second time


def test_purge_keeps_the_codes_the_hourly_caps_count(app, db, factory, clock):
    user = factory.family()
    for minutes in (59, 45, 30):
        code(user, clock, age_minutes=minutes, ttl_minutes=1)
    with app.test_request_context():
        purge()
    recent = OneTimeCode.select().where(OneTimeCode.created_at > clock() - timedelta(hours=1))
    assert recent.count() == 3


def test_password_reset_tokens_are_purged_when_that_table_exists(app, db, factory, clock):
    passwords = pytest.importorskip("models.passwords")
    user = factory.family()
    token = passwords.PasswordResetToken
    moment = clock()
    token.create(user=user, token_hash="a" * 64, expires_at=moment + timedelta(minutes=30))
    token.create(
        user=user, token_hash="b" * 64, expires_at=moment - timedelta(days=2), used_at=None
    )
    token.create(
        user=user,
        token_hash="c" * 64,
        expires_at=moment + timedelta(minutes=5),
        used_at=moment - timedelta(days=1, minutes=1),
    )
    with app.test_request_context():
        assert purge()["password_reset_tokens"] == 2
    assert [row.token_hash[0] for row in token.select()] == ["a"]


def challenge(user, clock, label, *, age_minutes, used=False, purpose="authenticate"):
    created = clock() - timedelta(minutes=age_minutes)
    return WebAuthnChallenge.create(
        user=user,
        purpose=purpose,
        challenge=label * 43,
        created_at=created,
        used_at=created + timedelta(seconds=5) if used else None,
    )


@pytest.fixture
def challenges(db, factory, clock):
    user = factory.family(email="kay@example.com")
    # Challenges work once, for WEBAUTHN_CHALLENGE_MINUTES (5).
    return {
        "live": challenge(user, clock, "a", age_minutes=4),
        "live_reset": challenge(user, clock, "b", age_minutes=1, purpose="password_reset"),
        "used": challenge(user, clock, "c", age_minutes=1, used=True),
        "expired": challenge(user, clock, "d", age_minutes=6, purpose="register"),
        "old_used": challenge(user, clock, "e", age_minutes=60, used=True),
    }


def test_used_and_expired_webauthn_challenges_are_purged(app, challenges, clock):
    with app.test_request_context():
        assert purge()["webauthn_challenges"] == 3
    assert ids(WebAuthnChallenge) == {challenges["live"].id, challenges["live_reset"].id}
    clock.advance(minutes=1, seconds=1)  # the 4-minute-old one expires now
    with app.test_request_context():
        assert purge()["webauthn_challenges"] == 1
    assert ids(WebAuthnChallenge) == {challenges["live_reset"].id}


def test_flask_purge_command(app, rows, challenges):
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "2 codes" in result.output and "1 outbox" in result.output
    assert "3 webauthn_challenges" in result.output


@pytest.fixture
def app_config():
    return {"PURGE_EVERY_SECONDS": 300}


def test_requests_purge_now_and_then(app, rows, browser):
    state = app.extensions["twostep_purge"]
    state["next_at"] = 0  # due now
    browser.get("/login")
    assert rows["code_old"].id not in ids(OneTimeCode)
    assert state["next_at"] > 0  # and not again for a while
    code(rows["code_live"].user, app.config["CLOCK"], age_minutes=500)
    browser.get("/login")
    assert OneTimeCode.select().count() == 4  # the new old one waits for the next round


def test_requests_purge_webauthn_challenges_now_and_then(app, challenges, browser):
    app.extensions["twostep_purge"]["next_at"] = 0  # due now
    browser.get("/login")
    assert ids(WebAuthnChallenge) == {challenges["live"].id, challenges["live_reset"].id}


def test_a_failing_purge_does_not_break_the_request(app, browser, monkeypatch, caplog):
    import services.housekeeping as housekeeping

    def broken():
        raise RuntimeError("database went away")

    monkeypatch.setattr(housekeeping, "purge", broken)
    app.extensions["twostep_purge"]["next_at"] = 0
    assert browser.get("/login").status_code == 200
    assert "Opportunistic purge failed" in caplog.text
