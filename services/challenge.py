"""The second step of signing in: which method is challenged, sending codes, checking them.

The pending session (services.sessions) says who gave the right password; this module decides
what that person sees next (the code box, the method picker, or the staff's forced set-up),
sends sign-in codes, and checks what they type. The views in blueprints/challenge.py only
parse forms and pick templates.

Which method is being challenged lives in the cookie session under `challenge_method`; it is
always looked up again among the pending person's own methods, so a stale or tampered value
never reaches another person's method.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from flask import current_app, session, url_for

from models import db
from models.clock import now
from models.verification import SIGN_IN, TOTP, VerificationMethod
from services import codes, policy, sessions, signin, throttle, totp, trusted_devices
from services.methods import BY_KIND, MethodKind, kind_of, ways_in

CHALLENGE_KEY = "challenge_method"
# What the password POST's send said, shown once by the page it leads to.
NOTICE_KEY = "challenge_notice"

WRONG_MESSAGE = "That code isn't right. Check it and try again."
EXPIRED_MESSAGE = "That code has expired. Choose Send new code to get a new one."
REPLAYED_MESSAGE = (
    "That code was used already. Wait for your authenticator app to show a new code, then enter it."
)
EMPTY_MESSAGE = "Enter the verification code."
FORMAT_MESSAGE = "Enter the 6 digits of the code. Spaces and dashes are fine; letters are not."
CHOOSE_MESSAGE = "Choose one of the methods listed."
NO_SEND_MESSAGE = "This method doesn't send codes. Open your authenticator app for a code."


def paused_message(until: datetime) -> str:
    """The one message for every attempt while verification is paused, saying when it ends."""
    return (
        "Too many wrong codes were entered, so verification is paused for your security. "
        f"Try again {throttle.in_words(until)}."
    )


class Step(Enum):
    """What a pending sign-in shows next."""

    CODE = "code"  # the code box for one method
    PICKER = "picker"  # several methods, none chosen yet
    SETUP = "setup"  # staff with no method: the forced set-up (blueprints/methods.py)
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
    REPLAYED = "replayed"
    PAUSED = "paused"
    INVALID_FORMAT = "invalid_format"


@dataclass(frozen=True)
class VerifyResult:
    """The answer to a typed code: the reason, the pause end, where to go after success."""

    reason: Reason
    message: str = ""
    paused_until: datetime | None = None
    method_kind: str = ""
    next_url: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    @property
    def status(self) -> int:
        """422 for a refused code, 429 while paused (Decisions 3)."""
        if self.reason is Reason.OK:
            return 200
        return 429 if self.reason is Reason.PAUSED else 422


@dataclass(frozen=True)
class SendResult:
    """The answer to choosing a method or asking for a new code."""

    ok: bool
    status: int = 200
    message: str = ""
    method: VerificationMethod | None = None


def own_method(user, raw_id) -> VerificationMethod | None:
    """The method `raw_id` names if it is one `user` may sign in with; None for anything else
    (another person's method, a kind the staff policy leaves out, a malformed id)."""
    try:
        method_id = int(str(raw_id).strip())
    except (TypeError, ValueError):
        return None
    if method_id <= 0 or method_id > 2**62:
        return None
    # Picked from the methods this request has already read: no extra query.
    return next((m for m in policy.usable_methods(user) if m.id == method_id), None)


def challenged_method(user) -> VerificationMethod | None:
    """The method this browser is being challenged with, re-checked to be `user`'s own."""
    return own_method(user, session.get(CHALLENGE_KEY))


def screen(user) -> Screen:
    """What the pending sign-in of `user` shows now. Reads only; changes nothing."""
    if not policy.needs_second_step(user):
        return Screen(Step.NOT_NEEDED)
    if policy.must_set_up(user):
        return Screen(Step.SETUP)
    methods = policy.usable_methods(user)
    if not methods:
        if policy.methods_of(user):
            # Saved methods that can't be used here (security keys switched off, a kind the
            # staff policy leaves out): fail closed, with an empty picker that says what to do.
            return Screen(Step.PICKER, [])
        # A family with 2SV on but no method left: nothing could be checked.
        return Screen(Step.NOT_NEEDED)
    method = challenged_method(user)
    if method is None and len(ways_in(methods)) == 1:
        method = methods[0]
    if method is None:
        return Screen(Step.PICKER, methods)
    return Screen(Step.CODE, methods, method)


def url_for_step(step: Step) -> str:
    """Where a pending sign-in at `step` is shown."""
    if step is Step.SETUP:
        return url_for("methods.setup")
    return url_for("challenge.verify")


def after_password(user, next_url: str) -> str:
    """Start the session a right password earns; return where the browser goes next.

    With 2-Step Verification on (or required) the session is only pending: the second step
    comes first. Otherwise the person is signed in.
    """
    if policy.needs_second_step(user):
        if trusted_devices.skip_second_step(user):
            # "Don't ask again on this device": a valid trusted-device cookie of this person.
            signin.complete_sign_in(user, method_kind=trusted_devices.TRUSTED_DEVICE)
            return next_url
        sessions.start(user, pending=True)
        session["next"] = next_url
        return begin(user)
    signin.complete_sign_in(user, method_kind="")
    return next_url


def begin(user) -> str:
    """Prepare the second step after a right password; return the URL to go to.

    Called by the password POST (after_password), so this is where a single email or
    text-message method gets its code: no GET ever sends one. A login that no longer needs
    a code (2SV off, no requirement) is signed in here.
    """
    session.pop(CHALLENGE_KEY, None)
    current = screen(user)
    if current.step is Step.NOT_NEEDED:
        return finish(user, method_kind="")
    if current.step is not Step.CODE:
        return url_for_step(current.step)
    session[CHALLENGE_KEY] = current.method.id
    if current.method_kind.sends_code:
        outcome = send_code(user, current.method)
        session[NOTICE_KEY] = {"ok": outcome.ok, "message": outcome.message}
    return url_for_step(Step.CODE)


def send_code(user, method: VerificationMethod, purpose: str = SIGN_IN) -> SendResult:
    """Send a code (for signing in, or another `purpose` such as a password reset) to
    `method`'s saved destination (never one from a form)."""
    method_kind = kind_of(method)
    if not method_kind.sends_code:
        return SendResult(False, 422, NO_SEND_MESSAGE, method)
    until = throttle.paused_until(user)
    if until is not None:
        # No code could be accepted before the pause ends, so none is sent.
        return SendResult(False, 429, paused_message(until), method)
    outcome = codes.send(user, purpose, method_kind, method.destination)
    if not outcome.ok:
        return SendResult(False, outcome.status, outcome.message, method)
    message = (
        f"We sent a code to {method_kind.masked(method.destination)}. It works for {_ttl_words()}."
    )
    return SendResult(True, 200, message, method)


def _ttl_words() -> str:
    minutes = current_app.config["CODE_TTL_MINUTES"]
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def choose(user, raw_method_id) -> SendResult:
    """The picker's choice: challenge that method, sending a code if it is email or text.

    Anything but one of `user`'s own methods is refused (422) and changes nothing. A send
    refused by the cooldown or the caps still opens the code box (earlier codes stay alive);
    a provider failure leaves the person on the picker to choose another method.
    """
    method = own_method(user, raw_method_id)
    if method is None:
        return SendResult(False, 422, CHOOSE_MESSAGE)
    if not kind_of(method).sends_code:
        session[CHALLENGE_KEY] = method.id
        return SendResult(True, 200, "", method)
    outcome = send_code(user, method)
    if outcome.ok or outcome.status == 429:
        session[CHALLENGE_KEY] = method.id
    return outcome


def resend(user) -> SendResult:
    """ "Send new code" for the challenged method; earlier codes stay alive (SPEC 4)."""
    method = challenged_method(user)
    if method is None:
        methods = policy.usable_methods(user)
        method = methods[0] if len(ways_in(methods)) == 1 else None
    if method is None:
        return SendResult(False, 422, CHOOSE_MESSAGE)
    return send_code(user, method)


def next_send_at(method: VerificationMethod | None, user) -> datetime | None:
    """When "Send new code" works again for `method`, or None if it works now."""
    if method is None or not kind_of(method).sends_code:
        return None
    return throttle.send_retry_at(user, method.destination)


def verify(user, raw_code: str | None, method: VerificationMethod | None) -> VerifyResult:
    """Check the code typed at sign-in and, when it is right, sign the person in.

    A right code's use and the sign-in it earns commit together (one transaction: one WAL
    flush, and a failure halfway leaves the code unused). A wrong one is counted after that
    transaction, since starting a pause emails the person.
    """
    with db.atomic():
        result = _judge(user, raw_code, method, SIGN_IN)
        if result.ok:
            return replace(result, next_url=finish(user, result.method_kind))
    return _counted(user, method, result)


def check(
    user, raw_code: str | None, method: VerificationMethod | None, purpose: str = SIGN_IN
) -> VerifyResult:
    """Check a typed code of `purpose` (signing in, or a password reset) without signing
    anybody in; every purpose counts wrong codes towards the same pause (Decisions 8).

    During a pause every code is refused, the right one too. Any live sign-in code of the
    person works, whichever of their methods it went to (Decisions 7); an authenticator code
    works when the authenticator is the challenged method, and each time step only once.
    Wrong, expired and replayed codes count towards the pause; a malformed one does not.
    """
    return _counted(user, method, _judge(user, raw_code, method, purpose))


def _judge(
    user, raw_code: str | None, method: VerificationMethod | None, purpose: str
) -> VerifyResult:
    """The verdict on a typed code; a right one is used up, a wrong one not counted yet."""
    until = throttle.paused_until(user)
    if until is not None:
        return VerifyResult(Reason.PAUSED, paused_message(until), paused_until=until)
    if not (raw_code or "").strip():
        return VerifyResult(Reason.INVALID_FORMAT, EMPTY_MESSAGE)
    code = codes.normalize(raw_code)
    if code is None:
        return VerifyResult(Reason.INVALID_FORMAT, FORMAT_MESSAGE)

    reason, used_kind = _check(user, code, method, purpose)
    if reason is Reason.OK:
        throttle.record_success(user)
        return VerifyResult(Reason.OK, method_kind=used_kind)
    return VerifyResult(reason)


_REFUSED_MESSAGES = {
    Reason.WRONG: WRONG_MESSAGE,
    Reason.EXPIRED: EXPIRED_MESSAGE,
    Reason.REPLAYED: REPLAYED_MESSAGE,
}


def _counted(user, method: VerificationMethod | None, result: VerifyResult) -> VerifyResult:
    """A wrong, expired or replayed code counts towards the pause, and says why."""
    if result.reason not in _REFUSED_MESSAGES:
        return result
    failed_kind = method.kind if method is not None else ""
    pause_end = throttle.record_failure(user, failed_kind)
    if pause_end is not None:
        return VerifyResult(Reason.PAUSED, paused_message(pause_end), paused_until=pause_end)
    return VerifyResult(result.reason, _REFUSED_MESSAGES[result.reason])


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
    if totp_result is totp.TotpResult.REPLAYED:
        return Reason.REPLAYED, ""
    if check.result is codes.CodeResult.EXPIRED:
        return Reason.EXPIRED, ""
    return Reason.WRONG, ""


def _mark_used(user, kind: str) -> None:
    """Record when the method of `kind` last let the person in."""
    if kind in BY_KIND:
        VerificationMethod.update(last_used_at=now()).where(
            (VerificationMethod.user == user) & (VerificationMethod.kind == kind)
        ).execute()


def finish(user, method_kind: str) -> str:
    """End the pending state: sign in under a fresh session id; return where to go."""
    next_url = signin.pending_next_url()
    signin.complete_sign_in(user, method_kind=method_kind)
    return next_url
