"""Adding and removing verification methods, and turning 2-Step Verification on and off.

Each function returns an `Outcome` saying what happened and, when refused, why, so the
window, the forced set-up and the tests all see the same answer.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from flask import current_app
from flask_babel import gettext as _
from peewee import IntegrityError

from models import crypto, db
from models.clock import now
from models.compiled import CompiledSelect
from models.deliveries import CodeDelivery
from models.events import METHOD_ADDED, METHOD_REMOVED, TWO_STEP_OFF, TWO_STEP_ON
from models.people import User
from models.verification import ENROL, TOTP, PendingSetup, VerificationMethod
from services.methods import (
    AUTHENTICATOR,
    EMAIL_KIND,
    MethodKind,
    codes,
    deliveries,
    kind_of,
    policy,
    totp,
    trusted_devices,
)
from services.security import security_log

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ACCEPTED_PHONE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


@dataclass
class Outcome:
    """What an enrolment step did: ok, or the message and HTTP status that explain why not."""

    ok: bool
    message: str = ""
    status: int = 200
    method: VerificationMethod | None = None
    retry_at: datetime | None = None
    field: str = ""  # the form field the message belongs to, if any


def refused(message: str, status: int = 422, field: str = "", **extra) -> Outcome:
    return Outcome(False, message, status, field=field, **extra)


# --- destinations -------------------------------------------------------------------------


def clean_email(raw: str) -> tuple[str | None, str]:
    """A valid email address (lower-cased), or None and the reason."""
    value = (raw or "").strip().lower()
    if not value:
        return None, _("Enter an email address.")
    if len(value) > 254 or not EMAIL_PATTERN.match(value) or not value.isascii():
        return None, _("Enter a valid email address, like name@example.com.")
    return value, ""


def clean_phone(raw: str) -> tuple[str | None, str]:
    """A valid mobile number in E.164 form, or None and the reason."""
    value = (raw or "").strip()
    if not value:
        return None, _("Enter a mobile number.")
    if len(value) > 32:
        return None, _("That is too long for a phone number.")
    try:
        number = phonenumbers.parse(value, current_app.config["PHONE_DEFAULT_REGION"])
    except phonenumbers.NumberParseException:
        return None, _("Enter a valid mobile number, like (201) 555-0123 or +1 201 555 0123.")
    if not phonenumbers.is_valid_number(number):
        return None, _("That is not a valid phone number. Check the digits and the country code.")
    if phonenumbers.number_type(number) not in ACCEPTED_PHONE_TYPES:
        return None, _("Enter a mobile number that can receive text messages.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ""


def _existing(user: User, kind: str) -> VerificationMethod | None:
    return VerificationMethod.get_or_none(
        VerificationMethod.user == user, VerificationMethod.kind == kind
    )


def _not_allowed(user: User, method_kind: MethodKind) -> Outcome | None:
    """A refusal when the staff method policy leaves this kind out, else None."""
    if policy.is_allowed(user, method_kind.kind):
        return None
    return refused(
        _(
            "%(method)s can't be used for staff sign-in here. Choose another method.",
            method=method_kind.label,
        ),
        status=403,
    )


def _already_added(method_kind: MethodKind) -> Outcome:
    return refused(
        _(
            "%(method)s is already set up. To change it, delete it and add it again.",
            method=method_kind.label,
        ),
        status=409,
    )


# --- the authenticator app ----------------------------------------------------------------


# Every render of a method tab looks its pending set-up up: SQL written once.
_PENDING = CompiledSelect(
    lambda user, kind: (
        PendingSetup.select().where(PendingSetup.user == user, PendingSetup.kind == kind).limit(1)
    ),
    user=PendingSetup.user,
    kind=PendingSetup.kind,
)


def pending_authenticator(user: User) -> PendingSetup | None:
    """The authenticator key waiting for its first code, if one is still fresh (Decisions 11)."""
    pending = _PENDING.first(user=user, kind=TOTP)
    if pending is None:
        return None
    age = now() - pending.created_at
    if age > timedelta(minutes=current_app.config["PENDING_TOTP_MINUTES"]):
        pending.delete_instance()
        return None
    if not _opens(pending.secret):
        # Made on an instance with another key list: as good as expired, a new QR code follows.
        current_app.logger.error("A pending authenticator key can't be opened with ENCRYPTION_KEYS")
        pending.delete_instance()
        return None
    return pending


def _opens(token: str) -> bool:
    try:
        crypto.decrypt(token)
    except crypto.DecryptionError:
        return False
    return True


def start_authenticator(user: User) -> Outcome:
    """Make (or reuse) the pending authenticator key that the QR code shows."""
    if refusal := _not_allowed(user, AUTHENTICATOR):
        return refusal
    if _existing(user, TOTP):
        return _already_added(AUTHENTICATOR)
    if pending_authenticator(user) is None:
        with db.atomic():
            PendingSetup.delete().where(
                PendingSetup.user == user, PendingSetup.kind == TOTP
            ).execute()
            PendingSetup.create(user=user, kind=TOTP, secret=crypto.encrypt(totp.new_secret()))
    return Outcome(True)


def authenticator_display(user: User, pending: PendingSetup) -> dict:
    """What the set-up screen shows for a pending key: the QR code and the key in groups."""
    secret = crypto.decrypt(pending.secret)
    uri = totp.provisioning_uri(secret, user.email)
    return {"qr_svg": totp.qr_svg(uri), "grouped_key": totp.grouped(secret), "uri": uri}


def confirm_authenticator(user: User, raw_code: str) -> Outcome:
    """Save the authenticator app once the person types a current code from it."""
    if refusal := _not_allowed(user, AUTHENTICATOR):
        return refusal
    if _existing(user, TOTP):
        return _already_added(AUTHENTICATOR)
    pending = pending_authenticator(user)
    if pending is None:
        return refused(
            _("That set-up has expired. Scan the new QR code and try again."), field="code"
        )
    code = codes.normalize(raw_code)
    if code is None:
        return refused(_("Enter the 6-digit code from your authenticator app."), field="code")
    step = totp.matching_step(crypto.decrypt(pending.secret), code, now())
    if step is None:
        return _wrong_setup_code(
            pending,
            _(
                "That code didn't match. Check that your phone's clock is set automatically, "
                "then enter the code the app shows now."
            ),
        )
    return _save(
        user,
        pending,
        AUTHENTICATOR,
        secret=pending.secret,
        last_totp_step=step,
    )


# --- email and text message ---------------------------------------------------------------


def send_setup_code(user: User, method_kind: MethodKind, raw_destination: str) -> Outcome:
    """Check the destination and send it a code that confirms it."""
    if refusal := _not_allowed(user, method_kind):
        return refusal
    if _existing(user, method_kind.kind):
        return _already_added(method_kind)
    if method_kind is EMAIL_KIND:
        destination, problem = clean_email(raw_destination)
    else:
        destination, problem = clean_phone(raw_destination)
    if destination is None:
        return refused(problem, field="destination")
    with db.atomic():
        pending = PendingSetup.get_or_none(
            PendingSetup.user == user, PendingSetup.kind == method_kind.kind
        )
        if pending is None:
            PendingSetup.create(user=user, kind=method_kind.kind, destination=destination)
        elif pending.destination != destination:
            PendingSetup.update(destination=destination, failed_attempts=0, created_at=now()).where(
                PendingSetup.id == pending.id
            ).execute()
    sent = codes.send(user, ENROL, method_kind, destination)
    if not sent.ok:
        return refused(sent.message, status=sent.status, retry_at=sent.retry_at)
    masked = method_kind.masked(destination)
    if sent.sent_at is not None:  # within the cooldown: the code sent then still works
        return Outcome(True, codes.still_good_message(masked, sent.sent_at))
    return Outcome(
        True, sent.message or _("We sent a code to %(destination)s.", destination=masked)
    )


def pending_code_setup(user: User, method_kind: MethodKind) -> PendingSetup | None:
    """The set-up of an email or phone waiting for the code sent to it, or None."""
    pending = _PENDING.first(user=user, kind=method_kind.kind)
    return pending if pending is not None and pending.destination else None


def setup_delivery(user: User, pending: PendingSetup) -> CodeDelivery | None:
    """The newest code confirming `pending` sent to its destination since that set-up began
    (a new destination begins it again): what the set-up's code box says became of it."""
    return deliveries.newest(user, ENROL, pending.destination, since=pending.created_at)


def confirm_setup_code(user: User, method_kind: MethodKind, raw_code: str) -> Outcome:
    """Save an email or text-message method once the code sent to it is typed back."""
    if refusal := _not_allowed(user, method_kind):
        return refusal
    if _existing(user, method_kind.kind):
        return _already_added(method_kind)
    pending = PendingSetup.get_or_none(
        PendingSetup.user == user, PendingSetup.kind == method_kind.kind
    )
    if pending is None or not pending.destination:
        return refused(_("Send a code first, then type it here."), field="code")
    code = codes.normalize(raw_code)
    if code is None:
        return refused(_("Enter the 6-digit code we sent you."), field="code")
    # The code's use and the saved method commit together: a failure between them leaves
    # the code unused and no method, never a used code without its method.
    try:
        with db.atomic():
            check = codes.verify(user, ENROL, code, destination=pending.destination)
            if check.ok:
                method = _store(user, pending, method_kind, destination=pending.destination)
    except IntegrityError:
        return _already_added(method_kind)
    if check.result is codes.CodeResult.EXPIRED:
        expired = _("That code has expired. Use Send code to get a new one.")
        return _wrong_setup_code(pending, expired)
    if check.result is codes.CodeResult.RETIRED:
        return _wrong_setup_code(pending, _(codes.RETIRED_MESSAGE))
    if check.result is not codes.CodeResult.OK:
        return _wrong_setup_code(pending, _("That code didn't match. Check it and try again."))
    return _announce(user, method_kind, method)


def _wrong_setup_code(pending: PendingSetup, message: str) -> Outcome:
    """Count a wrong set-up code; too many cancel that set-up (Decisions 8)."""
    limit = current_app.config["ENROL_MAX_FAILED_CODES"]
    PendingSetup.update(failed_attempts=PendingSetup.failed_attempts + 1).where(
        PendingSetup.id == pending.id
    ).execute()
    attempts = PendingSetup.get_by_id(pending.id).failed_attempts
    if attempts >= limit:
        with db.atomic():
            pending.delete_instance()
            codes.discard(pending.user, ENROL)
        return refused(
            _("Too many wrong codes, so we cancelled this set-up. Start again to get a new code."),
            field="code",
        )
    return refused(message, field="code")


def _save(user: User, pending: PendingSetup, method_kind: MethodKind, **fields) -> Outcome:
    """Turn a confirmed pending set-up into a saved method, and tell the person."""
    try:
        with db.atomic():
            method = _store(user, pending, method_kind, **fields)
    except IntegrityError:
        return _already_added(method_kind)
    return _announce(user, method_kind, method)


def _store(
    user: User, pending: PendingSetup, method_kind: MethodKind, **fields
) -> VerificationMethod:
    """The database writes of saving a method (the caller's transaction); IntegrityError when
    one of that kind was saved meanwhile."""
    method = VerificationMethod.create(user=user, kind=method_kind.kind, **fields)
    PendingSetup.delete().where(PendingSetup.id == pending.id).execute()
    if user.requires_2sv and not user.two_step_enabled:
        # Staff: 2SV is required, so their first method turns it on.
        User.update(two_step_enabled=True).where(User.id == user.id).execute()
        user.two_step_enabled = True
    return method


def _announce(user: User, method_kind: MethodKind, saved: VerificationMethod) -> Outcome:
    """After the commit: record the new method and email the person."""
    security_log.record(
        METHOD_ADDED,
        user,
        method_kind=method_kind.kind,
        detail=method_kind.describe(saved),
        method_label=method_kind.describe(saved),
    )
    return Outcome(True, _("%(method)s is set up.", method=method_kind.label), method=saved)


# --- removing methods, the toggle ---------------------------------------------------------


def find_method(user: User, raw_id) -> VerificationMethod | None:
    """The method with this id if it belongs to `user` (anything else: None, never an error)."""
    try:
        method_id = int(raw_id)
    except (TypeError, ValueError):
        return None
    if not 0 < method_id < 2**63:
        return None
    return VerificationMethod.get_or_none(
        VerificationMethod.id == method_id, VerificationMethod.user == user
    )


def delete_method(user: User, method: VerificationMethod) -> Outcome:
    """Delete a method; a family's last method turns 2SV off, a staff member's last is kept."""
    count = len(policy.methods_of(user))
    decision = policy.can_delete_method(user, count)
    if not decision:
        return refused(decision.reason, status=409)
    method_kind = kind_of(method)
    description = method_kind.describe(method)
    turned_off = False
    with db.atomic():
        deleted = VerificationMethod.delete().where(VerificationMethod.id == method.id).execute()
        if not deleted:
            return refused(_("That method was already removed."), status=404)
        if count == 1 and user.two_step_enabled:
            User.update(two_step_enabled=False).where(User.id == user.id).execute()
            user.two_step_enabled = False
            turned_off = True
    security_log.record(
        METHOD_REMOVED,
        user,
        method_kind=method.kind,
        detail=description,
        method_label=description,
    )
    trusted_devices.revoke_all(user, "a verification method was removed")
    if turned_off:
        security_log.record(TWO_STEP_OFF, user, detail="Last method removed")
        return Outcome(
            True,
            _(
                "%(method)s was removed. It was your last method, so 2-Step "
                "Verification is now off.",
                method=method_kind.label,
            ),
        )
    return Outcome(True, _("%(method)s was removed.", method=method_kind.label))


def set_enabled(user: User, enabled: bool) -> Outcome:
    """Turn 2SV on (needs a method) or off (families only; their methods stay saved)."""
    if enabled == user.two_step_enabled:
        return Outcome(True)
    if enabled:
        decision = policy.can_turn_on(user, len(policy.methods_of(user)))
        if not decision:
            return refused(decision.reason)
    else:
        decision = policy.can_turn_off(user)
        if not decision:
            return refused(decision.reason, status=409)
    User.update(two_step_enabled=enabled).where(User.id == user.id).execute()
    user.two_step_enabled = enabled
    security_log.record(TWO_STEP_ON if enabled else TWO_STEP_OFF, user)
    if not enabled:
        trusted_devices.revoke_all(user, "2-Step Verification was turned off")
    if enabled:
        return Outcome(True, _("2-Step Verification is on."))
    return Outcome(
        True,
        _(
            "2-Step Verification is off. Your methods stay saved; turning it back on is the "
            "safer choice."
        ),
    )


def rotate_stored_keys() -> int:
    """Re-encrypt every stored authenticator key under the first ENCRYPTION_KEYS key.

    All or nothing: if any stored key can't be opened, nothing is changed and
    crypto.DecryptionError says how many (the key list lacks the key they were made with).
    """
    rotated = 0
    unreadable = 0
    with db.atomic() as transaction:
        for model in (VerificationMethod, PendingSetup):
            for row in model.select(model.id, model.secret).where(model.secret != ""):
                try:
                    secret = crypto.rotate(row.secret)
                except crypto.DecryptionError:
                    unreadable += 1
                    continue
                model.update(secret=secret).where(model.id == row.id).execute()
                rotated += 1
        if unreadable:
            transaction.rollback()
            raise crypto.DecryptionError(
                f"{unreadable} of {rotated + unreadable} stored authenticator key(s) can't be "
                "opened with any key in ENCRYPTION_KEYS"
            )
    return rotated


def turn_on_with_first_method(user: User) -> Outcome:
    """The mobile app's rule (SPEC Decisions 21): once a person's first method is saved,
    2-Step Verification is on. Families who turned it off keep it off when they add a
    second method; the web offers the switch instead."""
    if user.two_step_enabled or len(policy.methods_of(user)) != 1:
        return Outcome(True)
    return set_enabled(user, True)


# How many of the newest saved authenticator keys the start-up check test-decrypts.
KEYS_CHECKED_AT_START = 20


def check_stored_keys() -> crypto.KeyCheck:
    """Test-decrypt the newest saved authenticator keys with this instance's ENCRYPTION_KEYS."""
    tokens = [
        row.secret
        for row in VerificationMethod.select(VerificationMethod.secret)
        .where(VerificationMethod.kind == TOTP, VerificationMethod.secret != "")
        .order_by(VerificationMethod.id.desc())
        .limit(KEYS_CHECKED_AT_START)
    ]
    return crypto.check(tokens)
