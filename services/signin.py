"""Signing in: the password step, the hand-over to the second step, and signing out."""

from contextlib import nullcontext

from flask import session, url_for

from models import db
from models.clock import now
from models.compiled import CompiledWrite
from models.events import SIGNED_IN, SIGNED_OUT
from models.people import User
from services import security_log, sessions
from services.passwords import hash_password, needs_rehash, verify_password


def check_password(email: str, password: str) -> User | None:
    """The login whose email and password these are, or None - in the same time either way."""
    user = User.by_email(email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        User.update(password_hash=user.password_hash).where(User.id == user.id).execute()
    return user


def confirm_password(user: User, password: str) -> bool:
    """Whether `password` is this signed-in person's (sudo mode)."""
    return verify_password(user.password_hash, password)


# Every completed sign-in runs it: its SQL is written once (models/compiled.py).
_STAMP_SIGN_IN = CompiledWrite(
    lambda user, moment: User.update(last_sign_in_at=moment).where(User.id == user),
    user=User.id,
    moment=User.last_sign_in_at,
)


def complete_sign_in(user: User, method_kind: str) -> None:
    """Sign `user` in under a fresh session id and record it (one transaction: one commit
    instead of three on the sign-in's hot path; the caller's, when it has one open)."""
    with nullcontext() if db.in_transaction() else db.atomic():
        sessions.start(user)
        moment = now()
        _STAMP_SIGN_IN.run(user=user.id, moment=moment)
        user.last_sign_in_at = moment
        security_log.record(SIGNED_IN, user, method_kind=method_kind)


def sign_out() -> None:
    """End this browser's session on the server."""
    row = sessions.current()
    if row is not None and row.state == "active":
        security_log.record(SIGNED_OUT, row.user, notify=False)
    sessions.end_current()


def pending_next_url() -> str:
    """Where a person in the middle of signing in was going (the home page by default)."""
    return session.get("next") or url_for("home.index")
