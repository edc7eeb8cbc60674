"""One-time codes sent by email or text message (SPEC "Signing in" 4, Decisions 7 and 14).

A code is 6 digits from `secrets`, stored only as a keyed hash, belongs to one person and one
purpose, expires CODE_TTL_MINUTES after it was requested and works once. Asking for another
code keeps the earlier ones alive, at most MAX_LIVE_CODES of them.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from flask import current_app, render_template
from flask_babel import gettext as _
from flask_babel import ngettext

from models import crypto, db
from models.clock import now
from models.events import CODE_SENT
from models.people import User
from models.verification import ENROL, SEND_PENDING, OneTimeCode
from services.delivery import senders
from services.language import N_, speaking_to
from services.methods import MethodKind, deliveries
from services.security import security_log, throttle

EMAIL_SUBJECT = N_("User OTP from Online-Auth")
SEND_FAILED = N_("We couldn't send the code. Try again or choose another method.")
# A right code that ended before its time (a later code was used, or an admin reset).
RETIRED_MESSAGE = N_("That code is no longer valid. Use the newest code we sent.")

# Spaces and dashes (as pasted from an email or a text) are not part of a code.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]")
_SIX_DIGITS = re.compile(r"[0-9]{6}")


class CodeResult(Enum):
    """What checking a one-time code found."""

    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"  # the right code, but its 10 minutes (CODE_TTL_MINUTES) are over
    RETIRED = "retired"  # the right code, ended early: a later code was used, or a reset
    JUST_USED = "just_used"  # the right code, used already within its lifetime (a repeat)


@dataclass(frozen=True)
class CodeCheck:
    """The result of `verify`, with the code row that was accepted (to know where it went)."""

    result: CodeResult
    code: OneTimeCode | None = None

    @property
    def ok(self) -> bool:
        return self.result is CodeResult.OK


@dataclass(frozen=True)
class SendOutcome:
    """The result of `send`: the status and message a view answers with when not ok.

    `sent_at` is set when no new code was sent because the newest one to that destination,
    sent then, is still good (within the cooldown, Decisions 19).
    """

    ok: bool
    status: int
    message: str = ""
    retry_at: datetime | None = None
    sent_at: datetime | None = None


def normalize(raw: str | None) -> str | None:
    """The code without spaces and dashes if that is exactly six ASCII digits, else None.

    Leading zeros are kept ("012345"); other scripts' digits are refused.
    """
    cleaned = _SEPARATORS.sub("", raw or "")
    return cleaned if _SIX_DIGITS.fullmatch(cleaned) else None


def _hash(user_id: int, purpose: str, code: str) -> str:
    """HMAC-SHA256 of (person, purpose, code) under a key derived from SECRET_KEY."""
    message = f"{user_id}:{purpose}:{code}".encode()
    return hmac.new(crypto.derive_key("one-time codes"), message, hashlib.sha256).hexdigest()


def _live(user: User | int, purpose: str, moment: datetime):
    """The condition for this person's unused, unexpired codes of `purpose`."""
    return (
        (OneTimeCode.user == user)
        & (OneTimeCode.purpose == purpose)
        & OneTimeCode.used_at.is_null()
        & (OneTimeCode.expires_at > moment)
    )


def _create(
    user: User, purpose: str, channel: str, destination: str, live: bool = True
) -> tuple[OneTimeCode, str]:
    """Store a new code's hash; return the row and the code itself (never stored). A code
    about to be sent is stored not `live` (SEND_PENDING) until `_activate` after the send."""
    code = f"{secrets.randbelow(10**6):06d}"
    moment = now()
    row = OneTimeCode.create(
        user=user,
        purpose=purpose,
        channel=channel,
        destination=destination,
        code_hash=_hash(user.id, purpose, code),
        created_at=moment,
        expires_at=_expiry(moment) if live else SEND_PENDING,
    )
    return row, code


def _expiry(created_at: datetime) -> datetime:
    """Codes expire CODE_TTL_MINUTES after they were requested (SPEC "Signing in" 4)."""
    return created_at + timedelta(minutes=current_app.config["CODE_TTL_MINUTES"])


def _activate(row: OneTimeCode) -> None:
    """The send attempt is over (sent, or perhaps sent): the code lives until its expiry."""
    row.expires_at = _expiry(row.created_at)
    OneTimeCode.update(expires_at=row.expires_at).where(
        OneTimeCode.id == row.id, OneTimeCode.expires_at == SEND_PENDING
    ).execute()


def _expire_beyond_limit(user: User, purpose: str) -> int:
    """Expire the oldest live codes beyond MAX_LIVE_CODES (rows stay for the hourly caps)."""
    moment = now()
    oldest = (
        OneTimeCode.select(OneTimeCode.id)
        .where(_live(user, purpose, moment))
        .order_by(OneTimeCode.created_at.desc(), OneTimeCode.id.desc())
        .offset(current_app.config["MAX_LIVE_CODES"])
    )
    return OneTimeCode.update(expires_at=moment).where(OneTimeCode.id.in_(oldest)).execute()


def verify(user: User, purpose: str, code: str, destination: str | None = None) -> CodeCheck:
    """Check a code typed by `user` for `purpose` (only codes sent to `destination`, if given).

    A right code is consumed with a conditional UPDATE (so it works once, even at once), and
    the other live codes of that purpose end with it - for ENROL only those to the same
    destination. The same code again within its lifetime is JUST_USED (not a guess).
    """
    normalized = normalize(code)
    if normalized is None:
        return CodeCheck(CodeResult.WRONG)
    moment = now()
    query = OneTimeCode.select().where(
        OneTimeCode.user == user,
        OneTimeCode.purpose == purpose,
        OneTimeCode.code_hash == _hash(user.id, purpose, normalized),
    )
    if destination is not None:
        query = query.where(OneTimeCode.destination == destination)
    matching = list(query.order_by(OneTimeCode.created_at.desc()))
    candidates = [row for row in matching if row.used_at is None]
    for row in candidates:
        if row.expires_at <= moment:
            continue
        with db.atomic():
            consumed = (
                OneTimeCode.update(used_at=moment)
                .where(
                    OneTimeCode.id == row.id,
                    OneTimeCode.used_at.is_null(),
                    OneTimeCode.expires_at > moment,
                )
                .execute()
            )
            if consumed:
                _end_siblings(row, moment)
                row.used_at = moment
                return CodeCheck(CodeResult.OK, row)
        # Used by a parallel request between the read and the UPDATE: a repeat, not a guess.
        row.used_at = (
            OneTimeCode.select(OneTimeCode.used_at).where(OneTimeCode.id == row.id).get().used_at
        )
    lifetime = timedelta(minutes=current_app.config["CODE_TTL_MINUTES"])
    if any(row.used_at is not None and row.used_at > moment - lifetime for row in matching):
        return CodeCheck(CodeResult.JUST_USED)
    ended = [row for row in candidates if row.expires_at <= moment]
    if not ended:
        return CodeCheck(CodeResult.WRONG)
    if all(row.expires_at - row.created_at < lifetime for row in ended):
        return CodeCheck(CodeResult.RETIRED)
    return CodeCheck(CodeResult.EXPIRED)


def _end_siblings(accepted: OneTimeCode, moment: datetime) -> None:
    """End the other live codes that the accepted one makes pointless."""
    condition = _live(accepted.user_id, accepted.purpose, moment)
    if accepted.purpose == ENROL:
        condition &= OneTimeCode.destination == accepted.destination
    OneTimeCode.update(expires_at=moment).where(condition).execute()


def discard(user: User, purpose: str | None = None) -> int:
    """End `user`'s live codes (of one purpose, or all); return how many ended.

    For an admin reset, or when a method is saved.
    """
    moment = now()
    condition = (
        (OneTimeCode.user == user)
        & OneTimeCode.used_at.is_null()
        & (OneTimeCode.expires_at > moment)
    )
    if purpose is not None:
        condition &= OneTimeCode.purpose == purpose
    return OneTimeCode.update(expires_at=moment).where(condition).execute()


def _deliver(
    user: User, method_kind: MethodKind, destination: str, code: str
) -> tuple[str, str | None]:
    """Send `code` by email or text message; return the provider and its message id.
    Raises senders.DeliveryError."""
    config = current_app.config
    context = {
        "user": user,
        "code": code,
        "minutes": config["CODE_TTL_MINUTES"],
        "product_name": config["PRODUCT_NAME"],
    }
    with speaking_to(user):
        if method_kind.channel == "email":
            subject = _(EMAIL_SUBJECT)
            text = render_template("email/code.txt", **context)
            html = render_template("email/code.html", **context)
        else:
            body = sms_text(code, context["product_name"], context["minutes"])
    if method_kind.channel == "email":
        email = senders.email_sender()
        message_id = email.send_email(destination, subject, text, html)
        return email.provider, message_id
    sms = senders.sms_sender()
    message_id = sms.send_sms(destination, body)
    return sms.provider, message_id


CAP_WAY_OUT = N_(
    "To sign in now, use another method or a recovery code, or ask your center's admin for help."
)


def _newest_live_code(user: User, purpose: str, destination: str, since: datetime):
    """`user`'s newest live code of `purpose` sent to `destination` after `since`, or None."""
    return (
        OneTimeCode.select(OneTimeCode.created_at)
        .where(
            _live(user, purpose, now()),
            OneTimeCode.destination == destination,
            OneTimeCode.created_at > since,
        )
        .order_by(OneTimeCode.created_at.desc())
        .first()
    )


def refused_send_message(limit: throttle.SendLimit) -> str:
    """What a person is told when a limit holds a code back, with the way out at a cap."""
    when = _("You can ask for another code %(when)s.", when=throttle.in_words(limit.retry_at))
    if limit.reason == throttle.CAP:
        return " ".join((_("That's the most codes we send in an hour."), when, _(CAP_WAY_OUT)))
    return when


def sms_text(code: str, product_name: str, minutes: int) -> str:
    """The text message carrying `code`, in the current language: it must fit one SMS
    segment in every language (70 characters once it needs UCS-2, as Spanish does)."""
    return _(
        "Your %(product)s verification code is %(code)s. It expires in %(minutes)s minutes.",
        product=product_name,
        code=code,
        minutes=minutes,
    )


def send(user: User, purpose: str, method_kind: MethodKind, destination: str) -> SendOutcome:
    """Issue a code and send it to `destination` by `method_kind`'s channel.

    The limits are checked and the code recorded in one step (throttle.hold_sends), so any
    number of parallel requests sends one code per cooldown and never more than the caps.
    Within the cooldown the newest live code is offered again (ok, `sent_at` says when it
    went); over an hourly cap 429 with when to retry and the way out. The code is stored not
    yet alive (SEND_PENDING) and comes alive, with the record of the send, once the provider
    answered - or did not answer in time (DeliveryUnknown: it may arrive late, the outcome's
    message says so); a provider that refused it leaves no code behind (502).
    """
    if not method_kind.sends_code:
        raise ValueError(f"{method_kind.label} does not send codes")
    cooldown = timedelta(seconds=current_app.config["CODE_RESEND_COOLDOWN"])
    with db.atomic():
        throttle.hold_sends(user, destination)
        newest = _newest_live_code(user, purpose, destination, now() - cooldown)
        if newest is not None:  # within the cooldown (and a cap reached since, or not)
            return SendOutcome(True, 200, sent_at=newest.created_at)
        limit = throttle.send_limit(user, destination)
        if limit is not None:
            return SendOutcome(False, 429, refused_send_message(limit), limit.retry_at)
        row, code = _create(user, purpose, method_kind.channel, destination, live=False)
    delivery_unknown = False
    try:
        provider, message_id = _deliver(user, method_kind, destination, code)
    except senders.DeliveryUnknown as error:
        # The provider may have it and deliver it late: the code stays good.
        delivery_unknown = True
        provider, message_id = error.provider, None
        current_app.logger.warning(
            "Delivery unknown for a %s code to %s: %s",
            method_kind.kind,
            method_kind.masked(destination),
            error,
        )
    except senders.DeliveryError as error:
        row.delete_instance()
        current_app.logger.warning(
            "Could not send a %s code to %s: %s",
            method_kind.kind,
            method_kind.masked(destination),
            error,
        )
        return SendOutcome(False, 502, _(SEND_FAILED))
    # The code comes alive together with the record of its send attempt.
    with db.atomic():
        _activate(row)
        deliveries.record_send(
            user,
            row,
            purpose=purpose,
            channel=method_kind.channel,
            destination=destination,
            provider=provider,
            message_id=message_id,
        )
        _expire_beyond_limit(user, purpose)
    # A report that came before this commit waited for it (the webhook can be that quick).
    deliveries.take_early_reports(provider, message_id)
    security_log.record(
        CODE_SENT,
        user,
        method_kind=method_kind.kind,
        detail=method_kind.masked(destination),
        notify=False,
    )
    if delivery_unknown:
        return SendOutcome(True, 200, delivery_unknown_message(method_kind, destination))
    return SendOutcome(True, 200)


def delivery_unknown_message(method_kind: MethodKind, destination: str) -> str:
    """What the person reads when the provider took too long to confirm a send."""
    if method_kind.channel == "email":
        return _(
            "We asked for a code to be sent to %(destination)s, but the email service hasn't "
            "confirmed it yet. It may arrive late: if it comes, type it here. If it doesn't, "
            "choose another method.",
            destination=method_kind.masked(destination),
        )
    return _(
        "We asked for a code to be sent to %(destination)s, but the text message service "
        "hasn't confirmed it yet. It may arrive late: if it comes, type it here. If it "
        "doesn't, choose another method.",
        destination=method_kind.masked(destination),
    )


def ago_words(moment: datetime) -> str:
    """How long ago `moment` was, as shown on screen: "20 seconds ago", "1 minute ago"."""
    seconds = max(int((now() - moment).total_seconds()), 0)
    if seconds < 60:
        if seconds == 0:
            return _("just now")
        return ngettext("%(num)d second ago", "%(num)d seconds ago", seconds)
    return ngettext("%(num)d minute ago", "%(num)d minutes ago", seconds // 60)


def still_good_message(masked_destination: str, sent_at: datetime) -> str:
    """The code box's words when the newest code is offered again within the cooldown."""
    return _(
        "We sent a code to %(destination)s %(when)s. It's still good.",
        destination=masked_destination,
        when=ago_words(sent_at),
    )
