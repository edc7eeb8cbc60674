"""Recovery codes (the way in when the phone is lost) and trusted devices ("Don't ask again on
this device"). Neither table ever holds a usable secret: codes and device tokens are hashed."""

from peewee import CharField, DateTimeField, ForeignKeyField, TextField

from models import BaseModel
from models.clock import now
from models.people import User
from models.sessions import UserSession


class RecoveryCode(BaseModel):
    """One single-use recovery code of a set of ten.

    `lookup` is a keyed HMAC of (person, code) that finds the row without trying ten slow
    hashes; `code_hash` is the salted argon2id hash that must also match.
    """

    user = ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    lookup = CharField(max_length=64)
    code_hash = CharField(max_length=255)
    created_at = DateTimeField(default=now)
    used_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("user", "lookup"), True),
            (("user", "used_at"), False),
        )


class FreshRecoveryCodes(BaseModel):
    """A set just generated, held (encrypted) for the session that generated it, so its
    shown-once page can be reloaded, downloaded and printed for a few minutes. Deleted when
    the person is done, when it is too old, and with the session (cascade)."""

    session = ForeignKeyField(UserSession, unique=True, on_delete="CASCADE")
    user = ForeignKeyField(User, on_delete="CASCADE")
    codes = TextField()  # models.crypto token of the codes, one a line
    created_at = DateTimeField(default=now)


class TrustedDevice(BaseModel):
    """A browser where the person chose "Don't ask again on this device for 30 days".

    The browser's cookie holds a random token; only its SHA-256 is stored.
    """

    user = ForeignKeyField(User, backref="trusted_devices", on_delete="CASCADE")
    token_hash = CharField(max_length=64, unique=True)
    label = CharField(max_length=100, default="")  # "Firefox on Windows"
    created_at = DateTimeField(default=now)
    last_used_at = DateTimeField(null=True)
    expires_at = DateTimeField()

    class Meta:
        indexes = ((("user", "expires_at"), False),)
