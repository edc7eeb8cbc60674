"""Authenticator apps: keys, the QR code that carries them, and checking their codes.

TOTP as in RFC 6238: 6 digits, 30-second steps, SHA-1. A phone clock that is one step off
either way is allowed for, and a step is never accepted twice (SPEC Decisions 6).
"""

import hmac
import html
from datetime import UTC, datetime
from enum import Enum

import pyotp
import segno
from flask import current_app
from flask_babel import gettext

from models import crypto
from models.clock import now
from models.compiled import CompiledWrite
from models.verification import VerificationMethod
from services.language import N_
from services.methods.codes import normalize

STEP_SECONDS = 30
DIGITS = 6
QR_LABEL = N_("QR code for your authenticator app")


class TotpResult(Enum):
    """What checking an authenticator code found."""

    OK = "ok"
    WRONG = "wrong"
    REPLAYED = "replayed"  # right code, but a later step was already used
    JUST_USED = "just_used"  # right code, and its very step was the last one used
    UNREADABLE = "unreadable"  # the saved key can't be opened with this ENCRYPTION_KEYS


def new_secret() -> str:
    """A new random authenticator key: 160 bits as 32 base32 characters."""
    return pyotp.random_base32(length=32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code (issuer: TOTP_ISSUER)."""
    issuer = current_app.config["TOTP_ISSUER"]
    return _totp(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline <svg> QR code: no XML declaration and no style attributes
    (the Content-Security-Policy forbids inline styles), labelled for screen readers."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=4, light="#fff", svgclass="qr", lineclass=None
    )
    return svg.replace(
        "<svg ", f'<svg role="img" aria-label="{html.escape(gettext(QR_LABEL))}" ', 1
    )


def grouped(secret: str) -> str:
    """The key in groups of four ("ABCD EFGH ...") for typing it into an app by hand."""
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))


def _aware(moment: datetime) -> datetime:
    """Our clock gives naive UTC; pyotp reads naive datetimes as local time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_step(at: datetime) -> int:
    """The RFC 6238 time step (counter) of a moment."""
    return int(_aware(at).timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, at: datetime | None = None, drift: int = 1) -> int | None:
    """The time step within `drift` steps of `at` (default: now) whose code is `code`, or None.

    `code` may hold spaces or dashes; anything but six digits matches nothing.
    """
    code = normalize(code)
    if code is None:
        return None
    totp = _totp(secret)
    current = time_step(at or now())
    for step in range(current - drift, current + drift + 1):
        if step >= 0 and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# Every authenticator sign-in runs it: its SQL is written once (models/compiled.py).
_CLAIM_STEP = CompiledWrite(
    lambda method, step, moment: VerificationMethod.update(
        last_totp_step=step, last_used_at=moment
    ).where(VerificationMethod.id == method, VerificationMethod.last_totp_step < step),
    method=VerificationMethod.id,
    step=VerificationMethod.last_totp_step,
    moment=VerificationMethod.last_used_at,
)


def verify_method(method: VerificationMethod, code: str) -> TotpResult:
    """Check a code from the authenticator app of a saved method.

    The step is claimed with one conditional UPDATE (only if it is later than the last step
    used), so the same code - or an older one - cannot be accepted twice, even at once.
    """
    try:
        secret = crypto.decrypt(method.secret)
    except crypto.DecryptionError:
        # A key list that is wrong or out of date on this instance: the operator's to fix
        # (README "When something fails"), never the person's, and never a 500.
        current_app.logger.error(
            "Authenticator key of method %s can't be opened with ENCRYPTION_KEYS", method.id
        )
        return TotpResult.UNREADABLE
    step = matching_step(secret, code)
    if step is None:
        return TotpResult.WRONG
    moment = now()
    if not _CLAIM_STEP.run(method=method.id, step=step, moment=moment):
        # The very step last used: a right code repeated (a double click, a second tab).
        last = (
            VerificationMethod.select(VerificationMethod.last_totp_step)
            .where(VerificationMethod.id == method.id)
            .scalar()
        )
        return TotpResult.JUST_USED if last == step else TotpResult.REPLAYED
    method.last_totp_step = step
    method.last_used_at = moment
    return TotpResult.OK
