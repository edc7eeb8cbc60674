"""Limits on sending codes and on guessing them (SPEC "Security the product promises").

Sends are counted from the OneTimeCode table, so the limits are exact under the injected
clock and shared by every instance of the app. Wrong codes are counted per login, across
sessions, devices and methods: MAX_FAILED_CODES in a row pause verification for
VERIFICATION_PAUSE_MINUTES.
"""

import math
from datetime import datetime, timedelta

from flask import current_app

from models import db
from models.clock import now
from models.events import CODE_FAILED, VERIFICATION_PAUSED
from models.people import User
from models.verification import SEND_PENDING, OneTimeCode
from services.security import security_log

HOUR = timedelta(hours=1)


def sent_or_sending(moment: datetime):
    """The codes that count towards the send limits: every code whose send completed, and
    those still being sent (DELIVERY_TIMEOUT plus a margin), but not one whose send never
    completed (its worker died: nobody received it)."""
    in_flight = timedelta(seconds=current_app.config["DELIVERY_TIMEOUT"] + 10)
    return (OneTimeCode.expires_at != SEND_PENDING) | (OneTimeCode.created_at > moment - in_flight)


def _hourly_cap_ends(condition, moment: datetime) -> datetime | None:
    """When the sends matching `condition` fall back under CODE_SENDS_PER_HOUR, if over it."""
    cap = current_app.config["CODE_SENDS_PER_HOUR"]
    in_last_hour = list(
        OneTimeCode.select(OneTimeCode.created_at)
        .where(condition, OneTimeCode.created_at > moment - HOUR, sent_or_sending(moment))
        .order_by(OneTimeCode.created_at)
    )
    if len(in_last_hour) < cap:
        return None
    # Allowed again once enough of them are an hour old to leave cap - 1 in the window.
    return in_last_hour[len(in_last_hour) - cap].created_at + HOUR


def send_retry_at(user: User, destination: str) -> datetime | None:
    """None when a code may be sent to `destination` now; otherwise the moment it may.

    Applies the per-destination cooldown and the hourly caps per account and per destination.
    """
    moment = now()
    limits = []
    last_to_destination = (
        OneTimeCode.select(OneTimeCode.created_at)
        .where(OneTimeCode.destination == destination, sent_or_sending(moment))
        .order_by(OneTimeCode.created_at.desc())
        .first()
    )
    if last_to_destination is not None:
        cooldown = timedelta(seconds=current_app.config["CODE_RESEND_COOLDOWN"])
        limits.append(last_to_destination.created_at + cooldown)
    limits.append(_hourly_cap_ends(OneTimeCode.user == user, moment))
    limits.append(_hourly_cap_ends(OneTimeCode.destination == destination, moment))
    latest = max((limit for limit in limits if limit is not None), default=None)
    return latest if latest is not None and latest > moment else None


def _fresh(user: User, field):
    """One column of `user` as the database has it now (another device may have changed it)."""
    return getattr(User.select(field).where(User.id == user.id).get(), field.name)


def paused_until(user: User) -> datetime | None:
    """When `user`'s paused verification resumes, or None if it is not paused now."""
    if getattr(user, "read_with_session", False):
        # Read with this request's session (services.account.sessions): as fresh as a second read.
        until = user.verification_paused_until
    else:
        until = _fresh(user, User.verification_paused_until)
    user.verification_paused_until = until
    return until if until is not None and until > now() else None


def record_failure(user: User, method_kind: str = "") -> datetime | None:
    """Count a wrong code; the MAX_FAILED_CODES-th in a row pauses verification.

    Returns when the pause ends if this failure started it (the person is emailed), else None.
    """
    config = current_app.config
    moment = now()
    pause_end = moment + timedelta(minutes=config["VERIFICATION_PAUSE_MINUTES"])
    with db.atomic():
        User.update(failed_code_count=User.failed_code_count + 1).where(
            User.id == user.id
        ).execute()
        started = (
            User.update(failed_code_count=0, verification_paused_until=pause_end)
            .where(User.id == user.id, User.failed_code_count >= config["MAX_FAILED_CODES"])
            .execute()
        )
    security_log.record(CODE_FAILED, user, method_kind=method_kind, notify=False)
    if not started:
        user.failed_code_count = _fresh(user, User.failed_code_count)
        return None
    user.failed_code_count = 0
    user.verification_paused_until = pause_end
    security_log.record(
        VERIFICATION_PAUSED,
        user,
        method_kind=method_kind,
        detail=f"{config['MAX_FAILED_CODES']} wrong codes in a row; paused until "
        f"{pause_end:%Y-%m-%d %H:%M} UTC",
        paused_until=pause_end,
    )
    return pause_end


def record_success(user: User) -> None:
    """A right code: the count of wrong codes in a row starts again from zero."""
    if user.failed_code_count == 0 and getattr(user, "read_with_session", False):
        return  # nothing to reset (read at the start of this request)
    User.update(failed_code_count=0).where(User.id == user.id).execute()
    user.failed_code_count = 0


def in_words(moment: datetime) -> str:
    """How long until `moment`, as shown on screen: "in 30 seconds", "in 15 minutes"."""
    seconds = math.ceil((moment - now()).total_seconds())
    if seconds <= 0:
        return "now"
    if seconds < 60:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"in {minutes} minute{'s' if minutes != 1 else ''}"
