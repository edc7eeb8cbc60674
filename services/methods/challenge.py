"""The second step's machinery, shared by signing in (services/signin/) and a password
reset link (services/signin/password_reset.py): which method is challenged, sending codes, judging
typed codes and security keys, and counting wrong ones towards the pause.

It keeps no state of its own: the caller says which method is challenged (the pending
sign-in's row, the reset link's progress) and keeps what it returns. Any method id it is given
is looked up again among the person's own methods, so a stale or tampered value never reaches
another person's method.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext

from models.clock import now
from models.sessions import PROVEN
from models.verification import SIGN_IN, TOTP, WEBAUTHN, VerificationMethod
from services.language import N_
from services.methods import (
    BY_KIND,
    MethodKind,
    codes,
    kind_of,
    policy,
    totp,
    ways_in,
    webauthn_keys,
)
from services.security import throttle

WRONG_MESSAGE = N_("That code isn't right. Check it and try again.")
EXPIRED_MESSAGE = N_("That code has expired. Choose Send new code to get a new one.")
REPLAYED_MESSAGE = N_(
    "That code was used already. Wait for your authenticator app to show a new code, then enter it."
)
JUST_USED_MESSAGE = N_("That code was just used. If you aren't signed in, enter a new code.")
LOCKED_MESSAGE = N_(
    "Too many wrong codes were entered, so codes no longer work for this account. "
    "Use a recovery code or your security key, or ask your center's admin to reset "
    "2-Step Verification."
)
EMPTY_MESSAGE = N_("Enter the verification code.")
FORMAT_MESSAGE = N_("Enter the 6 digits of the code. Spaces and dashes are fine; letters are not.")
CHOOSE_MESSAGE = N_("Choose one of the methods listed.")
NO_SEND_MESSAGE = N_("This method doesn't send codes. Open your authenticator app for a code.")
KEY_UNREADABLE_MESSAGE = N_("We can't check authenticator codes right now. Choose another method.")


def paused_message(until: datetime) -> str:
    """The one message for every attempt while verification is paused, saying when it ends."""
    return _(
        "Too many wrong codes were entered, so verification is paused for your security. "
        "Try again %(when)s.",
        when=throttle.in_words(until),
    )


class Step(Enum):
    """What a pending sign-in shows next."""

    CODE = "code"  # the code box for one method
    PICKER = "picker"  # several methods, none chosen yet
    SETUP = "setup"  # staff with no allowed method: the forced set-up (blueprints/methods.py)
    ASK_ADMIN = "ask_admin"  # saved methods none of which can be checked here: an admin's reset
    NOT_NEEDED = "not_needed"  # 2SV is no longer on for this login: no code is asked


@dataclass(frozen=True)
class Screen:
    """The state of a pending sign-in: the step, the person's methods, the challenged one."""

    step: Step
    methods: list[VerificationMethod] = field(default_factory=list)
    method: VerificationMethod | None = None

    @property
    def method_kind(self) -> MethodKind | None:
        return kind_of(self.method) if self.method is not None else None

    @property
    def has_alternatives(self) -> bool:
        """ "Try another method" shows only with more than one way in (Decisions 10); all of
        a person's security keys are one way in."""
        return len(ways_in(self.methods)) > 1

    @property
    def choices(self) -> list[VerificationMethod]:
        """The picker's entries (one for all security keys)."""
        return ways_in(self.methods)


class Reason(Enum):
    """Why a code was accepted or refused; the page says the matching message."""

    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    RETIRED = "retired"
    REPLAYED = "replayed"
    JUST_USED = "just_used"  # a right code repeated (a double click): not a guess
    PAUSED = "paused"
    LOCKED = "locked"
    INVALID_FORMAT = "invalid_format"
    KEY_UNREADABLE = "key_unreadable"  # the saved authenticator key can't be opened here


@dataclass(frozen=True)
class VerifyResult:
    """The answer to a typed code: the reason, its message, the pause end, and the kind of
    method a right code went to."""

    reason: Reason
    message: str = ""
    paused_until: datetime | None = None
    method_kind: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    @property
    def status(self) -> int:
        """422 for a refused code, 429 while paused (Decisions 3), 503 when the code can't be
        checked on this instance (not the person's fault, not counted)."""
        if self.reason is Reason.OK:
            return 200
        if self.reason is Reason.KEY_UNREADABLE:
            return 503
        return 429 if self.reason in (Reason.PAUSED, Reason.LOCKED) else 422


@dataclass(frozen=True)
class SendResult:
    """The answer to choosing a method or asking for a new code."""

    ok: bool
    status: int = 200
    message: str = ""
    method: VerificationMethod | None = None


def _method_id(raw_id) -> int | None:
    """The id a form names, or None when it is not one (malformed, out of range)."""
    try:
        method_id = int(str(raw_id).strip())
    except (TypeError, ValueError):
        return None
    return method_id if 0 < method_id <= 2**62 else None


def choice_sends_code(raw_id) -> bool:
    """Whether the method `raw_id` names is one that sends codes (email, text message);
    false for anything else, a malformed id included. Whose method it is, `own_method` says."""
    method_id = _method_id(raw_id)
    if method_id is None:
        return False
    kind = (
        VerificationMethod.select(VerificationMethod.kind)
        .where(VerificationMethod.id == method_id)
        .scalar()
    )
    return kind in BY_KIND and BY_KIND[kind].sends_code


def own_method(user, raw_id) -> VerificationMethod | None:
    """The method `raw_id` names if it is one `user` may sign in with; None for anything else
    (another person's method, a kind the staff policy leaves out, a malformed id)."""
    method_id = _method_id(raw_id)
    if method_id is None:
        return None
    # Picked from the methods this request has already read: no extra query.
    return next((m for m in policy.sign_in_methods(user) if m.id == method_id), None)


ASK_ADMIN_MESSAGE = N_(
    "None of your verification methods can be used here right now. Use a recovery code if you "
    "have one, or ask an admin at your center to reset your 2-Step Verification."
)


def screen(user, challenged_id=None) -> Screen:
    """What the pending sign-in of `user`, challenging the method `challenged_id` (None: not
    chosen yet; PROVEN: the second step is done), shows now. Reads only; changes nothing.

    Staff whose saved methods the policy now leaves out prove one of them first; only then
    (PROVEN) do they set up an allowed one. Saved methods that cannot be checked at all lead
    to ASK_ADMIN, never to a set-up (Decisions 20).
    """
    if not policy.needs_second_step(user):
        return Screen(Step.NOT_NEEDED)
    if policy.must_set_up(user) and (challenged_id == PROVEN or not policy.methods_of(user)):
        return Screen(Step.SETUP)
    methods = policy.sign_in_methods(user)
    if not methods:
        if policy.methods_of(user):
            return Screen(Step.ASK_ADMIN)
        # A family with 2SV on but no method left: nothing could be checked.
        return Screen(Step.NOT_NEEDED)
    method = own_method(user, challenged_id)
    if method is None and len(ways_in(methods)) == 1:
        method = methods[0]
    if method is None:
        return Screen(Step.PICKER, methods)
    return Screen(Step.CODE, methods, method)


def send_code(user, method: VerificationMethod, purpose: str = SIGN_IN) -> SendResult:
    """Send a code (for signing in, or another `purpose` such as a password reset) to
    `method`'s saved destination (never one from a form)."""
    method_kind = kind_of(method)
    if not method_kind.sends_code:
        return SendResult(False, 422, _(NO_SEND_MESSAGE), method)
    until = throttle.paused_until(user)
    if until is not None:
        # No code could be accepted before the pause ends, so none is sent.
        return SendResult(False, 429, paused_message(until), method)
    if throttle.is_locked(user):
        return SendResult(False, 429, _(LOCKED_MESSAGE), method)
    outcome = codes.send(user, purpose, method_kind, method.destination)
    if not outcome.ok:
        return SendResult(False, outcome.status, outcome.message, method)
    if outcome.sent_at is not None:
        masked = method_kind.masked(method.destination)
        return SendResult(True, 200, codes.still_good_message(masked, outcome.sent_at), method)
    # A provider that did not confirm in time: the code is live, the message says so.
    message = outcome.message or ngettext(
        "We sent a code to %(destination)s. It works for %(num)d minute.",
        "We sent a code to %(destination)s. It works for %(num)d minutes.",
        current_app.config["CODE_TTL_MINUTES"],
        destination=method_kind.masked(method.destination),
    )
    return SendResult(True, 200, message, method)


def next_send_at(method: VerificationMethod | None, user) -> datetime | None:
    """When "Send new code" works again for `method`, or None if it works now."""
    if method is None or not kind_of(method).sends_code:
        return None
    return throttle.send_retry_at(user, method.destination)


def refusal(reservation: throttle.Reservation) -> VerifyResult:
    """The answer when no attempt could be taken, or the one taken started a pause or the
    lock: 429 with when to try again, or the way out of the lock."""
    if reservation.locked:
        return VerifyResult(Reason.LOCKED, _(LOCKED_MESSAGE))
    until = reservation.pause_end
    return VerifyResult(Reason.PAUSED, paused_message(until), paused_until=until)


@dataclass(frozen=True)
class Attempt:
    """A typed code ready to be judged, with the attempt reserved for it; or the refusal
    (while paused or locked, no attempt left, or a malformed code, which is not counted)."""

    code: str = ""
    reservation: throttle.Reservation | None = None
    refused: VerifyResult | None = None


def reserve(user, raw_code: str | None, method: VerificationMethod | None) -> Attempt:
    """Check the form of a typed code, then take an attempt from the person's budget
    (throttle.reserve, committed on its own) before anything is judged (Decisions 17)."""
    until = throttle.paused_until(user)
    if until is not None:
        return Attempt(
            refused=VerifyResult(Reason.PAUSED, paused_message(until), paused_until=until)
        )
    if throttle.is_locked(user):
        return Attempt(refused=VerifyResult(Reason.LOCKED, _(LOCKED_MESSAGE)))
    if not (raw_code or "").strip():
        return Attempt(refused=VerifyResult(Reason.INVALID_FORMAT, _(EMPTY_MESSAGE)))
    code = codes.normalize(raw_code)
    if code is None:
        return Attempt(refused=VerifyResult(Reason.INVALID_FORMAT, _(FORMAT_MESSAGE)))
    reservation = throttle.reserve(user, kind_name(method))
    if not reservation.taken:
        return Attempt(refused=refusal(reservation))
    return Attempt(code, reservation)


def kind_name(method: VerificationMethod | None) -> str:
    """The kind of the challenged method, "" when none is."""
    return method.kind if method is not None else ""


def judge(
    user, code: str, method: VerificationMethod | None, purpose: str = SIGN_IN
) -> VerifyResult:
    """The verdict on a reserved, well-formed code: a right one is used up (the caller
    commits what it earns in the same transaction); any other is only named, for `settle`."""
    reason, used_kind = _check(user, code, method, purpose)
    if reason is Reason.OK:
        return VerifyResult(Reason.OK, method_kind=used_kind)
    return VerifyResult(reason)


def check(
    user, raw_code: str | None, method: VerificationMethod | None, purpose: str = SIGN_IN
) -> VerifyResult:
    """Check a typed code of `purpose` (signing in, or a password reset) without signing
    anybody in; every purpose counts wrong codes towards the same pause (Decisions 8).

    During a pause every code is refused, the right one too. Any live sign-in code of the
    person works, whichever of their methods it went to (Decisions 7); an authenticator code
    works when the authenticator is the challenged method, and each time step only once.
    Wrong, expired and replayed codes count towards the pause; a malformed one does not, nor
    a right code repeated just after it was used.
    """
    attempt = reserve(user, raw_code, method)
    if attempt.refused is not None:
        return attempt.refused
    result = judge(user, attempt.code, method, purpose)
    if result.ok:
        throttle.record_success(user)
        return result
    return settle(user, attempt.reservation, result.reason, kind_name(method))


_REFUSED_MESSAGES = {
    Reason.WRONG: WRONG_MESSAGE,
    Reason.EXPIRED: EXPIRED_MESSAGE,
    Reason.RETIRED: codes.RETIRED_MESSAGE,
    Reason.REPLAYED: REPLAYED_MESSAGE,
}


def settle(user, reservation: throttle.Reservation, reason: Reason, kind: str) -> VerifyResult:
    """The answer to a reserved attempt that was not a right code: a right code repeated
    gives its attempt back; anything else is counted (a pause or the lock may start)."""
    if reason is Reason.JUST_USED:
        throttle.give_back(user, reservation)
        return VerifyResult(Reason.JUST_USED, _(JUST_USED_MESSAGE))
    if reason is Reason.KEY_UNREADABLE:  # nothing was judged: not a guess (503)
        throttle.give_back(user, reservation)
        return VerifyResult(reason, _(KEY_UNREADABLE_MESSAGE))
    throttle.record_failure(user, reservation, kind)
    if reservation.locked or reservation.pause_end is not None:
        return refusal(reservation)
    return VerifyResult(reason, _(_REFUSED_MESSAGES[reason]))


def _check(
    user, code: str, method: VerificationMethod | None, purpose: str = SIGN_IN
) -> tuple[Reason, str]:
    """(reason, kind of the method that worked) for a well-formed code."""
    totp_result = None
    if method is not None and method.kind == TOTP:
        totp_result = totp.verify_method(method, code)
        if totp_result is totp.TotpResult.OK:
            return Reason.OK, TOTP
    check = codes.verify(user, purpose, code)
    if check.ok:
        channel = check.code.channel
        _mark_used(user, channel)
        return Reason.OK, channel
    if totp_result is totp.TotpResult.JUST_USED or check.result is codes.CodeResult.JUST_USED:
        return Reason.JUST_USED, ""
    if totp_result is totp.TotpResult.REPLAYED:
        return Reason.REPLAYED, ""
    if totp_result is totp.TotpResult.UNREADABLE:
        return Reason.KEY_UNREADABLE, ""
    if check.result is codes.CodeResult.EXPIRED:
        return Reason.EXPIRED, ""
    if check.result is codes.CodeResult.RETIRED:
        return Reason.RETIRED, ""
    return Reason.WRONG, ""


def _mark_used(user, kind: str) -> None:
    """Record when the method of `kind` last let the person in."""
    if kind in BY_KIND:
        VerificationMethod.update(last_used_at=now()).where(
            (VerificationMethod.user == user) & (VerificationMethod.kind == kind)
        ).execute()


# --- security keys ----------------------------------------------------------------------------

NO_KEY_MESSAGE = webauthn_keys.NO_KEY


@dataclass(frozen=True)
class KeyResult:
    """The answer to a security key's step: the options for the browser, or a refusal."""

    ok: bool
    status: int = 200
    message: str = ""
    options: str | None = None


def key_options(user, party: webauthn_keys.RelyingParty, purpose: str) -> KeyResult:
    """The options for navigator.credentials.get() over `user`'s keys, with a challenge only
    `purpose` accepts. Refused while verification is paused, and without a key."""
    until = throttle.paused_until(user)
    if until is not None:
        return KeyResult(False, 429, paused_message(until))
    options = webauthn_keys.authentication_options(user, party, purpose=purpose)
    if options is None:
        return KeyResult(False, 409, _(NO_KEY_MESSAGE))
    return KeyResult(True, options=options)


def check_key(user, party: webauthn_keys.RelyingParty, credential, purpose: str) -> KeyResult:
    """Check a security key's answer of `purpose`. An attempt is reserved first, as for codes
    (a key works while codes are locked: it unlocks); a refusal counts towards the pause like
    a wrong code, a good one ends the run of wrong codes. Refused while paused."""
    until = throttle.paused_until(user)
    if until is not None:
        return KeyResult(False, 429, paused_message(until))
    reservation = throttle.reserve(user, WEBAUTHN)
    if not reservation.taken:
        return KeyResult(False, 429, refusal(reservation).message)
    check = webauthn_keys.verify_authentication(user, party, credential, purpose=purpose)
    if not check.ok:
        throttle.record_failure(user, reservation, WEBAUTHN)
        if reservation.locked or reservation.pause_end is not None:
            return KeyResult(False, 429, refusal(reservation).message)
        return KeyResult(False, 422, check.message)
    throttle.record_success(user)
    return KeyResult(True)
