"""Signing in, from the password to the session: the one flow that the web pages and the mobile
app's JSON API share.

Callers hand in plain values (an email and a password, a typed code, who is asking as a
`Client`) and get back results saying what happened and what to keep; no cookie, redirect or
template is known here. A sign-in between the password and the second step is a PENDING row
of user_session (models/sessions.py) named by a token that the caller keeps: the web in its
cookie, the API as a bearer token. Each request finds the row again with
`sessions.find(token)` and passes it in as `pending`.

The entry points, in the order a sign-in meets them:

- `start(email, password, asking, trusted_token=None) -> Started`: the password step. Its
  `outcome` is SIGNED_IN (no second step, or a trusted device), VERIFY (the second step:
  `screen(pending)` says what it shows; a lone email or phone got its code, see `sent`),
  SETUP (a staff login with no method must add one), ASK_ADMIN (saved methods none of which
  can be checked here: only an admin's reset or a recovery code helps) or REFUSED (one
  generic message).
  `session` and `token` are the new session, pending or signed in, for the caller to keep.
- `screen(pending) -> challenge.Screen`: what the pending sign-in shows now (reads only).
- `choose(pending, method_id) -> challenge.SendResult`: the picker's choice; email and text
  message get a code at once.
- `resend(pending) -> challenge.SendResult`: "Send new code"; earlier codes stay alive.
- `verify_code(pending, code, asking) -> Verified`, `verify_recovery_code(...)`,
  `security_key_options(pending, party)` and `verify_security_key(pending, party, credential,
  asking)`: the second step. Refusals count towards the pause; a right answer signs the
  person in and `Verified.signed_in` holds the new session and its token (the pending token
  names nothing any more) - unless the staff policy leaves out the method proven: then
  `Verified.set_up` is true and the pending sign-in goes on to the set-up (Decisions 20).
- `skip_setup(pending, asking)` ("Not now", within the staff grace sign-ins) and
  `complete(pending, method_kind, asking)` (after the forced set-up saved a method): end the
  pending state with a signed-in session.
- `remember_device(user, asking, old_token)`: "Don't ask again on this device", a token for
  the client to keep and hand to the next `start`.
- `sign_out(row)`: end a session on the server.
"""

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from flask import current_app
from flask_babel import gettext
from peewee import PostgresqlDatabase, Select, fn

from models import db, write_transaction
from models.clock import now
from models.compiled import CompiledSelect, CompiledWrite
from models.events import (
    PASSWORD_RECHECK_FAILED,
    PASSWORD_RECHECK_LIMITED,
    SIGN_IN_PASSWORD_FAILED,
    SIGNED_IN,
    SIGNED_OUT,
    SecurityEvent,
)
from models.people import User
from models.sessions import ACTIVE, PENDING, PROVEN, WEB, UserSession
from models.verification import SIGN_IN, WEBAUTHN
from services.account import sessions
from services.account.passwords import hash_password, needs_rehash, verify_password
from services.language import N_
from services.methods import (
    challenge,
    kind_of,
    policy,
    recovery_codes,
    trusted_devices,
    ways_in,
    webauthn_keys,
)
from services.methods.challenge import Screen, SendResult, Step, VerifyResult
from services.security import client, security_log, throttle
from services.security.client import Client
from services.signin import grace

GENERIC_ERROR = N_("That email and password don't match an account. Check them and try again.")


def check_password(email: str, password: str) -> User | None:
    """The login whose email and password these are, or None - in the same time either way
    (argon2id runs against a stand-in hash for an unknown address).

    A wrong password for a login that exists is logged (SIGN_IN_PASSWORD_FAILED, no email):
    the person sees it in their activity, and it counts toward the re-check's per-account
    limit (confirm_password). The row costs well under 1 % of the argon2id check, inside its
    own jitter, so it tells no one which addresses exist.
    """
    user = User.by_email(email)
    if not verify_password(user.password_hash if user else None, password):
        if user is not None:
            security_log.record(SIGN_IN_PASSWORD_FAILED, user, notify=False)
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        User.update(password_hash=user.password_hash).where(User.id == user.id).execute()
    return user


class Recheck(Enum):
    """What asking for the password again found."""

    RIGHT = "right"
    WRONG = "wrong"
    LIMITED = "limited"  # too many wrong ones for this account: the caller ends the session


# The wrong passwords the re-check's limit counts, per account.
PASSWORD_FAILURES = (PASSWORD_RECHECK_FAILED, SIGN_IN_PASSWORD_FAILED)

RECHECK_LIMITED_MESSAGE = N_(
    "Too many wrong passwords were entered, so you were signed out. We emailed you about it. "
    "Sign in again to continue."
)


def confirm_password(user: User, password: str) -> Recheck:
    """Whether `password` is this signed-in person's (sudo mode), limited per account: the
    web's /confirm-password and the API's /reauth share this rule (issue 14).

    Like a code, each try is recorded before it is judged (an event row, committed first), so
    parallel requests can't get past the limit: past PASSWORD_RECHECKS_PER_ACCOUNT wrong
    passwords in PASSWORD_RECHECK_MINUTES - the re-check's and the sign-in's together - the
    password is not even checked (LIMITED: the caller ends the session) and the person is
    emailed once. A right one takes its row back.

    Someone who knows only the address can spend the budget with wrong sign-ins; the worst
    that does is ask the person to sign in again at their next re-check, within the 15
    minutes, with an email that tells them their password is being tried.
    """
    config = current_app.config
    limit, minutes = config["PASSWORD_RECHECKS_PER_ACCOUNT"], config["PASSWORD_RECHECK_MINUTES"]
    since = now() - timedelta(minutes=minutes)
    attempt = security_log.record(PASSWORD_RECHECK_FAILED, user, notify=False)
    if _password_failures(user, since, attempt.id) > limit:
        # Tell the person once a run: only the first re-check refused (wrong sign-ins may
        # have filled the budget before any re-check, so it is not always the 11th row).
        earlier = (
            SecurityEvent.select(fn.MAX(SecurityEvent.id))
            .where(
                SecurityEvent.user == user,
                SecurityEvent.kind == PASSWORD_RECHECK_FAILED,
                SecurityEvent.created_at > since,
                SecurityEvent.id < attempt.id,
            )
            .scalar()
        )
        if earlier is None or _password_failures(user, since, earlier) <= limit:
            detail = f"{limit} wrong passwords in {minutes} minutes"
            security_log.record(PASSWORD_RECHECK_LIMITED, user, detail=detail)
        return Recheck.LIMITED
    if verify_password(user.password_hash, password):
        SecurityEvent.delete().where(SecurityEvent.id == attempt.id).execute()
        return Recheck.RIGHT
    return Recheck.WRONG


def _password_failures(user: User, since, up_to_id: int) -> int:
    """Wrong passwords (re-check and sign-in) logged for `user` since `since`, up to a row."""
    return (
        SecurityEvent.select()
        .where(
            SecurityEvent.user == user,
            SecurityEvent.kind.in_(PASSWORD_FAILURES),
            SecurityEvent.created_at > since,
            SecurityEvent.id <= up_to_id,
        )
        .count()
    )


# --- the password step ------------------------------------------------------------------------


class Outcome(Enum):
    """Where a sign-in stands after the password step."""

    SIGNED_IN = "signed_in"
    VERIFY = "verify"  # the second step: the code box, the picker or the security key
    SETUP = "setup"  # a staff login with no usable method: the forced set-up first
    ASK_ADMIN = "ask_admin"  # saved methods, none usable here: an admin must reset 2SV
    REFUSED = "refused"  # a wrong email or password


@dataclass(frozen=True)
class SignedIn:
    """A session that a sign-in earned: the row and the token the caller keeps for it."""

    session: UserSession
    token: str


@dataclass(frozen=True)
class Started:
    """The answer to the password step."""

    outcome: Outcome
    user: User | None = None
    session: UserSession | None = None  # pending (VERIFY, SETUP) or signed in (SIGNED_IN)
    token: str = ""
    message: str = ""  # REFUSED: the one generic message
    sent: SendResult | None = None  # VERIFY with one email or phone: the code sent on arrival

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.REFUSED


def start(
    email: str,
    password: str,
    asking: Client,
    trusted_token: str | None = None,
    replacing: UserSession | None = None,
    *,
    kind: str = WEB,
    device_name: str = "",
) -> Started:
    """The password step: a right password starts a session, pending while a second step or
    the staff's set-up is due, signed in otherwise (or on a device trusted with
    `trusted_token`). `replacing` is a session the client still holds: it ends. `kind` says
    who keeps the token: WEB (a browser's cookie) or APP (the mobile app, named
    `device_name`); the session that the second step earns later keeps it.

    A lone email or text-message method gets its code here, so no later read ever sends one.
    """
    user = check_password(email, password)
    if user is None:
        return Started(Outcome.REFUSED, message=gettext(GENERIC_ERROR))
    if not policy.needs_second_step(user):
        done = _sign_in(user, "", asking, replacing, kind, device_name)
        return Started(Outcome.SIGNED_IN, user, done.session, done.token)
    if trusted_devices.skip_second_step(user, trusted_token):
        # "Don't ask again on this device": a valid trusted-device token of this person.
        done = _sign_in(user, trusted_devices.TRUSTED_DEVICE, asking, replacing, kind, device_name)
        return Started(Outcome.SIGNED_IN, user, done.session, done.token)
    pending, token = sessions.start(
        user, asking, pending=True, replacing=replacing, kind=kind, device_name=device_name
    )
    current = challenge.screen(user)
    if current.step is Step.NOT_NEEDED:
        done = complete(pending, "", asking)
        return Started(Outcome.SIGNED_IN, user, done.session, done.token)
    if current.step is Step.SETUP:
        return Started(Outcome.SETUP, user, pending, token)
    if current.step is Step.ASK_ADMIN:
        return Started(
            Outcome.ASK_ADMIN, user, pending, token, message=gettext(challenge.ASK_ADMIN_MESSAGE)
        )
    sent = None
    if current.step is Step.CODE:
        sessions.challenge(pending, current.method.id)
        if current.method_kind.sends_code:
            sent = challenge.send_code(user, current.method)
    return Started(Outcome.VERIFY, user, pending, token, sent=sent)


# --- the second step --------------------------------------------------------------------------


def screen(pending: UserSession) -> Screen:
    """What the pending sign-in shows now. Reads only; changes nothing."""
    return challenge.screen(pending.user, pending.challenge_method)


def choose(pending: UserSession, raw_method_id) -> SendResult:
    """The picker's choice: challenge that method, sending a code if it is email or text.

    Anything but one of the person's own methods is refused (422) and changes nothing. A send
    refused by the cooldown or the caps still opens the code box (earlier codes stay alive);
    a provider failure leaves the person on the picker to choose another method.
    """
    user = pending.user
    method = challenge.own_method(user, raw_method_id)
    if method is None:
        return SendResult(False, 422, gettext(challenge.CHOOSE_MESSAGE))
    if not kind_of(method).sends_code:
        sessions.challenge(pending, method.id)
        return SendResult(True, 200, "", method)
    outcome = challenge.send_code(user, method)
    if outcome.ok or outcome.status == 429:
        sessions.challenge(pending, method.id)
    return outcome


def resend(pending: UserSession) -> SendResult:
    """ "Send new code" for the challenged method; earlier codes stay alive (SPEC 4)."""
    user = pending.user
    method = challenge.own_method(user, pending.challenge_method)
    if method is None:
        methods = policy.sign_in_methods(user)
        method = methods[0] if len(ways_in(methods)) == 1 else None
    if method is None:
        return SendResult(False, 422, gettext(challenge.CHOOSE_MESSAGE))
    return challenge.send_code(user, method)


@dataclass(frozen=True)
class Verified:
    """The answer to a second step: the verdict and, when it was right, the new session - or
    `set_up`: proven with a method the staff policy leaves out, an allowed one comes next."""

    result: VerifyResult
    signed_in: SignedIn | None = None
    set_up: bool = False

    @property
    def ok(self) -> bool:
        return self.result.ok


def verify_code(
    pending: UserSession, raw_code: str | None, asking: Client, shown: Screen | None = None
) -> Verified:
    """Check the code typed at sign-in and, when it is right, sign the person in.

    An attempt is reserved first (challenge.reserve, committed on its own: no number of
    parallel requests gets past the pause); then a right code's use and the sign-in it earns
    commit together (a failure halfway leaves the code unused), the sign-in also ending the
    run of wrong codes. A wrong one is counted after that transaction (a pause emails).
    `shown` is `screen(pending)` when the caller has just read it (not worked out twice).
    """
    user = pending.user
    method = (shown or screen(pending)).method
    attempt = challenge.reserve(user, raw_code, method)
    if attempt.refused is not None:
        return Verified(attempt.refused)
    with write_transaction():
        result = challenge.judge(user, attempt.code, method, SIGN_IN)
        if result.ok:
            return _proven(pending, result, result.method_kind, asking)
    kind = challenge.kind_name(method)
    return Verified(challenge.settle(user, attempt.reservation, result.reason, kind))


def verify_recovery_code(pending: UserSession, raw, asking: Client) -> Verified:
    """A recovery code in place of the second step: used up and counted as a code is (wrong
    ones towards the same pause); a right one signs the person in, recorded with method kind
    "recovery"."""
    result = recovery_codes.redeem(pending.user, raw)
    if not result.ok:
        return Verified(result)
    return _proven(pending, result, recovery_codes.RECOVERY, asking)


def security_key_options(
    pending: UserSession, party: webauthn_keys.RelyingParty
) -> challenge.KeyResult:
    """The options for navigator.credentials.get() over the person's keys (refused while
    paused, or without a key)."""
    return challenge.key_options(pending.user, party, webauthn_keys.AUTHENTICATE)


def verify_security_key(
    pending: UserSession, party: webauthn_keys.RelyingParty, credential, asking: Client
) -> tuple[challenge.KeyResult, SignedIn | None]:
    """Check the key's answer; a refusal counts towards the pause like a wrong code, a good
    one signs the person in (the new session second; None when the set-up comes next, see
    `Verified.set_up`)."""
    result = challenge.check_key(pending.user, party, credential, webauthn_keys.AUTHENTICATE)
    if not result.ok:
        return result, None
    return result, _proven(pending, None, WEBAUTHN, asking).signed_in


def _proven(pending: UserSession, result, method_kind: str, asking: Client) -> Verified:
    """A second step passed: signed in, or - for staff whose saved methods the policy now
    leaves out - on to the set-up of an allowed one before the sign-in completes (Decisions
    20). Either way the run of wrong codes ends."""
    if not policy.must_set_up(pending.user):
        return Verified(result, complete(pending, method_kind, asking))
    throttle.record_success(pending.user)
    sessions.challenge(pending, PROVEN)
    return Verified(result, set_up=True)


# --- the end of the pending state ---------------------------------------------------------------


def skip_setup(pending: UserSession, asking: Client) -> SignedIn | None:
    """ "Not now" on the forced set-up: within STAFF_SETUP_GRACE_SIGNINS, signed in without a
    method; None when no grace is left (grace.NO_GRACE_LEFT says so)."""
    if not grace.use_one(pending.user):
        return None
    return complete(pending, "", asking)


def complete(pending: UserSession, method_kind: str, asking: Client) -> SignedIn:
    """End the pending state: the person is signed in under a fresh token (the pending one
    names nothing any more), and the sign-in is recorded."""
    return _sign_in(pending.user, method_kind, asking, pending, pending.kind, pending.device_name)


# Every completed sign-in runs it: its SQL is written once (models/compiled.py).
_STAMP_SIGN_IN = CompiledWrite(
    lambda user, moment: User.update(last_sign_in_at=moment).where(User.id == user),
    user=User.id,
    moment=User.last_sign_in_at,
)


def _second_step_stamp(user, moment):
    """The login stamped by a sign-in a second step earned, which also ends its run of wrong
    codes (and a lock): the same UPDATE, so the hot path gains no statement."""
    return User.update(
        last_sign_in_at=moment, failed_code_count=0, verification_paused_until=None
    ).where(User.id == user)


_STAMP_SECOND_STEP = CompiledWrite(
    _second_step_stamp,
    user=User.id,
    moment=User.last_sign_in_at,
)


def _second_step_at_once(
    id, old_hash, token_hash, ip, user_agent, moment, user, method_kind, event_ip, event_agent
):
    """The three writes of a pending sign-in completed by a second step, as one PostgreSQL
    statement: the pending row renewed under its new token (only while it still holds the old
    one), the login stamped and its run of wrong codes ended, and the sign-in logged; the
    last two only if the row was renewed. The statement answers the event's id, or no row
    when the session had changed meanwhile. Its data-modifying parts run at once and all or
    none, as a transaction's would, without the BEGIN and COMMIT round trips."""
    # The same UPDATEs the transaction runs (sessions.renewal, _second_step_stamp).
    renewed = (
        sessions.renewal(id, old_hash, token_hash, ACTIVE, ip, user_agent, moment)
        .returning(UserSession.id)
        .cte("renewed")
    )
    stamped = _second_step_stamp(user, moment).from_(renewed).returning(User.id).cte("stamped")
    # security_log.record's columns: one it gains and this statement lacks fails here.
    event = {
        "user": user,
        "actor": user,
        "kind": SIGNED_IN,
        "method_kind": method_kind,
        "detail": "",
        "ip": event_ip,
        "user_agent": event_agent,
        "created_at": moment,
    }
    values = [event[name] for name in security_log.COLUMNS]
    logged = (
        SecurityEvent.insert_from(Select([renewed], values), list(security_log.COLUMNS.values()))
        .returning(SecurityEvent.id)
        .cte("logged")
    )
    return Select([logged], [logged.c.id]).with_cte(renewed, stamped, logged).bind(db)


# Written once: what `_sign_in` runs on PostgreSQL for the second step's sign-in.
_SECOND_STEP_AT_ONCE = CompiledSelect(
    _second_step_at_once,
    id=UserSession.id,
    old_hash=UserSession.token_hash,
    token_hash=UserSession.token_hash,
    ip=UserSession.ip,
    user_agent=UserSession.user_agent,
    moment=UserSession.created_at,
    user=User.id,
    method_kind=SecurityEvent.method_kind,
    event_ip=SecurityEvent.ip,
    event_agent=SecurityEvent.user_agent,
)


def _signed_in_at_once(
    user: User, method_kind: str, asking: Client, pending: UserSession
) -> SignedIn | None:
    """`_sign_in` of a pending sign-in completed by a second step, on PostgreSQL, in one
    round trip instead of five (BEGIN, three writes, COMMIT): the same rows written as
    sessions.start, the stamp and security_log.record write (a sign-in sends no email). None
    when the pending row had changed meanwhile (the caller then signs in the usual way)."""
    token, token_hash = sessions.new_token()
    moment = now()
    logged_from = client.current()  # whom security_log.record would log
    found = _SECOND_STEP_AT_ONCE.rows(
        id=pending.id,
        old_hash=pending.token_hash,
        token_hash=token_hash,
        ip=asking.ip,
        user_agent=asking.user_agent,
        moment=moment,
        user=user.id,
        method_kind=method_kind,
        event_ip=logged_from.ip,
        event_agent=logged_from.user_agent,
    )
    if not found:
        return None
    row = UserSession(
        id=pending.id,
        user=user,
        token_hash=token_hash,
        state=ACTIVE,
        ip=asking.ip,
        user_agent=asking.user_agent,
        created_at=moment,
        last_seen_at=moment,
        authenticated_at=moment,
        kind=pending.kind,
        device_name=pending.device_name,
    )
    user.failed_code_count, user.verification_paused_until = 0, None
    user.last_sign_in_at = moment
    return SignedIn(row, token)


def _sign_in(
    user: User,
    method_kind: str,
    asking: Client,
    replacing: UserSession | None,
    kind: str = WEB,
    device_name: str = "",
) -> SignedIn:
    """Sign `user` in under a fresh session and record it (one transaction: one commit
    instead of three on the sign-in's hot path; the caller's, when it has one open; on
    PostgreSQL one statement when a second step completes a pending sign-in). A sign-in
    earned by a second step (a code, key or recovery code) also ends the run of wrong codes
    (Decisions 18); a trusted device's does not."""
    second_step = bool(method_kind) and method_kind != trusted_devices.TRUSTED_DEVICE
    if (
        second_step
        and isinstance(db.obj, PostgresqlDatabase)
        and replacing is not None
        and replacing.user_id == user.id
        and replacing.state == PENDING
        and SIGNED_IN not in security_log.NOTIFY_SUBJECTS  # no email to send with it
    ):
        done = _signed_in_at_once(user, method_kind, asking, replacing)
        if done is not None:
            return done
    with nullcontext() if db.in_transaction() else db.atomic():
        row, token = sessions.start(
            user, asking, replacing=replacing, kind=kind, device_name=device_name
        )
        moment = now()
        if second_step:
            _STAMP_SECOND_STEP.run(user=user.id, moment=moment)
            user.failed_code_count, user.verification_paused_until = 0, None
        else:
            _STAMP_SIGN_IN.run(user=user.id, moment=moment)
        user.last_sign_in_at = moment
        security_log.record(SIGNED_IN, user, method_kind=method_kind)
    return SignedIn(row, token)


def remember_device(user: User, asking: Client, old_token: str | None = None) -> str | None:
    """ "Don't ask again on this device": a token for the client to keep and hand to the next
    `start`; None when `user` may not use trusted devices (staff, unless allowed)."""
    return trusted_devices.remember(user, asking, old_token)


def sign_out(row: UserSession | None) -> None:
    """End a session on the server (recorded when it was signed in)."""
    if row is None:
        return
    if row.state == ACTIVE:
        security_log.record(SIGNED_OUT, row.user, notify=False)
    sessions.end(row)
