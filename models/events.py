"""The security log: who did what to whose 2-Step Verification, and when."""

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

EVENT_LABELS = {
    METHOD_ADDED: "Verification method added",
    METHOD_REMOVED: "Verification method removed",
    TWO_STEP_ON: "2-Step Verification turned on",
    TWO_STEP_OFF: "2-Step Verification turned off",
    CODE_SENT: "Verification code sent",
    CODE_FAILED: "Wrong verification code",
    VERIFICATION_PAUSED: "Verification paused after wrong codes",
    VERIFICATION_LOCKED: "Codes locked after too many wrong codes",
    SIGNED_IN: "Signed in",
    SIGNED_OUT: "Signed out",
    SESSIONS_ENDED: "Other sessions signed out",
    RESET: "2-Step Verification reset by an admin",
    PASSWORD_CHANGED: "Password changed",
    RECOVERY_CODES_CREATED: "New recovery codes created",
    RECOVERY_CODE_USED: "Recovery code used to sign in",
    RECOVERY_CODE_USED_FOR_RESET: "Recovery code used to reset the password",
    TRUSTED_DEVICE_ADDED: "Device remembered (no code asked there)",
    TRUSTED_DEVICES_REVOKED: "Remembered devices revoked",
    POSSIBLE_CLONED_KEY: "Security key refused: its counter went backwards (possibly cloned)",
    SECURITY_KEY_FAILED: "Security key refused",
    DELIVERY_FAILED: "Verification code not delivered",
    PASSWORD_RECHECK_FAILED: "Wrong password when asked again before a change",
    PASSWORD_RECHECK_LIMITED: "Signed out after too many wrong passwords",
}


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
    def label(self) -> str:
        return EVENT_LABELS.get(self.kind, self.kind)
