"""Limits on sending codes and on guessing them (SPEC "Security the product promises").

Sends are counted from the OneTimeCode table, so the limits are exact under the injected
clock and shared by every instance of the app. Wrong codes are counted per login, across
sessions, devices and methods: MAX_FAILED_CODES in a row pause verification for
VERIFICATION_PAUSE_MINUTES.
"""

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from peewee import Case, PostgresqlDatabase

from models import db
from models.clock import now
from models.compiled import CompiledSelect
from models.events import CODE_FAILED, VERIFICATION_LOCKED, VERIFICATION_PAUSED
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


def _counted(user: User, since: datetime | None):
    """The sends that count towards the limits: everything except `user`'s own from before
    an admin reset (`since`), which started them afresh (Decisions 19)."""
    if since is None:
        return True
    return (OneTimeCode.user != user) | (OneTimeCode.created_at > since)


def _hourly_cap_ends(condition, cap: int, moment: datetime) -> datetime | None:
    """When the sends matching `condition` fall back under `cap` an hour, if at it."""
    in_last_hour = list(
        OneTimeCode.select(OneTimeCode.created_at)
        .where(condition, OneTimeCode.created_at > moment - HOUR, sent_or_sending(moment))
        .order_by(OneTimeCode.created_at)
    )
    if len(in_last_hour) < cap:
        return None
    # Allowed again once enough of them are an hour old to leave cap - 1 in the window.
    return in_last_hour[len(in_last_hour) - cap].created_at + HOUR


COOLDOWN = "cooldown"
CAP = "cap"


@dataclass(frozen=True)
class SendLimit:
    """Why a code may not be sent now (COOLDOWN or CAP), and when it may."""

    reason: str
    retry_at: datetime


def send_limit(user: User, destination: str) -> SendLimit | None:
    """None when a code may be sent to `destination` now; otherwise which limit holds it
    back and until when: the cooldown per destination, the hourly caps per account
    (CODE_SENDS_PER_HOUR_PER_ACCOUNT) and per destination (..._PER_DESTINATION)."""
    config = current_app.config
    moment = now()
    counted = _counted(user, getattr(user, "sends_counted_since", None))
    last_to_destination = (
        OneTimeCode.select(OneTimeCode.created_at)
        .where(OneTimeCode.destination == destination, counted, sent_or_sending(moment))
        .order_by(OneTimeCode.created_at.desc())
        .first()
    )
    caps = [
        _hourly_cap_ends(
            (OneTimeCode.user == user) & counted, config["CODE_SENDS_PER_HOUR_PER_ACCOUNT"], moment
        ),
        _hourly_cap_ends(
            (OneTimeCode.destination == destination) & counted,
            config["CODE_SENDS_PER_HOUR_PER_DESTINATION"],
            moment,
        ),
    ]
    cap_end = max((end for end in caps if end is not None and end > moment), default=None)
    if cap_end is not None:
        return SendLimit(CAP, cap_end)
    if last_to_destination is not None:
        cooldown_end = last_to_destination.created_at + timedelta(
            seconds=config["CODE_RESEND_COOLDOWN"]
        )
        if cooldown_end > moment:
            return SendLimit(COOLDOWN, cooldown_end)
    return None


def send_retry_at(user: User, destination: str) -> datetime | None:
    """None when a code may be sent to `destination` now; otherwise the moment it may."""
    limit = send_limit(user, destination)
    return limit.retry_at if limit is not None else None


def hold_sends(user: User, destination: str) -> None:
    """Inside a transaction: wait for, then hold, the right to send `user` a code to
    `destination`, so that checking the limits and recording the code are one step.

    A no-op UPDATE of the login's row takes its row lock (PostgreSQL) or the database's write
    lock (SQLite); on PostgreSQL a transaction-scoped advisory lock on the destination also
    orders two logins sharing one address or phone. Reads `sends_counted_since` afresh.
    """
    rows = list(
        User.update(sends_counted_since=User.sends_counted_since)
        .where(User.id == user.id)
        .returning(User.sends_counted_since)
        .execute()
    )
    if rows:
        user.sends_counted_since = rows[0].sends_counted_since
    if isinstance(db.obj, PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"send:{destination}",))


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


# --- guesses: a reservation before each code is judged (Decisions 17 and 18) -----------------

# Kinds that still work once codes are locked: they are what unlocks a login.
UNLOCKING_KINDS = frozenset({"recovery", "webauthn"})


def pause_length(number: int) -> timedelta:
    """How long the `number`-th pause of a run of wrong codes lasts: 15, 30, 60 minutes ...
    (VERIFICATION_PAUSE_MINUTES doubling each time), at most MAX_PAUSE_HOURS."""
    config = current_app.config
    return _pause_length(number, config["VERIFICATION_PAUSE_MINUTES"], config["MAX_PAUSE_HOURS"])


def _pause_length(number: int, first_minutes: float, longest_hours: float) -> timedelta:
    longest = timedelta(hours=longest_hours)
    return min(timedelta(minutes=first_minutes) * 2 ** min(max(number - 1, 0), 30), longest)


def lock_threshold() -> int:
    """Wrong codes in a row after which codes stop working for a login (NIST SP 800-63B)."""
    return current_app.config["LOCK_AFTER_FAILED_CODES"]


def is_locked(user: User) -> bool:
    """Whether codes have stopped working for `user` (LOCK_AFTER_FAILED_CODES wrong in a row)."""
    return (user.failed_code_count or 0) >= lock_threshold()


@dataclass(frozen=True)
class Reservation:
    """An attempt taken from a login's budget before a code is judged, or why none was left.

    `count` is the run of wrong codes this attempt brought the login to; `pause_end` is set
    when this attempt was the last before a pause (the pause already stands: a parallel
    request finds it); `locked` when it was the last before the lock. A refusal carries the
    pause's end, or `locked`.
    """

    taken: bool
    count: int = 0
    pause_end: datetime | None = None
    locked: bool = False


def _pause_schedule() -> tuple[int, int, tuple[timedelta, ...], timedelta]:
    """MAX_FAILED_CODES, the lock threshold, the lengths of the escalating pauses before the
    longest, and the longest: worked out once per set of settings, not on every guess."""
    config = current_app.config
    return _schedule_for(
        config["MAX_FAILED_CODES"],
        lock_threshold(),
        config["VERIFICATION_PAUSE_MINUTES"],
        config["MAX_PAUSE_HOURS"],
    )


@functools.cache
def _schedule_for(
    per: int, lock: int, first_minutes: float, longest_hours: float
) -> tuple[int, int, tuple[timedelta, ...], timedelta]:
    def length(number: int) -> timedelta:
        return _pause_length(number, first_minutes, longest_hours)

    steps, number = [], 1
    longest = length(10**6)
    while per * number < lock and length(number) < longest:
        steps.append(length(number))
        number += 1
    return per, lock, tuple(steps), longest


def _reserve_statement(per: int, lock: int, pauses: int, unlocking: bool):
    """The reservation's conditional UPDATE ... RETURNING for one pause schedule: `pauses`
    escalating pauses (`until_0`, ...), then the longest (`longest_until`) at every later
    multiple of `per` but the lock. Built once per schedule and kind (models/compiled.py):
    its CASE is most of the time peewee takes to write it."""

    def build(user, moment, longest_until, **untils):
        after = User.failed_code_count + 1
        whens = [(after == per * (index + 1), untils[f"until_{index}"]) for index in range(pauses)]
        # Every later multiple of MAX_FAILED_CODES (but the lock itself) pauses for the
        # longest. Written as arithmetic: peewee's `%` means LIKE.
        multiple = (after - (after / per) * per) == 0
        whens.append((multiple & (after != lock), longest_until))
        condition = (User.id == user) & (
            User.verification_paused_until.is_null() | (User.verification_paused_until <= moment)
        )
        if not unlocking:
            condition &= User.failed_code_count < lock
        return (
            User.update(
                failed_code_count=after,
                verification_paused_until=Case(None, whens, User.verification_paused_until),
            )
            .where(condition)
            .returning(User.failed_code_count, User.verification_paused_until)
        )

    moments = {f"until_{index}": User.verification_paused_until for index in range(pauses)}
    return CompiledSelect(
        build,
        user=User.id,
        moment=User.verification_paused_until,
        longest_until=User.verification_paused_until,
        **moments,
    )


_RESERVE_STATEMENTS: dict[tuple, CompiledSelect] = {}


def reserve(user: User, method_kind: str = "") -> Reservation:
    """Take one attempt from `user`'s budget before a code of `method_kind` is judged.

    One conditional UPDATE (atomic on SQLite and PostgreSQL, whatever runs in parallel):
    refused while a pause lasts, and - except for recovery codes and security keys - once
    the login is locked. The attempt that completes MAX_FAILED_CODES sets the pause itself,
    so no parallel request is judged past it; a right code then lifts it (`record_success`).
    """
    moment = now()
    per, lock, steps, longest = _pause_schedule()
    key = (per, lock, len(steps), method_kind in UNLOCKING_KINDS)
    statement = _RESERVE_STATEMENTS.get(key)
    if statement is None:
        statement = _RESERVE_STATEMENTS[key] = _reserve_statement(*key)
    rows = statement.rows(
        user=user.id,
        moment=moment,
        longest_until=moment + longest,
        **{f"until_{index}": moment + step for index, step in enumerate(steps)},
    )
    if not rows:
        current = (
            User.select(User.failed_code_count, User.verification_paused_until)
            .where(User.id == user.id)
            .get()
        )
        user.failed_code_count = current.failed_code_count
        user.verification_paused_until = current.verification_paused_until
        until = paused_until(user)
        return Reservation(False, current.failed_code_count, until, locked=until is None)
    count, until = rows[0].failed_code_count, rows[0].verification_paused_until
    user.failed_code_count, user.verification_paused_until = count, until
    started_pause = until if until is not None and until > moment else None
    return Reservation(True, count, started_pause, locked=count == lock_threshold())


def record_failure(user: User, reservation: Reservation, method_kind: str = "") -> Reservation:
    """A reserved attempt was wrong: log it; when it was the last before a pause or the lock,
    log that and email the person. Returns the reservation (its pause end or lock to show)."""
    security_log.record(CODE_FAILED, user, method_kind=method_kind, notify=False)
    if reservation.locked:
        security_log.record(
            VERIFICATION_LOCKED,
            user,
            method_kind=method_kind,
            detail=f"{reservation.count} wrong codes in a row; codes no longer work for this "
            "login until an admin resets it or a recovery code or security key is used",
        )
    elif reservation.pause_end is not None:
        security_log.record(
            VERIFICATION_PAUSED,
            user,
            method_kind=method_kind,
            detail=f"{reservation.count} wrong codes in a row; paused until "
            f"{reservation.pause_end:%Y-%m-%d %H:%M} UTC",
            paused_until=reservation.pause_end,
        )
    return reservation


def give_back(user: User, reservation: Reservation) -> None:
    """Return a reserved attempt that was no guess (a right code repeated): the count goes
    back, and the pause it set is lifted - unless another attempt has been taken since."""
    if not reservation.taken:
        return
    changes = {User.failed_code_count: reservation.count - 1}
    if reservation.pause_end is not None:
        changes[User.verification_paused_until] = None
    User.update(changes).where(
        User.id == user.id, User.failed_code_count == reservation.count
    ).execute()


def record_success(user: User) -> None:
    """A right second step: the run of wrong codes starts again from zero (ending a lock, and
    the pause the attempt that proved it may have set)."""
    User.update(failed_code_count=0, verification_paused_until=None).where(
        User.id == user.id
    ).execute()
    user.failed_code_count = 0
    user.verification_paused_until = None


def in_words(moment: datetime) -> str:
    """How long until `moment`, as shown on screen: "in 30 seconds", "in 15 minutes"."""
    seconds = math.ceil((moment - now()).total_seconds())
    if seconds <= 0:
        return _("now")
    if seconds < 60:
        return ngettext("in %(num)d second", "in %(num)d seconds", seconds)
    return ngettext("in %(num)d minute", "in %(num)d minutes", math.ceil(seconds / 60))
