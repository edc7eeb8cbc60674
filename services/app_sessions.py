"""The mobile app's sessions: bearer tokens that name session rows of kind "app".

A token is 32 random bytes (URL-safe text) handed to the app once; the server keeps only its
SHA-256, in the same `user_session` table as the browsers' sessions. So an app session shows
under "Where you're signed in" with its device name, and ends with everything that ends a
browser's session: signing out, "Sign out other sessions", an admin reset, a password change.
It also ends after APP_SESSION_IDLE_DAYS without use. A pending row (password right, second
step not done) is the app's `pending_token`; it expires like a browser's pending sign-in.

Takes plain values (the token, the address and user agent) and never reads the request.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app

from models.clock import now
from models.people import User
from models.sessions import ACTIVE, APP, PENDING, UserSession

# Refresh last_seen_at at most this often, so most requests write nothing.
_TOUCH_EVERY = timedelta(seconds=60)
DEVICE_NAME_LENGTH = 100


def token_hash(token: str) -> str:
    """What the table keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A token as handed to the app (shown once) with the row it names."""

    token: str
    row: UserSession


def issue(
    user: User, device_name: str, *, pending: bool = False, ip: str = "", user_agent: str = ""
) -> IssuedToken:
    """A new app session for `user` (pending until the second step, when `pending`)."""
    token = secrets.token_urlsafe(32)
    moment = now()
    row = UserSession.create(
        user=user,
        token_hash=token_hash(token),
        state=PENDING if pending else ACTIVE,
        kind=APP,
        device_name=clean_device_name(device_name),
        ip=ip[:64],
        user_agent=user_agent[:300],
        created_at=moment,
        last_seen_at=moment,
        authenticated_at=moment,
    )
    return IssuedToken(token, row)


def clean_device_name(raw: str) -> str:
    """The device name as shown to the person: printable, trimmed, at most 100 characters."""
    name = "".join(ch for ch in (raw or "") if ch.isprintable()).strip()
    return name[:DEVICE_NAME_LENGTH] or "Mobile app"


def find(token: str | None, *, state: str = ACTIVE) -> UserSession | None:
    """The live app session of `state` this token names, or None (expired ones are ended).

    A browser's session id is never accepted here, nor an app token in a browser's cookie.
    """
    if not token or len(token) > 200:
        return None
    row = (
        UserSession.select(UserSession, User)
        .join(User)
        .where(UserSession.token_hash == token_hash(token), UserSession.kind == APP)
        .first()
    )
    if row is None or row.state != state:
        return None
    if now() >= expires_at(row):
        UserSession.delete().where(UserSession.id == row.id).execute()
        return None
    if state == ACTIVE and now() - row.last_seen_at > _TOUCH_EVERY:
        row.last_seen_at = now()
        UserSession.update(last_seen_at=row.last_seen_at).where(UserSession.id == row.id).execute()
    return row


def expires_at(row: UserSession) -> datetime:
    """When this app session ends unless used again: APP_SESSION_IDLE_DAYS after its last use
    (a pending one: PENDING_SIGN_IN_MINUTES after the password)."""
    config = current_app.config
    if row.state == PENDING:
        return row.created_at + timedelta(minutes=config["PENDING_SIGN_IN_MINUTES"])
    return row.last_seen_at + timedelta(days=config["APP_SESSION_IDLE_DAYS"])


def idle_cutoff(moment: datetime) -> datetime:
    """App sessions last used before this are over (housekeeping deletes them)."""
    return moment - timedelta(days=current_app.config["APP_SESSION_IDLE_DAYS"])


def end(row: UserSession) -> None:
    """End this app session: its token names nothing any more."""
    UserSession.delete().where(UserSession.id == row.id).execute()
