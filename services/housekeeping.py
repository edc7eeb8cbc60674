"""Housekeeping: deleting rows nobody can use any more, so the hot tables stay small.

`flask purge` runs it on demand (or from cron); every app process also runs it by itself at
most once every PURGE_EVERY_SECONDS, after a request (a cheap clock check on each request,
app.py).
Every delete is a single statement on an indexed column, safe to run on several instances at
once.
"""

import random
from datetime import timedelta

from flask import current_app

from models.clock import now
from models.outbox import OutboxMessage
from models.passwords import PasswordResetToken
from models.sessions import ACTIVE, APP, PENDING, WEB, UserSession
from models.verification import SEND_PENDING, OneTimeCode, PendingSetup, WebAuthnChallenge
from services.methods import deliveries, recovery_codes, trusted_devices

# Codes are kept an hour past their expiry: the hourly send caps count them.
CODE_KEEP = timedelta(hours=1)
# Used or expired password reset links are kept a day (the reset flow may say "already used").
RESET_TOKEN_KEEP = timedelta(days=1)


def purge() -> dict[str, int]:
    """Delete what has expired; return how many rows of each kind went."""
    config = current_app.config
    moment = now()
    deleted = {
        # A code still being sent (SEND_PENDING) is kept until it is an hour old too.
        "codes": OneTimeCode.delete()
        .where(
            OneTimeCode.expires_at < moment - CODE_KEEP,
            (OneTimeCode.expires_at != SEND_PENDING)
            | (OneTimeCode.created_at < moment - CODE_KEEP),
        )
        .execute(),
        "pending_sign_ins": UserSession.delete()
        .where(
            (UserSession.state == PENDING)
            & (
                UserSession.created_at
                < moment - timedelta(minutes=config["PENDING_SIGN_IN_MINUTES"])
            )
        )
        .execute(),
        "sessions": UserSession.delete()
        .where(
            (UserSession.state == ACTIVE)
            & (UserSession.kind == WEB)
            & (
                (
                    UserSession.last_seen_at
                    < moment - timedelta(minutes=config["SESSION_IDLE_MINUTES"])
                )
                | (UserSession.created_at < moment - timedelta(hours=config["SESSION_MAX_HOURS"]))
            )
        )
        .execute(),
        # The mobile app's sessions end after APP_SESSION_IDLE_DAYS unused (no 12-hour cap).
        "app_sessions": UserSession.delete()
        .where(
            (UserSession.state == ACTIVE)
            & (UserSession.kind == APP)
            & (UserSession.last_seen_at < moment - timedelta(days=config["APP_SESSION_IDLE_DAYS"]))
        )
        .execute(),
        "pending_setups": PendingSetup.delete()
        .where(PendingSetup.created_at < moment - _pending_setup_window(config))
        .execute(),
        "outbox": OutboxMessage.delete()
        .where(OutboxMessage.created_at < moment - timedelta(days=config["OUTBOX_KEEP_DAYS"]))
        .execute(),
    }
    deleted["webauthn_challenges"] = _purge_webauthn_challenges(config, moment)
    deleted.update(_purge_reset_tokens(moment))
    deleted["trusted_devices"] = trusted_devices.purge_expired()
    deleted["shown_recovery_codes"] = recovery_codes.purge_stale_displays()
    deleted["code_deliveries"] = deliveries.purge_old()
    deleted["early_delivery_reports"] = deliveries.purge_early_reports()
    return deleted


def _pending_setup_window(config) -> timedelta:
    """A pending set-up is useless once its QR code (or its last code) can no longer be used."""
    return timedelta(minutes=max(config["PENDING_TOTP_MINUTES"], config["CODE_TTL_MINUTES"]))


def _purge_webauthn_challenges(config, moment) -> int:
    """A security key's challenge works once, for WEBAUTHN_CHALLENGE_MINUTES: used or older
    ones can never be accepted again (services/webauthn_keys._consume_challenge). The table
    only ever holds a few minutes of them, so this delete needs no index of its own."""
    oldest = moment - timedelta(minutes=config["WEBAUTHN_CHALLENGE_MINUTES"])
    return (
        WebAuthnChallenge.delete()
        .where(WebAuthnChallenge.used_at.is_null(False) | (WebAuthnChallenge.created_at < oldest))
        .execute()
    )


def _purge_reset_tokens(moment) -> dict[str, int]:
    cutoff = moment - RESET_TOKEN_KEEP
    count = (
        PasswordResetToken.delete()
        .where((PasswordResetToken.expires_at < cutoff) | (PasswordResetToken.used_at < cutoff))
        .execute()
    )
    return {"password_reset_tokens": count}


def jittered(interval: int) -> float:
    """`interval` seconds shortened at random by up to half, so instances don't all purge
    together."""
    return interval * random.uniform(0.5, 1.0)
