"""Sessions on the server (SPEC Decisions 2).

A session is a row named by a random token that the caller keeps (the browser's signed cookie
under `sid`, or the mobile app's bearer token); the row says who is signed in, whether only the
password step is done (pending), and since when. Deleting the row signs that client out,
whatever it still holds.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from peewee import JOIN, SQL, fn

from models.clock import now
from models.compiled import CompiledSelect, CompiledWrite
from models.people import STAFF, Membership, User
from models.request_cache import remember
from models.sessions import ACTIVE, APP, PENDING, WEB, UserSession
from models.verification import VerificationMethod
from services.security.client import Client

# Refresh last_seen_at at most this often, so most requests write nothing.
_TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A new session token, for the caller to keep, and its hash, for the row."""
    token = secrets.token_urlsafe(32)
    return token, _hash(token)


def renewal(id, old_hash, token_hash, state, ip, user_agent, moment):
    """The UPDATE that reuses session row `id` under a new token, only while it still holds
    `old_hash` (services.signin also runs it inside its one-statement sign-in)."""
    return UserSession.update(
        token_hash=token_hash,
        state=state,
        ip=ip,
        user_agent=user_agent,
        created_at=moment,
        last_seen_at=moment,
        authenticated_at=moment,
    ).where((UserSession.id == id) & (UserSession.token_hash == old_hash))


# Every completed sign-in runs it: its SQL is written once (models/compiled.py).
_RENEW = CompiledWrite(
    renewal,
    id=UserSession.id,
    old_hash=UserSession.token_hash,
    token_hash=UserSession.token_hash,
    state=UserSession.state,
    ip=UserSession.ip,
    user_agent=UserSession.user_agent,
    moment=UserSession.created_at,
)


def start(
    user,
    asking: Client,
    *,
    pending: bool = False,
    replacing: UserSession | None = None,
    kind: str = WEB,
    device_name: str = "",
) -> tuple[UserSession, str]:
    """Begin a new session for `user` (a fresh id), ending `replacing`, the one the caller had;
    return the row and its token, which the caller keeps: `kind` WEB in the browser's cookie,
    APP as the mobile app's bearer token (with its `device_name`). Only the token's hash is
    stored.

    When a pending sign-in completes, its row is reused under a new token (one UPDATE rather
    than a DELETE and an INSERT): either way the old token names nothing any more.
    """
    token, token_hash = new_token()
    fields = {
        "token_hash": token_hash,
        "state": PENDING if pending else ACTIVE,
        "ip": asking.ip,
        "user_agent": asking.user_agent,
    }
    created = {"kind": kind, "device_name": device_name[:100]}
    old = replacing
    row = None
    if old is not None and old.user_id == user.id and old.state == PENDING and not pending:
        moment = now()
        fields.update(created_at=moment, last_seen_at=moment, authenticated_at=moment)
        renewed = _RENEW.run(
            id=old.id,
            old_hash=old.token_hash,
            token_hash=fields["token_hash"],
            state=fields["state"],
            ip=fields["ip"],
            user_agent=fields["user_agent"],
            moment=moment,
        )
        if renewed:
            row = UserSession(id=old.id, user=user, **fields, **created)
    if row is None:
        if old is not None:
            end(old)
        row = UserSession.create(user=user, **fields, **created)
    return row, token


def find(token, kind: str = WEB) -> UserSession | None:
    """The live session row of `kind` that `token` names, or None (an expired one is ended on
    the way; a token of the other kind names nothing here).

    A signed-in session's last_seen_at is refreshed at most once a minute.
    """
    if not isinstance(token, str) or not token:
        return None
    row = _load(_hash(token))
    if row is not None and row.kind != kind:
        return None
    if row is not None and _expired(row):
        row.delete_instance()
        return None
    if row is not None and row.state == ACTIVE and now() - row.last_seen_at > _TOUCH_EVERY:
        # Only signed-in sessions: a pending one expires by its created_at, so its
        # last_seen_at is never read (and the verify step rewrites the row anyway).
        row.last_seen_at = now()
        UserSession.update(last_seen_at=row.last_seen_at).where(UserSession.id == row.id).execute()
    return row


def _session_query(token_hash):
    staff = Membership.select(SQL("1")).where(
        (Membership.user == User.id) & (Membership.role == STAFF)
    )
    admin = staff.where(Membership.is_admin == True)  # noqa: E712 (peewee expression)
    return (
        UserSession.select(
            UserSession,
            User,
            VerificationMethod,
            fn.EXISTS(staff).alias("user_is_staff"),
            fn.EXISTS(admin).alias("user_is_admin"),
        )
        .join(User)
        .join(
            VerificationMethod,
            JOIN.LEFT_OUTER,
            on=(VerificationMethod.user == User.id),
        )
        .where(UserSession.token_hash == token_hash)
    )


# Every request of a signed-in person runs it: its SQL is written once (models/compiled.py).
_SESSION_QUERY = CompiledSelect(_session_query, token_hash=UserSession.token_hash)


def _load(token_hash: str) -> UserSession | None:
    """The session row, its login, the login's methods and whether it is staff or admin, in
    one query: every page of a signed-in (or half signed-in) person needs all of them."""
    rows = _SESSION_QUERY.objects(token_hash=token_hash)
    if not rows:
        return None
    first = rows[0]
    row, user = first[UserSession], first[User]
    row.__rel__["user"] = user
    methods = [each[VerificationMethod] for each in rows if each[VerificationMethod] is not None]
    for method in methods:
        method.__rel__["user"] = user
    remember("verification_method", user.id, methods)
    remember(
        "membership",
        ("flags", user.id),
        (bool(first["user_is_staff"]), bool(first["user_is_admin"])),
    )
    # Read from the database at the start of this request: as fresh as a second read would be.
    user.read_with_session = True
    return row


def expires_at(row: UserSession) -> datetime:
    """When the session ends unless used again: a pending sign-in PENDING_SIGN_IN_MINUTES after
    the password; a browser's after SESSION_IDLE_MINUTES idle or SESSION_MAX_HOURS in all; the
    mobile app's after APP_SESSION_IDLE_DAYS unused."""
    config = current_app.config
    if row.state == PENDING:
        return row.created_at + timedelta(minutes=config["PENDING_SIGN_IN_MINUTES"])
    if row.kind == APP:
        return row.last_seen_at + timedelta(days=config["APP_SESSION_IDLE_DAYS"])
    return min(
        row.last_seen_at + timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        row.created_at + timedelta(hours=config["SESSION_MAX_HOURS"]),
    )


def _expired(row: UserSession) -> bool:
    return now() > expires_at(row)


def challenge(row: UserSession, method_id: int | None) -> None:
    """Remember which method the pending sign-in `row` is challenging (None: the picker)."""
    row.challenge_method = method_id
    UserSession.update(challenge_method=method_id).where(UserSession.id == row.id).execute()


def end(row: UserSession) -> None:
    """End one session (sign out): its token names nothing any more."""
    UserSession.delete().where(UserSession.id == row.id).execute()


def end_others(user, keep: UserSession) -> int:
    """End every session of `user` but `keep`; returns how many ended."""
    return UserSession.delete().where(UserSession.user == user, UserSession.id != keep.id).execute()


def end_all(user) -> int:
    """End every session of `user`, on every device (admin reset, password change)."""
    return UserSession.delete().where(UserSession.user == user).execute()


def mark_authenticated(row: UserSession) -> None:
    """Record that the person just proved who they are (password asked again)."""
    row.authenticated_at = now()
    UserSession.update(authenticated_at=row.authenticated_at).where(
        UserSession.id == row.id
    ).execute()


def is_recent(row: UserSession | None) -> bool:
    """Whether the session proved its owner recently enough to change security settings."""
    if row is None:
        return False
    window = timedelta(minutes=current_app.config["SUDO_MINUTES"])
    return now() - row.authenticated_at <= window


_ACTIVE_SESSIONS = CompiledSelect(
    lambda user: (
        UserSession.select()
        .where(UserSession.user == user, UserSession.state == ACTIVE)
        .order_by(UserSession.last_seen_at.desc())
    ),
    user=UserSession.user,
)


def active_sessions(user) -> list[UserSession]:
    """Where `user` is signed in, most recent first."""
    return _ACTIVE_SESSIONS.rows(user=user)
