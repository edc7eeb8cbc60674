"""Recovery codes: ten single-use codes that sign a person in when their phone is lost (or
open a password reset link's new-password form in place of the second step).

A code is 12 characters from an alphabet without look-alikes (no 0, O, 1, I, L), shown as
`ABCD-EFGH-2345`: 31^12, about 59 bits from `secrets`. It is stored only as a salted
argon2id hash, next to a keyed HMAC of (person, code) that finds its row, so checking a
typed code costs one slow hash, not ten. A code is consumed by a conditional UPDATE
(`used_at IS NULL`), so it works once even when two requests race. A new set replaces the
old one entirely; an admin reset deletes the set.

Just after a set is made, its codes are held encrypted for the session that made them
(FreshRecoveryCodes) so the shown-once page can offer Download and Print; they are gone when
the person is done, after RECOVERY_CODES_SHOWN_MINUTES, or when that session ends.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from peewee import Case, fn

from models import crypto, db
from models.clock import now
from models.compiled import CompiledSelect
from models.events import RECOVERY_CODE_USED, RECOVERY_CODES_CREATED
from models.people import User
from models.recovery import FreshRecoveryCodes, RecoveryCode
from models.sessions import UserSession
from services.language import N_
from services.methods import challenge
from services.methods.policy import Decision
from services.security import security_log, throttle

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # 31 symbols: no 0/O, 1/I/L
LENGTH = 12
GROUP = 4
COUNT = 10
RECOVERY = "recovery"  # the method_kind recorded when a recovery code signs someone in

# The codes carry ~59 random bits, so a lighter argon2id than the password one is plenty
# against an offline search, and ten of them hash in well under a second.
_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_.]")


def normalize(raw) -> str | None:
    """The 12 code characters of what was typed (any case, with or without dashes or
    spaces), or None when it cannot be a recovery code."""
    if not isinstance(raw, str) or len(raw) > 4 * LENGTH:
        return None
    cleaned = _SEPARATORS.sub("", raw).upper()
    if len(cleaned) != LENGTH or any(char not in ALPHABET for char in cleaned):
        return None
    return cleaned


def display(code: str) -> str:
    """`ABCDEFGH2345` as `ABCD-EFGH-2345`."""
    return "-".join(code[start : start + GROUP] for start in range(0, len(code), GROUP))


def _lookup(user_id: int, code: str) -> str:
    message = f"{user_id}:{code}".encode()
    key = crypto.derive_key("recovery code lookup")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


# --- the set ---------------------------------------------------------------------------------


def can_generate(user: User) -> Decision:
    """Recovery codes belong to an account with 2-Step Verification on."""
    if not user.two_step_enabled:
        return Decision(False, _("Turn on 2-Step Verification first, then get recovery codes."))
    return Decision(True)


def generate(user: User) -> list[str]:
    """Make a new set of COUNT codes for `user`, voiding the old set; return the codes as
    shown (`ABCD-EFGH-2345`). They are never stored in the clear."""
    plain = set()
    while len(plain) < COUNT:
        plain.add(_new_code())
    replaced = has_set(user)
    moment = now()
    rows = [
        {
            "user": user.id,
            "lookup": _lookup(user.id, code),
            "code_hash": _hasher.hash(code),
            "created_at": moment,
        }
        for code in sorted(plain)
    ]
    with db.atomic():
        RecoveryCode.delete().where(RecoveryCode.user == user).execute()
        RecoveryCode.insert_many(rows).execute()
    # The first set comes with turning 2SV on, which has its own email; a new set is news.
    security_log.record(RECOVERY_CODES_CREATED, user, detail=f"{COUNT} codes", notify=replaced)
    return [display(code) for code in sorted(plain)]


def remaining(user: User) -> int:
    """How many of `user`'s recovery codes are still unused."""
    return (
        RecoveryCode.select()
        .where(RecoveryCode.user == user, RecoveryCode.used_at.is_null())
        .count()
    )


_STATUS = CompiledSelect(
    lambda user: (
        RecoveryCode.select(
            fn.COUNT(RecoveryCode.id),
            fn.SUM(Case(None, [(RecoveryCode.used_at.is_null(), 1)], 0)),
        )
        .where(RecoveryCode.user == user)
        .tuples()
    ),
    user=RecoveryCode.user,
)


def status(user: User) -> tuple[bool, int]:
    """(whether `user` has a set, how many of its codes are unused), read in one query: the
    2-Step Verification window shows both (its SQL written once, models/compiled.py)."""
    total, unused = _STATUS.first(user=user)
    return bool(total), int(unused or 0)


def has_set(user: User) -> bool:
    """Whether `user` has a set (used up or not) since their last reset."""
    return RecoveryCode.select().where(RecoveryCode.user == user).exists()


def needs_first_set(user: User) -> bool:
    """2SV is on but the person has never been given recovery codes (or an admin reset
    voided them): they get a set now."""
    return bool(user.two_step_enabled) and not has_set(user)


def void(user: User) -> int:
    """Delete `user`'s recovery codes (admin reset); return how many there were."""
    return RecoveryCode.delete().where(RecoveryCode.user == user).execute()


def consume(user: User, raw) -> bool:
    """Use one of `user`'s codes: True if `raw` is an unused code of theirs (it is then
    used up), False otherwise. Counts nothing; `redeem` does that."""
    code = normalize(raw)
    if code is None:
        return False
    row = RecoveryCode.get_or_none(
        RecoveryCode.user == user, RecoveryCode.lookup == _lookup(user.id, code)
    )
    if row is None or row.used_at is not None:
        return False
    try:
        _hasher.verify(row.code_hash, code)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    used = (
        RecoveryCode.update(used_at=now())
        .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_null())
        .execute()
    )
    return bool(used)


def left_words(count: int) -> str:
    """ "7 recovery codes left", "1 recovery code left", "no recovery codes left"."""
    if count == 0:
        return _("no recovery codes left")
    return ngettext("%(num)d recovery code left", "%(num)d recovery codes left", count)


# --- using a code (signing in, or a password reset link) -------------------------------------

EMPTY_MESSAGE = N_("Enter one of your recovery codes.")
FORMAT_MESSAGE = N_(
    "Recovery codes have 12 letters and digits, like ABCD-EFGH-2345. Dashes and spaces are fine."
)
WRONG_MESSAGE = N_(
    "That recovery code isn't right, or it was used already. Check it and try again."
)
JUST_USED_MESSAGE = N_("That recovery code was just used. Each code works once: enter another one.")


def redeem(user: User, raw, *, event: str = RECOVERY_CODE_USED):
    """Check and use up a typed recovery code (a challenge.VerifyResult), signing nobody in:
    sign-in and a password reset link both use it, so a code follows one set of rules.

    Refused during a pause; a wrong or used code counts towards the same pause as wrong
    verification codes (a malformed one does not). A right one resets that count, is logged
    as `event` (signing in, or RECOVERY_CODE_USED_FOR_RESET) with method kind "recovery",
    and emails the person how many are left.
    """
    until = throttle.paused_until(user)
    if until is not None:
        return challenge.VerifyResult(
            challenge.Reason.PAUSED, challenge.paused_message(until), paused_until=until
        )
    if not isinstance(raw, str) or not raw.strip():
        return challenge.VerifyResult(challenge.Reason.INVALID_FORMAT, _(EMPTY_MESSAGE))
    if normalize(raw) is None:
        return challenge.VerifyResult(challenge.Reason.INVALID_FORMAT, _(FORMAT_MESSAGE))
    reservation = throttle.reserve(user, RECOVERY)
    if not reservation.taken:
        return challenge.refusal(reservation)
    if consume(user, raw):
        throttle.record_success(user)
        left = left_words(remaining(user))
        security_log.record(
            event, user, method_kind=RECOVERY, detail=left.capitalize(), method_label=left
        )
        return challenge.VerifyResult(challenge.Reason.OK, method_kind=RECOVERY)
    if just_used(user, raw):
        throttle.give_back(user, reservation)
        return challenge.VerifyResult(challenge.Reason.JUST_USED, _(JUST_USED_MESSAGE))
    throttle.record_failure(user, reservation, RECOVERY)
    if reservation.locked or reservation.pause_end is not None:
        return challenge.refusal(reservation)
    return challenge.VerifyResult(challenge.Reason.WRONG, _(WRONG_MESSAGE))


def just_used(user: User, raw) -> bool:
    """Whether `raw` is one of `user`'s codes used in the last few minutes (a repeat of a
    right code - a double click - which is not a guess)."""
    code = normalize(raw)
    if code is None:
        return False
    recent = now() - timedelta(minutes=current_app.config["CODE_TTL_MINUTES"])
    return (
        RecoveryCode.select()
        .where(
            RecoveryCode.user == user,
            RecoveryCode.lookup == _lookup(user.id, code),
            RecoveryCode.used_at > recent,
        )
        .exists()
    )


def hold_for_display(row: UserSession, codes: list[str]) -> None:
    """Keep a just-made set (encrypted) for session `row`'s shown-once page."""
    with db.atomic():
        FreshRecoveryCodes.delete().where(FreshRecoveryCodes.session == row).execute()
        FreshRecoveryCodes.create(
            session=row, user=row.user_id, codes=crypto.encrypt("\n".join(codes)), created_at=now()
        )


def held_for_display(row: UserSession | None) -> list[str]:
    """The codes session `row` made a moment ago, or [] once they may no longer be shown."""
    if row is None:
        return []
    held = FreshRecoveryCodes.get_or_none(FreshRecoveryCodes.session == row)
    if held is None:
        return []
    shown_for = timedelta(minutes=current_app.config["RECOVERY_CODES_SHOWN_MINUTES"])
    if now() - held.created_at > shown_for:
        held.delete_instance()
        return []
    try:
        return crypto.decrypt(held.codes).split("\n")
    except crypto.DecryptionError:
        held.delete_instance()
        return []


def stop_displaying(row: UserSession | None) -> None:
    """The person has saved their codes: they are not shown again."""
    if row is not None:
        FreshRecoveryCodes.delete().where(FreshRecoveryCodes.session == row).execute()


def purge_stale_displays() -> int:
    """Delete just-made sets no longer shown (housekeeping; reading one also ends it)."""
    shown_for = timedelta(minutes=current_app.config["RECOVERY_CODES_SHOWN_MINUTES"])
    return (
        FreshRecoveryCodes.delete()
        .where(FreshRecoveryCodes.created_at < now() - shown_for)
        .execute()
    )
