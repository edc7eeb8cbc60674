"""Verification methods, set-ups waiting for their code, and one-time codes."""

from datetime import datetime

from peewee import (
    SQL,
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from models import BaseModel
from models.clock import now
from models.people import User
from models.request_cache import ForgetOnWrite

TOTP = "totp"
EMAIL = "email"
SMS = "sms"
WEBAUTHN = "webauthn"  # a security key or passkey; a person may have several
KINDS = (TOTP, EMAIL, SMS, WEBAUTHN)

SIGN_IN = "sign_in"
ENROL = "enrol"

# `OneTimeCode.expires_at` of a code whose send has not completed: never alive, so never
# accepted. A send that completes (or times out: "delivery unknown") gives the code its real
# expiry; a code whose worker died mid-send keeps this, and stops counting towards the send
# limits once it can no longer be in flight (services.throttle.sent_or_sending).
SEND_PENDING = datetime(1970, 1, 1)


class VerificationMethod(ForgetOnWrite, BaseModel):
    """A saved way to give the second step. At most one of each kind per login, except
    security keys (kind "webauthn"): several, each named by the person.

    The signed-in person's methods are read once per request (with the session, see
    services.account.sessions) and kept for that request; any write to this table forgets them.
    """

    user = ForeignKeyField(User, backref="methods", on_delete="CASCADE")
    kind = CharField(max_length=10)
    # The email address or the E.164 phone number; empty for the authenticator app.
    destination = CharField(max_length=254, default="")
    # The authenticator key, encrypted (models.crypto); empty for other kinds.
    secret = TextField(default="")
    # The last TOTP time step accepted: a step is never accepted twice (SPEC Decisions 6).
    last_totp_step = BigIntegerField(default=0)
    created_at = DateTimeField(default=now)
    last_used_at = DateTimeField(null=True)
    # Security keys only (services/methods/webauthn_keys.py): the credential id (base64url), its
    # COSE public key (base64url), the authenticator's signature counter and its transports.
    credential_id = CharField(max_length=1400, null=True, unique=True)
    # Defaults in the database too, so rows written by plain SQL (tests, scripts) still fit.
    public_key = TextField(default="", constraints=[SQL("DEFAULT ''")])
    sign_count = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])
    transports = CharField(max_length=200, default="", constraints=[SQL("DEFAULT ''")])
    # Email and text message: when the last two codes sent here both failed to arrive, why
    # (a key of services.methods.deliveries.REASONS), else "". Kept here so the window shows it
    # without another query; services.methods.deliveries keeps it in step with the deliveries.
    delivery_problem = CharField(max_length=30, default="", constraints=[SQL("DEFAULT ''")])


# One of each kind per login, security keys excepted (a partial unique index).
VerificationMethod.add_index(
    VerificationMethod.index(
        VerificationMethod.user,
        VerificationMethod.kind,
        unique=True,
        where=(VerificationMethod.kind != WEBAUTHN),
    )
)


class PendingSetup(BaseModel):
    """A method being added, kept on the server until its code is confirmed."""

    user = ForeignKeyField(User, backref="pending_setups", on_delete="CASCADE")
    kind = CharField(max_length=10)
    destination = CharField(max_length=254, default="")
    secret = TextField(default="")  # encrypted pending authenticator key
    failed_attempts = IntegerField(default=0)
    created_at = DateTimeField(default=now)

    class Meta:
        indexes = ((("user", "kind"), True),)


class OneTimeCode(BaseModel):
    """A 6-digit code sent by email or text, stored as a keyed hash, usable once."""

    user = ForeignKeyField(User, backref="codes", on_delete="CASCADE")
    purpose = CharField(max_length=20)
    channel = CharField(max_length=10)  # email or sms
    destination = CharField(max_length=254)
    code_hash = CharField(max_length=64)
    created_at = DateTimeField(default=now)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)

    class Meta:
        indexes = (
            (("user", "purpose", "used_at"), False),  # live codes of a person
            (("user", "created_at"), False),  # hourly cap per account
            (("destination", "created_at"), False),  # cooldown and hourly cap per destination
            (("expires_at",), False),  # purge
        )


class WebAuthnChallenge(BaseModel):
    """A WebAuthn challenge handed to the browser: usable once, for a few minutes."""

    user = ForeignKeyField(User, backref="webauthn_challenges", on_delete="CASCADE")
    purpose = CharField(max_length=20)  # "register", "authenticate" or "password_reset"
    challenge = CharField(max_length=128)  # base64url
    created_at = DateTimeField(default=now)
    used_at = DateTimeField(null=True)

    class Meta:
        table_name = "webauthn_challenge"
        indexes = ((("user", "purpose", "challenge"), False),)
