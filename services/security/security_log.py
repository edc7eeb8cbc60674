"""The security log and the emails its events send to the person concerned."""

from models.clock import now
from models.compiled import CompiledSelect, CompiledWrite
from models.events import (
    METHOD_ADDED,
    METHOD_REMOVED,
    PASSWORD_RECHECK_LIMITED,
    POSSIBLE_CLONED_KEY,
    RECOVERY_CODE_USED,
    RECOVERY_CODE_USED_FOR_RESET,
    RECOVERY_CODES_CREATED,
    RESET,
    TWO_STEP_OFF,
    TWO_STEP_ON,
    VERIFICATION_LOCKED,
    VERIFICATION_PAUSED,
    SecurityEvent,
)
from models.people import User
from services.delivery.mail import send_notice
from services.language import N_
from services.security import client

# Events that email the person, with the subject of that email.
NOTIFY_SUBJECTS = {
    METHOD_ADDED: N_("A two-factor authentication device has been added"),
    METHOD_REMOVED: N_("A two-factor authentication device has been removed"),
    TWO_STEP_ON: N_("2-Step Verification is on"),
    TWO_STEP_OFF: N_("2-Step Verification is off"),
    RESET: N_("Your 2-Step Verification was reset"),
    VERIFICATION_PAUSED: N_("Wrong verification codes were entered for your account"),
    VERIFICATION_LOCKED: N_("Verification codes no longer work for your account"),
    RECOVERY_CODE_USED: N_("A recovery code was used to sign in to your account"),
    RECOVERY_CODE_USED_FOR_RESET: N_("A recovery code was used to reset your password"),
    RECOVERY_CODES_CREATED: N_("New recovery codes were created for your account"),
    POSSIBLE_CLONED_KEY: N_("A security key on your account may have been copied"),
    PASSWORD_RECHECK_LIMITED: N_("Too many wrong passwords were entered on your account"),
}


# What an event is written with, by name: record's INSERT and services.signin's one-statement
# sign-in (which logs its event inside that statement) both write these.
COLUMNS = {
    "user": SecurityEvent.user,
    "actor": SecurityEvent.actor,
    "kind": SecurityEvent.kind,
    "method_kind": SecurityEvent.method_kind,
    "detail": SecurityEvent.detail,
    "ip": SecurityEvent.ip,
    "user_agent": SecurityEvent.user_agent,
    "created_at": SecurityEvent.created_at,
}

# Every sign-in (and every other event) runs it: its SQL is written once (models/compiled.py).
_INSERT = CompiledWrite(lambda **columns: SecurityEvent.insert(**columns), **COLUMNS)


def record(
    kind: str,
    user: User,
    *,
    actor: User | None = None,
    method_kind: str = "",
    detail: str = "",
    notify: bool = True,
    **email_context,
) -> SecurityEvent:
    """Log `kind` for `user` (done by `actor`, by default the user, from the client being
    served) and email them if it is one of the events people are told about."""
    asking = client.current()
    fields = {
        "actor": actor or user,
        "kind": kind,
        "method_kind": method_kind,
        "detail": detail[:1000],
        "ip": asking.ip,
        "user_agent": asking.user_agent,
        "created_at": now(),
    }
    event = SecurityEvent(id=_INSERT.run(user=user, **fields), user=user, **fields)
    event._dirty.clear()  # as saved
    if notify and kind in NOTIFY_SUBJECTS:
        send_notice(
            user.email,
            NOTIFY_SUBJECTS[kind],
            "security_event",
            user=user,
            event=event,
            actor=actor,
            **email_context,
        )
    return event


# The 2-Step Verification window shows them on every load: SQL written once.
_RECENT_EVENTS = CompiledSelect(
    lambda user, limit: (
        SecurityEvent.select()
        .where(SecurityEvent.user == user)
        .order_by(SecurityEvent.created_at.desc(), SecurityEvent.id.desc())
        .limit(limit)
    ),
    user=SecurityEvent.user,
    limit=None,
)


def recent_events(user: User, limit: int = 10) -> list[SecurityEvent]:
    """The latest events about `user`, newest first."""
    return _RECENT_EVENTS.rows(user=user, limit=int(limit))
