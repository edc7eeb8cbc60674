"""Forgotten passwords and password changes (the password half of signing in).

- A "Forgot password?" request does the same work whether or not the address has a login and
  answers the same; only a known address, under its hourly cap, gets a link. The email itself
  leaves after the answer (`request_link` returns the delivery for the view to run then), so
  the answer takes as long either way.
- A link holds a random token, stored only as its SHA-256; it works once, until its own
  expiry (PASSWORD_RESET_MINUTES after it was asked for) - a newer link never extends it.
- When the login has 2-Step Verification on (or is staff with methods), the link first asks
  for the same second step as signing in (services.methods.challenge: picker, codes, pause), or one
  of the person's recovery codes in its place. Which method is challenged and when the step
  was passed are the client's `progress` (a dict the caller keeps: the web in its signed
  cookie), tied to this token and this login, and the pass expires.
- A new password never signs anybody in, never turns 2SV off, and ends every session.
"""

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from types import SimpleNamespace

from flask import current_app, render_template
from flask_babel import gettext

from models import db
from models.clock import now
from models.events import PASSWORD_CHANGED, RECOVERY_CODE_USED_FOR_RESET
from models.passwords import PasswordResetToken
from models.people import User
from models.sessions import UserSession
from models.verification import TOTP, WEBAUTHN
from services.account import password_policy, sessions
from services.account.passwords import hash_password, verify_password
from services.delivery.mail import send_notice
from services.delivery.senders import DeliveryError, email_sender
from services.language import N_, speaking_to
from services.methods import (
    challenge,
    kind_of,
    policy,
    recovery_codes,
    trusted_devices,
    ways_in,
    webauthn_keys,
)
from services.security import security_log

# One-time codes sent for a reset belong to this purpose: they never sign anybody in.
PURPOSE = "password_reset"
RESET_SUBJECT = N_("Reset your password")
CHANGED_SUBJECT = N_("Your password was changed")
STATE_KEY = "password_reset"
TOKEN_BYTES = 32
# A token from `secrets.token_urlsafe(32)` has 43 characters; anything much longer is not one.
MAX_TOKEN_LENGTH = 100

WRONG_PASSWORD = N_("That password is not right.")
MISMATCH = N_("The two new passwords don't match. Type the same password twice.")
VERIFY_FIRST = N_("Verify it's you with your 2-Step Verification before choosing a new password.")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _minutes(name: str) -> timedelta:
    return timedelta(minutes=current_app.config[name])


# --- Asking for a link ------------------------------------------------------------------------


def _nothing() -> None:
    """The delivery for an unknown address, or one over its cap: nothing is sent."""


def _requests_in_last_hour(user_id: int, moment: datetime) -> int:
    return (
        PasswordResetToken.select()
        .where(
            PasswordResetToken.user == user_id,
            PasswordResetToken.created_at > moment - timedelta(hours=1),
        )
        .count()
    )


def request_link(email: str, link_for: Callable[[str], str]) -> Callable[[], None]:
    """Prepare a reset link for `email`; return the delivery to run once the answer is sent.

    A known and an unknown address take the same path up to the delivery: look the login up,
    make a token and its hash, count the recent requests, build the link and render the email.
    Only a known address under PASSWORD_RESET_REQUESTS_PER_ADDRESS links in the last hour gets
    a delivery that stores the token and sends the email; for any other the delivery does
    nothing. `link_for(token)` is the absolute URL of the reset page for a token.
    """
    config = current_app.config
    moment = now()
    user = User.by_email(email)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    token_hash = _hash(token)
    recent = _requests_in_last_hour(user.id if user is not None else 0, moment)
    expires_at = moment + _minutes("PASSWORD_RESET_MINUTES")
    recipient = user or SimpleNamespace(name="", email=email)
    context = {
        "user": recipient,
        "link": link_for(token),
        "minutes": config["PASSWORD_RESET_MINUTES"],
        "product_name": config["PRODUCT_NAME"],
    }
    with speaking_to(recipient):
        subject = gettext(RESET_SUBJECT)
        text = render_template("email/password_reset.txt", **context)
        html = render_template("email/password_reset.html", **context)
    cap = config["PASSWORD_RESET_REQUESTS_PER_ADDRESS"]
    if user is None or recent >= cap:
        return _nothing

    def deliver() -> None:
        with db.atomic():
            # Requests for one address that arrive together are counted one after the other:
            # this no-op UPDATE takes the login's row lock (PostgreSQL) or the database's write
            # lock (SQLite) before the count is taken again, so the cap holds under a burst.
            User.update(failed_code_count=User.failed_code_count).where(
                User.id == user.id
            ).execute()
            if _requests_in_last_hour(user.id, moment) >= cap:
                return
            PasswordResetToken.create(
                user=user.id, token_hash=token_hash, created_at=moment, expires_at=expires_at
            )
        try:
            email_sender().send_email(user.email, subject, text, html)
        except DeliveryError as error:
            current_app.logger.warning("Could not send a password reset link: %s", error)

    return deliver


# --- Opening a link ---------------------------------------------------------------------------


class LinkState(Enum):
    """What a reset link is worth now."""

    VALID = "valid"
    UNKNOWN = "unknown"  # never issued, or tampered with
    EXPIRED = "expired"
    USED = "used"


LINK_MESSAGES = {
    LinkState.UNKNOWN: N_(
        "This password reset link isn't valid. Check that you copied all of it, "
        "or ask for a new one."
    ),
    LinkState.EXPIRED: N_(
        "This password reset link has expired. Links work for a limited time; ask for a new one."
    ),
    LinkState.USED: N_(
        "This password reset link was used already. Each link works once; ask for "
        "a new one if you need it."
    ),
}


@dataclass(frozen=True)
class Link:
    """A reset link as opened: its state, and the token row and login when it exists."""

    state: LinkState
    row: PasswordResetToken | None = None

    @property
    def valid(self) -> bool:
        return self.state is LinkState.VALID

    @property
    def user(self) -> User | None:
        return self.row.user if self.row is not None else None

    @property
    def message(self) -> str:
        return gettext(LINK_MESSAGES[self.state]) if self.state in LINK_MESSAGES else ""


def open_link(token: str) -> Link:
    """Look the token of a link up (by its hash) and say whether it still works."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return Link(LinkState.UNKNOWN)
    row = (
        PasswordResetToken.select(PasswordResetToken, User)
        .join(User)
        .where(PasswordResetToken.token_hash == _hash(token))
        .first()
    )
    if row is None:
        return Link(LinkState.UNKNOWN)
    if row.used_at is not None:
        return Link(LinkState.USED, row)
    if row.expires_at <= now():
        return Link(LinkState.EXPIRED, row)
    return Link(LinkState.VALID, row)


# --- The second step before a new password ----------------------------------------------------


def needs_verification(user: User) -> bool:
    """Whether a reset for `user` asks for the second step first: 2SV on (or required) and a
    saved method. A staff login without one meets the forced set-up at sign-in; saved methods
    that can't be used here leave an empty picker (fail closed), never a reset without them."""
    return policy.needs_second_step(user) and bool(policy.methods_of(user))


def _state(row: PasswordResetToken, progress: dict) -> dict:
    """The client's `progress` if it is with this link, or {} (another link or login, none)."""
    if not isinstance(progress, dict):
        return {}
    if progress.get("token") == row.id and progress.get("user") == row.user_id:
        return progress
    return {}


def _save_state(row: PasswordResetToken, progress: dict, **changes) -> None:
    """Record `changes` in the client's `progress` (in place), started afresh for this link."""
    state = dict(_state(row, progress)) or {"token": row.id, "user": row.user_id}
    state.update(changes)
    progress.clear()
    progress.update(state)


def is_verified(row: PasswordResetToken, progress: dict) -> bool:
    """Whether this browser may choose the new password for this link now."""
    if not needs_verification(row.user):
        return True
    verified_at = _state(row, progress).get("verified_at")
    if not isinstance(verified_at, str):
        return False
    try:
        moment = datetime.fromisoformat(verified_at)
    except ValueError:
        return False
    return moment <= now() <= moment + _minutes("PASSWORD_RESET_VERIFIED_MINUTES")


def screen(row: PasswordResetToken, progress: dict) -> challenge.Screen:
    """The verification step this browser sees for this link (the sign-in's Screen).

    A single authenticator app shows the code box at once, and security keys alone (one way
    in, however many keys) the key step; email and text message start from the picker (one
    button for one method), since only a POST may send a code. All of a person's keys are a
    single "Security Key" entry in the picker.
    """
    user = row.user
    methods = policy.sign_in_methods(user)
    method = challenge.own_method(user, _state(row, progress).get("method"))
    ways = ways_in(methods)
    if method is None and len(ways) == 1 and ways[0].kind in (TOTP, WEBAUTHN):
        method = ways[0]
    if method is None:
        return challenge.Screen(challenge.Step.PICKER, methods)
    return challenge.Screen(challenge.Step.CODE, methods, method)


def choose(row: PasswordResetToken, progress: dict, raw_method_id) -> challenge.SendResult:
    """The picker's choice: challenge that method, sending an email or text code now.

    As at sign-in: a send refused by the cooldown or caps still opens the code box (earlier
    codes stay alive); a provider failure leaves the person on the picker.
    """
    user = row.user
    method = challenge.own_method(user, raw_method_id)
    if method is None:
        return challenge.SendResult(False, 422, gettext(challenge.CHOOSE_MESSAGE))
    if not kind_of(method).sends_code:
        _save_state(row, progress, method=method.id)
        return challenge.SendResult(True, 200, "", method)
    outcome = challenge.send_code(user, method, purpose=PURPOSE)
    if outcome.ok or outcome.status == 429:
        _save_state(row, progress, method=method.id)
    return outcome


def resend(row: PasswordResetToken, progress: dict) -> challenge.SendResult:
    """ "Send new code" to the challenged email address or phone; earlier codes stay alive."""
    method = screen(row, progress).method
    if method is None:
        return challenge.SendResult(False, 422, gettext(challenge.CHOOSE_MESSAGE))
    return challenge.send_code(row.user, method, purpose=PURPOSE)


def verify(row: PasswordResetToken, progress: dict, raw_code: str | None) -> challenge.VerifyResult:
    """Check the typed code as sign-in does (wrong ones count towards the same pause); a right
    one lets this browser choose the new password for a while. Nobody is signed in."""
    current = screen(row, progress)
    result = challenge.check(row.user, raw_code, current.method, purpose=PURPOSE)
    if result.ok:
        _save_state(row, progress, verified_at=now().isoformat())
    return result


def verify_recovery(
    row: PasswordResetToken, progress: dict, raw: str | None
) -> challenge.VerifyResult:
    """A recovery code in place of the second step (phone lost and password forgotten): used
    up and counted as at sign-in (wrong ones towards the same pause), the person emailed; a
    right one lets this browser choose the new password for a while. Nobody is signed in."""
    result = recovery_codes.redeem(row.user, raw, event=RECOVERY_CODE_USED_FOR_RESET)
    if result.ok:
        _save_state(row, progress, verified_at=now().isoformat())
    return result


def _key_method(row: PasswordResetToken, progress: dict):
    """The challenged method when it is a security key, else None."""
    method = screen(row, progress).method
    return method if method is not None and method.kind == WEBAUTHN else None


def key_options(
    row: PasswordResetToken, progress: dict, party: webauthn_keys.RelyingParty
) -> challenge.KeyResult:
    """The options for navigator.credentials.get() over the person's keys, with a challenge
    that only a password reset accepts. Refused while verification is paused."""
    if _key_method(row, progress) is None:
        return challenge.KeyResult(False, 422, gettext(challenge.CHOOSE_MESSAGE))
    return challenge.key_options(row.user, party, webauthn_keys.PASSWORD_RESET)


def verify_key(
    row: PasswordResetToken, progress: dict, party: webauthn_keys.RelyingParty, credential
) -> challenge.KeyResult:
    """Check a security key's answer as sign-in does (refusals count towards the same pause);
    a good one lets this client choose the new password for a while. Nobody is signed in."""
    if _key_method(row, progress) is None:
        return challenge.KeyResult(False, 422, gettext(challenge.CHOOSE_MESSAGE))
    result = challenge.check_key(row.user, party, credential, webauthn_keys.PASSWORD_RESET)
    if result.ok:
        _save_state(row, progress, verified_at=now().isoformat())
    return result


# --- Setting the new password -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The answer to a new password: refused (with the field and message) or done."""

    ok: bool
    status: int = 200
    messages: tuple[str, ...] = ()
    field: str = ""
    sessions_ended: int = 0


def refused(status: int, field: str, *messages: str) -> Outcome:
    return Outcome(False, status, tuple(messages), field)


def check_new_password(user: User, password: str, confirmation: str) -> Outcome | None:
    """A refusal when the new password breaks a rule or its confirmation differs, else None."""
    found = password_policy.problems(password, user.email)
    if found:
        return refused(422, "new_password", *found)
    if password != confirmation:
        return refused(422, "confirm_password", gettext(MISMATCH))
    return None


def _use_up_links(user: User, moment: datetime) -> int:
    """End every live reset link of `user` (a new password makes them pointless)."""
    return (
        PasswordResetToken.update(used_at=moment)
        .where(
            PasswordResetToken.user == user,
            PasswordResetToken.used_at.is_null(),
            PasswordResetToken.expires_at > moment,
        )
        .execute()
    )


def _announce(user: User, how: str, ended: int) -> None:
    """Log PASSWORD_CHANGED and email the person about it."""
    event = security_log.record(
        PASSWORD_CHANGED,
        user,
        detail=f"{how}; {ended} session{'s' if ended != 1 else ''} signed out",
        notify=False,
    )
    send_notice(user.email, CHANGED_SUBJECT, "password_changed", user=user, event=event, how=how)


def reset_password(
    row: PasswordResetToken, progress: dict, password: str, confirmation: str
) -> Outcome:
    """Set a new password through a reset link; every session of the login ends.

    Refused when the step before is missing (403), the password breaks a rule (422), or the
    link was used or expired meanwhile (410). 2-Step Verification is left exactly as it was.
    """
    user = row.user
    if not is_verified(row, progress):
        return refused(403, "", gettext(VERIFY_FIRST))
    refusal = check_new_password(user, password, confirmation)
    if refusal is not None:
        return refusal
    password_hash = hash_password(password)
    moment = now()
    with db.atomic():
        consumed = (
            PasswordResetToken.update(used_at=moment)
            .where(
                PasswordResetToken.id == row.id,
                PasswordResetToken.used_at.is_null(),
                PasswordResetToken.expires_at > moment,
            )
            .execute()
        )
        if not consumed:
            return refused(410, "", open_link_state_message(row))
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        user.password_hash = password_hash
        _use_up_links(user, moment)
        ended = sessions.end_all(user)
        trusted_devices.revoke_all(user, "the password was reset")
    progress.clear()
    _announce(user, N_("Reset with a link from a password reset email"), ended)
    return Outcome(True, sessions_ended=ended)


def open_link_state_message(row: PasswordResetToken) -> str:
    """Why a link that was valid a moment ago no longer is."""
    fresh = PasswordResetToken.get_by_id(row.id)
    state = LinkState.USED if fresh.used_at is not None else LinkState.EXPIRED
    return gettext(LINK_MESSAGES[state])


def change_password(
    user: User,
    keep: UserSession | None,
    current_password: str,
    password: str,
    confirmation: str,
) -> Outcome:
    """The profile's Change password: the current password, then a new one under the rules.

    The session that asks (`keep`) stays signed in (and counts as a fresh sign-in); every
    other session of the login ends, and live reset links are used up.
    """
    if not verify_password(user.password_hash, current_password or ""):
        return refused(422, "current_password", gettext(WRONG_PASSWORD))
    refusal = check_new_password(user, password, confirmation)
    if refusal is not None:
        return refusal
    password_hash = hash_password(password)
    moment = now()
    with db.atomic():
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        user.password_hash = password_hash
        _use_up_links(user, moment)
        ended = sessions.end_others(user, keep=keep) if keep is not None else sessions.end_all(user)
        trusted_devices.revoke_all(user, "the password was changed")
    if keep is not None:
        sessions.mark_authenticated(keep)
    _announce(user, N_("Changed from the profile page"), ended)
    return Outcome(True, sessions_ended=ended)
