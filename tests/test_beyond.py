"""Staff method policy, key rotation, session limits and request size limits."""

import re

import pyotp
import pytest
from cryptography.fernet import Fernet

from models import crypto
from models.sessions import UserSession
from models.verification import PendingSetup, VerificationMethod
from services.methods import totp


@pytest.fixture
def staff_without_email_config(app):
    app.config["STAFF_METHODS"] = "totp,sms"


def test_staff_policy_hides_email_for_staff(app, browser, factory, staff_without_email_config):
    factory.staff(email="terry@example.com")
    factory.family(email="pat@example.com")
    browser.login("terry@example.com")
    page = browser.get("/login/verify/setup").get_data(as_text=True)
    assert ">Authenticator App</a>" in page and ">Text Message</a>" in page
    assert ">Email</a>" not in page
    assert browser.get("/profile/2sv/methods/email").status_code == 404
    refused = browser.post("/profile/2sv/methods/email/send", {"destination": "t@example.com"})
    assert refused.status_code == 403
    assert PendingSetup.select().count() == 0
    # Families keep every kind.
    family = browser.__class__(app.test_client())
    family.login("pat@example.com")
    assert ">Email</a>" in family.get("/profile/2sv").get_data(as_text=True)


def test_staff_with_only_a_disallowed_method_must_set_up(app, factory, db):
    from services.methods import policy

    user = factory.staff(email="terry@example.com", two_step=True)
    VerificationMethod.create(user=user, kind="email", destination="terry@example.com")
    with app.test_request_context():
        assert not policy.must_set_up(user)
        app.config["STAFF_METHODS"] = "totp,sms"
        assert policy.must_set_up(user)
        assert policy.usable_methods(user) == []
        # ... but only after proving the email saved (Decisions 20).
        assert [method.kind for method in policy.sign_in_methods(user)] == ["email"]


def test_rotate_keys_keeps_every_method_working(app, factory, db, clock):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.config["ENCRYPTION_KEYS"] = old_key
    user = factory.family(email="pat@example.com")
    secret = pyotp.random_base32()
    with app.app_context():
        app.extensions.pop("twostep.crypto", None)
        method = VerificationMethod.create(user=user, kind="totp", secret=crypto.encrypt(secret))
        before = method.secret
        app.config["ENCRYPTION_KEYS"] = f"{new_key},{old_key}"
        app.extensions.pop("twostep.crypto", None)
        result = app.test_cli_runner().invoke(args=["rotate-keys"])
        assert result.exit_code == 0 and "1 key" in result.output
        after = VerificationMethod.get_by_id(method.id)
        assert after.secret != before
        assert secret not in after.secret
        # Only the new key is needed now.
        app.config["ENCRYPTION_KEYS"] = new_key
        app.extensions.pop("twostep.crypto", None)
        assert crypto.decrypt(after.secret) == secret
        from datetime import UTC

        code = pyotp.TOTP(secret).at(clock().replace(tzinfo=UTC))
        assert totp.verify_method(after, code) is totp.TotpResult.OK


def test_database_holds_no_plain_authenticator_key(browser, factory, clock):
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    page = browser.post("/profile/2sv/methods/authenticator/start").get_data(as_text=True)
    secret = re.search(r'class="secret-key"[^>]*>([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert all(secret not in row.secret for row in PendingSetup.select())


def test_idle_sessions_end_after_30_minutes(browser, factory, clock):
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    clock.advance(minutes=29)
    assert browser.get("/profile").status_code == 200
    clock.advance(minutes=29)
    assert browser.get("/profile").status_code == 200  # activity keeps it alive
    clock.advance(minutes=31)
    assert browser.get("/profile").status_code == 302
    assert UserSession.select().count() == 0


def test_sessions_end_after_12_hours_whatever_the_activity(browser, factory, clock):
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    for _ in range(24):  # 11 h 36 min of steady activity
        clock.advance(minutes=29)
        assert browser.get("/profile").status_code == 200
    clock.advance(minutes=25)  # 12 h 01 min after signing in
    assert browser.get("/profile").status_code == 302


def test_bodies_over_one_megabyte_get_413(browser, factory):
    factory.family(email="pat@example.com")
    browser.get("/login")
    response = browser.post("/login", {"email": "pat@example.com", "password": "x" * 1_100_000})
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_migration_encrypts_keys_stored_in_plain_text(app, factory, db):
    """Issue 9: a migration encrypts keys stored before keys were encrypted at rest."""
    import importlib

    migration = importlib.import_module("models.migrations.0006_encrypt_plain_authenticator_keys")
    user = factory.family(email="pat@example.com")
    plain = pyotp.random_base32()
    encrypted_already = crypto.encrypt(pyotp.random_base32())
    old = VerificationMethod.create(user=user, kind="totp", secret=plain)
    other = factory.family(email="kay@example.com")
    kept = VerificationMethod.create(user=other, kind="totp", secret=encrypted_already)
    pending = PendingSetup.create(user=other, kind="totp", secret=plain)
    with app.app_context():
        migration.upgrade(db, None)
    assert crypto.decrypt(VerificationMethod.get_by_id(old.id).secret) == plain
    assert crypto.decrypt(PendingSetup.get_by_id(pending.id).secret) == plain
    assert VerificationMethod.get_by_id(kept.id).secret == encrypted_already  # untouched
    assert migration.plain_keys(db, "verification_method") == []
