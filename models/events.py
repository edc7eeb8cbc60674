"""The security log: who did what to whose 2-Step Verification, and when."""

from flask_babel import lazy_gettext as _l
from peewee import CharField, DateTimeField, ForeignKeyField, TextField

from models import BaseModel
from models.clock import now
from models.people import User

METHOD_ADDED = "method_added"
METHOD_REMOVED = "method_removed"
TWO_STEP_ON = "2sv_on"
TWO_STEP_OFF = "2sv_off"
CODE_SENT = "code_sent"
CODE_FAILED = "code_failed"
VERIFICATION_PAUSED = "verification_paused"
VERIFICATION_LOCKED = "verification_locked"
SIGNED_IN = "signed_in"
SIGNED_OUT = "signed_out"
SESSIONS_ENDED = "sessions_ended"
RESET = "reset"
PASSWORD_CHANGED = "password_changed"
RECOVERY_CODES_CREATED = "recovery_codes_created"
RECOVERY_CODE_USED = "recovery_code_used"
RECOVERY_CODE_USED_FOR_RESET = "recovery_code_reset"
TRUSTED_DEVICE_ADDED = "trusted_device_added"
TRUSTED_DEVICES_REVOKED = "trusted_devices_revoked"
POSSIBLE_CLONED_KEY = "possible_cloned_key"
SECURITY_KEY_FAILED = "security_key_failed"
DELIVERY_FAILED = "delivery_failed"
PASSWORD_RECHECK_FAILED = "password_recheck_failed"
PASSWORD_RECHECK_LIMITED = "password_recheck_limited"
SIGN_IN_PASSWORD_FAILED = "sign_in_password_failed"

# Each in the language of the page, email or export that shows it.
EVENT_LABELS = {
    METHOD_ADDED: _l("Verification method added"),
    METHOD_REMOVED: _l("Verification method removed"),
    TWO_STEP_ON: _l("2-Step Verification turned on"),
    TWO_STEP_OFF: _l("2-Step Verification turned off"),
    CODE_SENT: _l("Verification code sent"),
    CODE_FAILED: _l("Wrong verification code"),
    VERIFICATION_PAUSED: _l("Verification paused after wrong codes"),
    VERIFICATION_LOCKED: _l("Codes locked after too many wrong codes"),
    SIGNED_IN: _l("Signed in"),
    SIGNED_OUT: _l("Signed out"),
    SESSIONS_ENDED: _l("Other sessions signed out"),
    RESET: _l("2-Step Verification reset by an admin"),
    PASSWORD_CHANGED: _l("Password changed"),
    RECOVERY_CODES_CREATED: _l("New recovery codes created"),
    RECOVERY_CODE_USED: _l("Recovery code used to sign in"),
    RECOVERY_CODE_USED_FOR_RESET: _l("Recovery code used to reset the password"),
    TRUSTED_DEVICE_ADDED: _l("Device remembered (no code asked there)"),
    TRUSTED_DEVICES_REVOKED: _l("Remembered devices revoked"),
    POSSIBLE_CLONED_KEY: _l("Security key refused: its counter went backwards (possibly cloned)"),
    SECURITY_KEY_FAILED: _l("Security key refused"),
    DELIVERY_FAILED: _l("Verification code not delivered"),
    PASSWORD_RECHECK_FAILED: _l("Wrong password when asked again before a change"),
    PASSWORD_RECHECK_LIMITED: _l("Signed out after too many wrong passwords"),
    SIGN_IN_PASSWORD_FAILED: _l("Wrong password at sign-in"),
}


# Events whose detail names a method, a destination or a device (shown beside the label).
DETAILS_SHOWN = {METHOD_ADDED, METHOD_REMOVED, CODE_SENT, TRUSTED_DEVICE_ADDED, DELIVERY_FAILED}


class SecurityEvent(BaseModel):
    """One entry of the security log. Never holds a code, a key or a password."""

    user = ForeignKeyField(User, backref="security_events", on_delete="CASCADE")
    actor = ForeignKeyField(User, null=True, on_delete="SET NULL")
    kind = CharField(max_length=30)
    # A method kind, or "recovery" / "trusted_device" for sign-ins that used neither.
    method_kind = CharField(max_length=20, default="")
    detail = TextField(default="")
    ip = CharField(max_length=64, default="")
    user_agent = CharField(max_length=300, default="")
    created_at = DateTimeField(default=now, index=True)

    class Meta:
        indexes = ((("user", "created_at"), False),)

    @property
    def shown_detail(self) -> str:
        """The detail as the person's window shows it: a method's or a device's name. The
        other kinds' details are notes for the log (English, like the CSV), not sentences
        for the screen; their label says what happened."""
        return self.detail if self.kind in DETAILS_SHOWN else ""

    @property
    def label(self) -> str:
        """What happened, in the current language."""
        return str(EVENT_LABELS[self.kind]) if self.kind in EVENT_LABELS else self.kind
