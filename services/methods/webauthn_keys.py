"""Security keys and passkeys (WebAuthn, through py_webauthn): adding one, and signing in with it.

A key is a VerificationMethod of kind "webauthn" (services/methods/: SECURITY_KEY), so it
counts wherever a method counts: turning 2SV on, the staff's forced set-up and method policy,
an admin reset, the security log and its emails. Unlike the other kinds a person may add
several, each with a name of their choosing (kept in `destination`).

Every ceremony starts with a challenge made here and kept on the server (WebAuthnChallenge):
it works once, for WEBAUTHN_CHALLENGE_MINUTES, and is consumed by a single conditional UPDATE
before the response is verified, so a replayed response never finds it again. The relying
party id and origin come from WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN; outside production, when
they are not set, from the host the request came to.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from urllib.parse import urlsplit

import webauthn
from flask import current_app
from flask_babel import gettext as _
from peewee import IntegrityError
from webauthn.helpers import bytes_to_base64url, parse_client_data_json
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidJSONStructure,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from models import db
from models.clock import now
from models.events import METHOD_ADDED, POSSIBLE_CLONED_KEY
from models.people import User
from models.verification import WEBAUTHN, VerificationMethod, WebAuthnChallenge
from services.language import N_
from services.methods import SECURITY_KEY, policy
from services.methods.enrolment import Outcome, refused
from services.security import security_log

REGISTER = "register"
AUTHENTICATE = "authenticate"  # signing in
PASSWORD_RESET = "password_reset"  # the second step before a new password (a reset link)
NAME_MAX_LENGTH = 60

# The endpoints' 404 when policy.security_keys_available() says no.
UNAVAILABLE = N_("Security keys aren't available here.")
NOT_ACCEPTED = N_("That security key wasn't accepted. Try again, or choose another method.")
EXPIRED = N_("That request has expired. Try again.")
NOT_YOURS = N_("That security key isn't one of the keys saved for this account.")
CLONED = N_(
    "This security key was refused because it may have been copied. Use another method, "
    "and ask your center's admin for help if you didn't expect this."
)
NO_KEY = N_("There is no security key saved for this account.")


class KeyProblem(Enum):
    """Why a sign-in with a security key was refused."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED = "expired"
    INVALID = "invalid"
    CLONED = "cloned"


@dataclass(frozen=True)
class KeyCheck:
    """The answer to a security key's assertion at sign-in."""

    ok: bool
    message: str = ""
    reason: KeyProblem | None = None
    method: VerificationMethod | None = None


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    """Who the keys are for: the relying party id (a host name) and the origin the browser
    must report."""

    id: str
    origin: str


def relying_party(host: str, scheme: str = "https") -> RelyingParty:
    """WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN when set (production needs both), else derived from
    `host` (with its port, if any) and `scheme`, the address the client came to."""
    config = current_app.config
    rp_id = config.get("WEBAUTHN_RP_ID") or urlsplit(f"//{host}").hostname or "localhost"
    origin = (config.get("WEBAUTHN_ORIGIN") or f"{scheme}://{host}").rstrip("/")
    return RelyingParty(rp_id, origin)


def _user_handle(user: User) -> bytes:
    """A stable, opaque id for `user` on their keys (never the email address)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"webauthn-user:{user.id}".encode(), hashlib.sha256).digest()


# --- challenges -------------------------------------------------------------------------------


def _new_challenge(user: User, purpose: str, challenge: bytes) -> None:
    WebAuthnChallenge.create(
        user=user, purpose=purpose, challenge=bytes_to_base64url(challenge), created_at=now()
    )


def _consume_challenge(user: User, purpose: str, challenge: bytes) -> bool:
    """Use up a live challenge of `user` for `purpose`: True once, then never again."""
    moment = now()
    oldest = moment - timedelta(minutes=current_app.config["WEBAUTHN_CHALLENGE_MINUTES"])
    used = (
        WebAuthnChallenge.update(used_at=moment)
        .where(
            (WebAuthnChallenge.user == user)
            & (WebAuthnChallenge.purpose == purpose)
            & (WebAuthnChallenge.challenge == bytes_to_base64url(challenge))
            & (WebAuthnChallenge.used_at.is_null())
            & (WebAuthnChallenge.created_at >= oldest)
        )
        .execute()
    )
    return used == 1


def _challenge_of(response: dict) -> bytes | None:
    """The challenge a credential's clientDataJSON answers, or None when it is malformed."""
    try:
        raw = webauthn.base64url_to_bytes(response["clientDataJSON"])
        return parse_client_data_json(raw).challenge
    except Exception:  # noqa: BLE001 - anything malformed is simply refused
        return None


def _credential_dict(credential) -> dict | None:
    if isinstance(credential, str):
        try:
            credential = json.loads(credential)
        except ValueError:
            return None
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        return None
    return credential


def keys_of(user: User) -> list[VerificationMethod]:
    """The security keys saved for `user`, oldest first."""
    return [method for method in policy.methods_of(user) if method.kind == WEBAUTHN]


def _descriptors(keys: list[VerificationMethod]) -> list[PublicKeyCredentialDescriptor]:
    descriptors = []
    for key in keys:
        transports = []
        for name in filter(None, key.transports.split(",")):
            try:
                transports.append(AuthenticatorTransport(name))
            except ValueError:
                continue
        descriptors.append(
            PublicKeyCredentialDescriptor(
                id=webauthn.base64url_to_bytes(key.credential_id), transports=transports or None
            )
        )
    return descriptors


# --- adding a key -----------------------------------------------------------------------------


def clean_name(raw: str | None) -> tuple[str | None, str]:
    """The key's name, or None and why not."""
    name = " ".join((raw or "").split())
    if not name:
        return None, _("Give this security key a name, like “Blue USB key”.")
    if len(name) > NAME_MAX_LENGTH:
        return None, _("Use at most %(num)d characters for the name.", num=NAME_MAX_LENGTH)
    if not name.isprintable():
        return None, _("Use letters, digits and spaces for the name.")
    return name, ""


def registration_options(user: User, party: RelyingParty) -> str:
    """The options (JSON) for navigator.credentials.create(), with a fresh challenge stored."""
    options = webauthn.generate_registration_options(
        rp_id=party.id,
        rp_name=current_app.config["PRODUCT_NAME"],
        user_id=_user_handle(user),
        user_name=user.email,
        user_display_name=user.name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(keys_of(user)),
    )
    _new_challenge(user, REGISTER, options.challenge)
    return webauthn.options_to_json(options)


def verify_registration(
    user: User, party: RelyingParty, credential, raw_name: str | None
) -> Outcome:
    """Save a new security key once its registration response checks out."""
    if not policy.is_allowed(user, WEBAUTHN):
        return refused(_("Security keys can't be used for staff sign-in here."), status=403)
    name, problem = clean_name(raw_name)
    if name is None:
        return refused(problem, field="name")
    if any(key.destination.casefold() == name.casefold() for key in keys_of(user)):
        return refused(_("You already have a security key with that name."), field="name")
    credential = _credential_dict(credential)
    challenge = _challenge_of(credential["response"]) if credential else None
    if challenge is None:
        return refused(_(NOT_ACCEPTED))
    if not _consume_challenge(user, REGISTER, challenge):
        return refused(_(EXPIRED))
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=party.origin,
        )
    except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, KeyError, TypeError):
        return refused(_(NOT_ACCEPTED))
    transports = credential["response"].get("transports") or []
    transports = ",".join(t for t in transports if isinstance(t, str))[:200]
    try:
        with db.atomic():
            method = VerificationMethod.create(
                user=user,
                kind=WEBAUTHN,
                destination=name,
                credential_id=bytes_to_base64url(verified.credential_id),
                public_key=bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count,
                transports=transports,
                created_at=now(),
            )
            if user.requires_2sv and not user.two_step_enabled:
                # Staff: 2SV is required, so their first method turns it on.
                User.update(two_step_enabled=True).where(User.id == user.id).execute()
                user.two_step_enabled = True
    except IntegrityError:
        return refused(_("That security key is already added."), status=409)
    description = SECURITY_KEY.describe(method)
    security_log.record(
        METHOD_ADDED, user, method_kind=WEBAUTHN, detail=description, method_label=description
    )
    return Outcome(True, _("Security key “%(name)s” is added.", name=name), method=method)


# --- signing in with a key --------------------------------------------------------------------


def authentication_options(
    user: User, party: RelyingParty, purpose: str = AUTHENTICATE
) -> str | None:
    """The options (JSON) for navigator.credentials.get() over `user`'s keys, with a fresh
    challenge stored for `purpose` (signing in, or a password reset); None when they have no
    key. A challenge of one purpose never answers another."""
    keys = [key for key in policy.sign_in_methods(user) if key.kind == WEBAUTHN]
    if not keys:
        return None
    options = webauthn.generate_authentication_options(
        rp_id=party.id,
        allow_credentials=_descriptors(keys),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    _new_challenge(user, purpose, options.challenge)
    return webauthn.options_to_json(options)


def verify_authentication(
    user: User, party: RelyingParty, credential, purpose: str = AUTHENTICATE
) -> KeyCheck:
    """Check an assertion from one of `user`'s keys: the challenge (theirs, of `purpose`, live,
    unused), the
    origin, the rp id hash, the signature and the signature counter. A counter that does not
    go up is refused and logged as a possibly cloned key."""
    credential = _credential_dict(credential)
    if credential is None or not isinstance(credential.get("rawId"), str):
        return KeyCheck(False, _(NOT_ACCEPTED), KeyProblem.MALFORMED)
    key = next(
        (
            each
            for each in policy.sign_in_methods(user)
            if each.kind == WEBAUTHN and each.credential_id == credential["rawId"]
        ),
        None,
    )
    if key is None:
        return KeyCheck(False, _(NOT_YOURS), KeyProblem.UNKNOWN_KEY)
    challenge = _challenge_of(credential["response"])
    if challenge is None:
        return KeyCheck(False, _(NOT_ACCEPTED), KeyProblem.MALFORMED, key)
    if not _consume_challenge(user, purpose, challenge):
        return KeyCheck(False, _(EXPIRED), KeyProblem.EXPIRED, key)
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.id,
            expected_origin=party.origin,
            credential_public_key=webauthn.base64url_to_bytes(key.public_key),
            # The counter is checked below, once the signature is known to be genuine.
            credential_current_sign_count=0,
        )
    except (InvalidAuthenticationResponse, InvalidJSONStructure, ValueError, KeyError, TypeError):
        return KeyCheck(False, _(NOT_ACCEPTED), KeyProblem.INVALID, key)
    new_count = verified.new_sign_count
    # A counter of 0 on both sides: the authenticator keeps none (passkeys often do not).
    moved_on = (VerificationMethod.sign_count < new_count) | (
        (VerificationMethod.sign_count == 0) & (new_count == 0)
    )
    updated = (
        VerificationMethod.update(sign_count=new_count, last_used_at=now())
        .where((VerificationMethod.id == key.id) & moved_on)
        .execute()
    )
    if updated != 1:
        # Logged, and the person is emailed (services/security_log.NOTIFY_SUBJECTS).
        security_log.record(
            POSSIBLE_CLONED_KEY,
            user,
            method_kind=WEBAUTHN,
            detail=f"{SECURITY_KEY.describe(key)}: counter {new_count}, "
            f"expected more than {key.sign_count}",
            key_name=key.destination,
        )
        return KeyCheck(False, _(CLONED), KeyProblem.CLONED, key)
    return KeyCheck(True, method=key)
