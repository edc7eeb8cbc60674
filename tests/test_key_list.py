"""ENCRYPTION_KEYS wrong, partly wrong, or rotated on one instance only: the instance refuses
to start when none of the newest saved keys opens, says "degraded" when some don't, never
answers 500 at sign-in, and `flask rotate-keys` explains and changes nothing."""

import html

import pytest
from cryptography.fernet import Fernet

import models
from app import ConfigurationError, create_app
from models import crypto
from models.events import CODE_FAILED, SecurityEvent
from models.people import User
from models.verification import TOTP, VerificationMethod
from tests.test_challenge import totp_code, two_step_family

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
STRANGER_KEY = Fernet.generate_key().decode()
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
VERIFY = "/login/verify"
UNREADABLE_TEXT = "We can't check authenticator codes right now. Choose another method."


@pytest.fixture
def app_config():
    return {"ENCRYPTION_KEYS": OLD_KEY}


@pytest.fixture
def instance(app):
    """Another instance on the same database, with its own ENCRYPTION_KEYS, which checks the
    stored keys when it starts, as production does."""

    def start(keys: str):
        config = dict(app.config)
        config.update(ENCRYPTION_KEYS=keys, CHECK_STORED_KEYS_AT_START=True)
        return create_app(config)

    yield start
    models.init_database(app.config["DATABASE_URL"])


def saved_key(user, key: str, secret: str = SECRET) -> VerificationMethod:
    """An authenticator method whose key was encrypted with `key`."""
    token = Fernet(key).encrypt(secret.encode()).decode()
    return VerificationMethod.create(user=user, kind=TOTP, secret=token)


def test_an_instance_whose_keys_open_none_of_the_saved_keys_refuses_to_start(factory, instance):
    saved_key(factory.family(), OLD_KEY)
    saved_key(factory.family(), OLD_KEY)
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS") as refused:
        instance(STRANGER_KEY)
    assert "2 of the 2 newest" in str(refused.value)
    assert OLD_KEY not in str(refused.value)


def test_an_instance_rotated_alone_refuses_until_the_old_key_is_back(factory, instance):
    saved_key(factory.family(), OLD_KEY)
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS"):
        instance(NEW_KEY)  # the new key put in place of the old one, not in front of it
    rotated = instance(f"{NEW_KEY},{OLD_KEY}")  # the new key first, the old one after it
    assert rotated.test_client().get("/healthz").json["status"] == "ok"


def test_an_instance_that_opens_only_some_keys_starts_degraded_and_says_why(
    factory, instance, caplog
):
    saved_key(factory.family(), OLD_KEY)
    saved_key(factory.family(), STRANGER_KEY)
    degraded = instance(OLD_KEY)
    health = degraded.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "degraded"
    assert "1 of the 2 newest" in health.json["encryption_keys"]
    assert any(
        record.levelname == "ERROR" and "ENCRYPTION_KEYS" in record.getMessage()
        for record in caplog.records
    )


def test_a_key_that_cannot_be_opened_at_sign_in_says_so_and_counts_nothing(
    app, browser, factory, clock
):
    user = two_step_family(factory)
    saved_key(user, STRANGER_KEY)
    assert browser.login("pat@example.com").headers["Location"] == VERIFY
    for htmx in (False, True):
        response = browser.post(VERIFY, {"code": totp_code(SECRET, clock)}, htmx=htmx)
        assert response.status_code == 503
        assert UNREADABLE_TEXT in html.unescape(response.get_data(as_text=True))
    assert browser.get("/profile").status_code != 200  # still not signed in
    assert SecurityEvent.select().where(SecurityEvent.kind == CODE_FAILED).count() == 0
    assert User.get_by_id(user.id).failed_code_count == 0


def test_rotate_keys_with_a_key_missing_explains_exits_1_and_changes_nothing(app, factory):
    readable = saved_key(factory.family(), OLD_KEY)
    unreadable = saved_key(factory.family(), STRANGER_KEY)
    app.config["ENCRYPTION_KEYS"] = f"{NEW_KEY},{OLD_KEY}"
    result = app.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Nothing was re-encrypted" in result.output and "ENCRYPTION_KEYS" in result.output
    assert "1 of 2" in result.output
    assert VerificationMethod.get_by_id(readable.id).secret == readable.secret
    assert VerificationMethod.get_by_id(unreadable.id).secret == unreadable.secret


def test_rotate_keys_with_the_full_list_re_encrypts_under_the_new_key(app, factory):
    method = saved_key(factory.family(), OLD_KEY)
    app.config["ENCRYPTION_KEYS"] = f"{NEW_KEY},{OLD_KEY}"
    result = app.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 0, result.output
    app.config["ENCRYPTION_KEYS"] = NEW_KEY
    assert crypto.decrypt(VerificationMethod.get_by_id(method.id).secret) == SECRET
