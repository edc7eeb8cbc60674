"""Encryption at rest of authenticator keys: round trip, key rotation, wrong keys, settings."""

import pytest
from cryptography.fernet import Fernet

from app import ConfigurationError, create_app
from models import crypto

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_round_trip_without_the_secret_in_the_token(db):
    token = crypto.encrypt(SECRET)
    assert token != SECRET
    assert SECRET not in token
    assert crypto.decrypt(token) == SECRET


def test_the_same_secret_encrypts_differently_each_time(db):
    assert crypto.encrypt(SECRET) != crypto.encrypt(SECRET)


def test_a_token_made_with_an_old_key_decrypts_after_a_new_key_is_put_first(app, db):
    app.config["ENCRYPTION_KEYS"] = OLD_KEY
    old_token = crypto.encrypt(SECRET)

    app.config["ENCRYPTION_KEYS"] = f"{NEW_KEY}, {OLD_KEY}"
    assert crypto.decrypt(old_token) == SECRET
    rotated = crypto.rotate(old_token)
    assert rotated != old_token

    app.config["ENCRYPTION_KEYS"] = NEW_KEY
    assert crypto.decrypt(rotated) == SECRET
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(old_token)


def test_a_wrong_key_refuses(app, db):
    app.config["ENCRYPTION_KEYS"] = OLD_KEY
    token = crypto.encrypt(SECRET)
    app.config["ENCRYPTION_KEYS"] = NEW_KEY
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)
    with pytest.raises(crypto.DecryptionError):
        crypto.rotate(token)


def test_an_altered_token_refuses(db):
    token = crypto.encrypt(SECRET)
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(altered)


def test_without_encryption_keys_the_key_comes_from_secret_key(app, db):
    app.config["ENCRYPTION_KEYS"] = ""
    token = crypto.encrypt(SECRET)
    assert crypto.decrypt(token) == SECRET
    app.config["SECRET_KEY"] = "another-secret-key-entirely"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_derived_keys_differ_by_purpose(db):
    assert crypto.derive_key("one-time codes") != crypto.derive_key("encryption")
    assert len(crypto.derive_key("encryption")) == 32


@pytest.mark.parametrize("setting", ["not-a-key", f"{OLD_KEY},short", " , "])
def test_parse_keys_refuses_what_is_not_a_fernet_key(setting):
    with pytest.raises(ValueError):
        crypto.parse_keys(setting)


def test_production_refuses_to_start_without_encryption_keys(monkeypatch, tmp_path):
    monkeypatch.delenv("ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS is not set"):
        create_app(
            {
                "TWOSTEP_ENV": "production",
                "SECRET_KEY": "x" * 40,
                "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            }
        )


@pytest.mark.parametrize("mode", ["production", "development"])
def test_an_invalid_encryption_key_stops_the_app_with_a_clear_message(mode, tmp_path):
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS is not valid: key 2") as error:
        create_app(
            {
                "TWOSTEP_ENV": mode,
                "SECRET_KEY": "x" * 40,
                "ENCRYPTION_KEYS": f"{OLD_KEY},hunter2-not-a-key",
                "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            }
        )
    assert "hunter2" not in str(error.value)


def test_production_starts_with_valid_keys(tmp_path):
    app = create_app(
        {
            "TWOSTEP_ENV": "production",
            "SECRET_KEY": "x" * 40,
            "ENCRYPTION_KEYS": f"{NEW_KEY},{OLD_KEY}",
            "OUTBOX_IN_PRODUCTION": True,
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        }
    )
    with app.app_context():
        assert crypto.decrypt(crypto.encrypt(SECRET)) == SECRET
