"""Trusted devices: "Don't ask again on this device for 30 days".

Ticking the box at the challenge gives the client a random token to keep (the web: the cookie
`twostep_trusted`); the server keeps only its SHA-256, a label ("Firefox on Windows"), and when it
was made, last used and expires. At the password step a valid token of that person skips the
code. Families may use it; staff only when TRUSTED_DEVICES_FOR_STAFF is on. Every trusted
device of a person is revoked when their password changes, 2SV is turned off, a method is
removed, or an admin resets their 2SV.
"""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app

from models.clock import now
from models.compiled import CompiledSelect
from models.events import TRUSTED_DEVICE_ADDED, TRUSTED_DEVICES_REVOKED
from models.people import User
from models.recovery import TrustedDevice
from services.methods import policy
from services.security import devices, security_log
from services.security.client import Client

TRUSTED_DEVICE = "trusted_device"  # the method_kind of a sign-in that skipped the code


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def days() -> int:
    """How long a device stays trusted (TRUSTED_DEVICE_DAYS, 30 by default)."""
    return int(current_app.config["TRUSTED_DEVICE_DAYS"])


def allowed_for(user: User) -> bool:
    """Families may skip the code on a trusted device; staff only if the setting allows it."""
    if user.requires_2sv:
        return bool(current_app.config["TRUSTED_DEVICES_FOR_STAFF"])
    return True


def _usable(token) -> str | None:
    """`token` if it could be one of ours (a string of sane length), else None."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    return token


def remember(user: User, asking: Client, old_token: str | None = None) -> str | None:
    """Trust the client `asking` for `user`: store a new token's hash (replacing `old_token`,
    the one this client had, whoever it belonged to) and return the token for the client to
    keep for days() days. None when `user` may not use trusted devices."""
    if not allowed_for(user):
        return None
    old_token = _usable(old_token)
    if old_token:
        # One token per browser: the one it had is replaced (whoever it belonged to).
        TrustedDevice.delete().where(TrustedDevice.token_hash == _hash(old_token)).execute()
    token = secrets.token_urlsafe(32)
    moment = now()
    device = TrustedDevice.create(
        user=user,
        token_hash=_hash(token),
        label=devices.label(asking.user_agent)[:100],
        created_at=moment,
        expires_at=moment + timedelta(days=days()),
    )
    security_log.record(TRUSTED_DEVICE_ADDED, user, detail=device.label, notify=False)
    return token


def recognised(user: User, token: str | None) -> TrustedDevice | None:
    """The trusted-device row `token` names for `user`, if it is valid now (unexpired, not
    revoked, and trusted devices are allowed for `user`)."""
    token = _usable(token)
    if token is None or not allowed_for(user):
        return None
    return TrustedDevice.get_or_none(
        TrustedDevice.token_hash == _hash(token),
        TrustedDevice.user == user,
        TrustedDevice.expires_at > now(),
    )


def skip_second_step(user: User, token: str | None) -> bool:
    """Whether the client holding `token` may skip the code for `user`; if so its last use
    is recorded.

    Never for a login that must set up a method first (staff whose methods the policy left
    out): the device cannot stand in for a method they don't have.
    """
    device = recognised(user, token)
    if device is None or policy.must_set_up(user):
        return False
    moment = now()
    used = (
        TrustedDevice.update(last_used_at=moment)
        .where(TrustedDevice.id == device.id, TrustedDevice.expires_at > moment)
        .execute()
    )
    return bool(used)


_DEVICES = CompiledSelect(
    lambda user, moment: TrustedDevice.select().where(
        TrustedDevice.user == user, TrustedDevice.expires_at > moment
    ),
    user=TrustedDevice.user,
    moment=TrustedDevice.expires_at,
)


def devices_of(user: User) -> list[TrustedDevice]:
    """`user`'s trusted devices that have not expired, most recently used first (shown by
    the window on every load: SQL written once, models/compiled.py)."""
    return sorted(
        _DEVICES.rows(user=user, moment=now()),
        key=lambda device: device.last_used_at or device.created_at,
        reverse=True,
    )


def current_device_id(user: User, token: str | None) -> int | None:
    """The id of the trusted device of `user` that `token` names, if it names one."""
    device = recognised(user, token)
    return device.id if device else None


def find(user: User, raw_id) -> TrustedDevice | None:
    """The device with this id if it is `user`'s (anything else: None, never an error)."""
    try:
        device_id = int(str(raw_id).strip())
    except (TypeError, ValueError):
        return None
    if not 0 < device_id < 2**62:
        return None
    return TrustedDevice.get_or_none(TrustedDevice.id == device_id, TrustedDevice.user == user)


def revoke(user: User, device: TrustedDevice) -> bool:
    """Stop trusting one device; True if it was still there."""
    deleted = (
        TrustedDevice.delete()
        .where(TrustedDevice.id == device.id, TrustedDevice.user == user)
        .execute()
    )
    if deleted:
        security_log.record(TRUSTED_DEVICES_REVOKED, user, detail=device.label, notify=False)
    return bool(deleted)


def revoke_all(user: User, reason: str = "") -> int:
    """Stop trusting every device of `user` (password change, 2SV off, a method removed,
    admin reset, "Revoke all"); return how many were trusted."""
    revoked = TrustedDevice.delete().where(TrustedDevice.user == user).execute()
    if revoked:
        detail = f"{revoked} device{'s' if revoked != 1 else ''}"
        security_log.record(
            TRUSTED_DEVICES_REVOKED,
            user,
            detail=f"{detail}: {reason}" if reason else detail,
            notify=False,
        )
    return revoked


def purge_expired() -> int:
    """Delete trusted devices whose 30 days are over (housekeeping)."""
    return TrustedDevice.delete().where(TrustedDevice.expires_at <= now()).execute()
