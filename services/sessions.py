"""Sessions on the server (SPEC Decisions 2).

The browser's signed cookie holds only a random token under `sid`; the row it names says who is
signed in, whether only the password step is done (pending), and since when. Deleting the row
signs that browser out, whatever its cookie says.
"""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, g, request, session
from peewee import JOIN, SQL, fn

from models.clock import now
from models.compiled import CompiledSelect, CompiledWrite
from models.people import STAFF, Membership, User
from models.request_cache import remember
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import VerificationMethod

# Refresh last_seen_at at most this often, so most requests write nothing.
_TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Every completed sign-in runs it: its SQL is written once (models/compiled.py).
_RENEW = CompiledWrite(
    lambda id, old_hash, token_hash, state, ip, user_agent, moment: UserSession.update(
        token_hash=token_hash,
        state=state,
        ip=ip,
        user_agent=user_agent,
        created_at=moment,
        last_seen_at=moment,
        authenticated_at=moment,
    ).where((UserSession.id == id) & (UserSession.token_hash == old_hash)),
    id=UserSession.id,
    old_hash=UserSession.token_hash,
    token_hash=UserSession.token_hash,
    state=UserSession.state,
    ip=UserSession.ip,
    user_agent=UserSession.user_agent,
    moment=UserSession.created_at,
)


def start(user, *, pending: bool = False) -> UserSession:
    """Begin a new session for `user` in this browser, ending the one it had (fresh id).

    When a pending sign-in completes, its row is reused under a new token (one UPDATE rather
    than a DELETE and an INSERT): either way the old cookie names nothing any more.
    """
    token = secrets.token_urlsafe(32)
    fields = {
        "token_hash": _hash(token),
        "state": PENDING if pending else ACTIVE,
        "ip": (request.remote_addr or "")[:64],
        "user_agent": (request.user_agent.string or "")[:300],
    }
    old = current()
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
            row = UserSession(id=old.id, user=user, **fields)
    if row is None:
        end_current()
        row = UserSession.create(user=user, **fields)
    # A new cookie value (and a new CSRF token) for the new session.
    session.clear()
    session["sid"] = token
    session.permanent = True
    g.user_session = row
    return row


def current() -> UserSession | None:
    """The live session row this request's cookie names, or None (expired ones are ended)."""
    if "user_session" in g:
        return g.user_session
    row = None
    token = session.get("sid")
    if isinstance(token, str) and token:
        row = _load(_hash(token))
        if row is not None and _expired(row):
            row.delete_instance()
            row = None
        elif row is not None and row.state == ACTIVE and now() - row.last_seen_at > _TOUCH_EVERY:
            # Only signed-in sessions: a pending one expires by its created_at, so its
            # last_seen_at is never read (and the verify step rewrites the row anyway).
            row.last_seen_at = now()
            UserSession.update(last_seen_at=row.last_seen_at).where(
                UserSession.id == row.id
            ).execute()
    g.user_session = row
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
            attr="joined_method",
        )
        .where(UserSession.token_hash == token_hash)
    )


# Every request of a signed-in person runs it: its SQL is written once (models/compiled.py).
_SESSION_QUERY = CompiledSelect(_session_query, token_hash=UserSession.token_hash)


def _load(token_hash: str) -> UserSession | None:
    """The session row, its login, the login's methods and whether it is staff or admin, in
    one query: every page of a signed-in (or half signed-in) person needs all of them."""
    rows = _SESSION_QUERY.rows(token_hash=token_hash)
    if not rows:
        return None
    row = rows[0]
    methods = [each.user.joined_method for each in rows if each.user.joined_method]
    remember("verification_method", row.user.id, methods)
    remember(
        "membership", ("flags", row.user.id), (bool(row.user_is_staff), bool(row.user_is_admin))
    )
    # Read from the database at the start of this request: as fresh as a second read would be.
    row.user.read_with_session = True
    return row


def _expired(row: UserSession) -> bool:
    config = current_app.config
    moment = now()
    if row.state == PENDING:
        return moment - row.created_at > timedelta(minutes=config["PENDING_SIGN_IN_MINUTES"])
    return moment - row.last_seen_at > timedelta(
        minutes=config["SESSION_IDLE_MINUTES"]
    ) or moment - row.created_at > timedelta(hours=config["SESSION_MAX_HOURS"])


def end_current() -> None:
    """Sign this browser out: delete its row and forget the cookie's contents."""
    row = current()
    if row is not None:
        UserSession.delete().where(UserSession.id == row.id).execute()
    g.pop("user_session", None)
    session.clear()


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
