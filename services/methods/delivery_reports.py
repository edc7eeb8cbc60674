"""The providers' delivery reports: checking their signatures and reading what they say.

SendGrid's Event Webhook signs `timestamp + body` with ECDSA (P-256, SHA-256); the check is
the sendgrid package's own EventWebhook helper. Vonage signs each SMS delivery receipt's
parameters with the account's signature secret; the check is the Vonage SDK's own
`Auth.check_signature`. Either way a report older than MAX_AGE (or that far in the future) is
refused, so a captured one cannot be replayed later. Values in, outcomes out: no HTTP here.
"""

import binascii
import json
from datetime import UTC

from cryptography.exceptions import InvalidSignature
from sendgrid.helpers.eventwebhook import EventWebhook

from models.clock import now
from services.methods.deliveries import Outcome

MAX_AGE_SECONDS = 5 * 60
# The signature methods Vonage offers for signed messages (the SDK's names for them).
VONAGE_SIGNATURE_METHODS = ("md5", "sha1", "sha256", "sha512")
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


class Refused(Exception):
    """The report is not signed by the provider, or too old: answer 403 and change nothing."""


class Unreadable(Exception):
    """Signed, but not what the provider sends: answer 400 and change nothing."""


def _fresh(timestamp) -> None:
    """Refuse a signing time that is not whole seconds within MAX_AGE of now."""
    text = str(timestamp or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise Refused("The timestamp is missing or not a number.")
    age = now().replace(tzinfo=UTC).timestamp() - int(text)
    if abs(age) > MAX_AGE_SECONDS:
        raise Refused("The timestamp is more than 5 minutes away from now.")


def sendgrid_key_is_valid(verification_key: str) -> bool:
    """Whether SENDGRID_WEBHOOK_VERIFICATION_KEY holds a public key the helper can load."""
    try:
        EventWebhook(verification_key.strip())
    except (ValueError, TypeError):
        return False
    return True


def sendgrid_outcomes(
    body: bytes, signature: str | None, timestamp: str | None, verification_key: str
) -> list[Outcome]:
    """The outcomes in a signed SendGrid Event Webhook post (Refused, Unreadable otherwise)."""
    if not signature or not timestamp:
        raise Refused("The signature or its timestamp is missing.")
    try:
        payload = body.decode("utf-8")
        verified = EventWebhook(verification_key.strip()).verify_signature(
            payload, signature, timestamp
        )
    except (UnicodeDecodeError, binascii.Error, InvalidSignature, ValueError, TypeError):
        verified = False
    if not verified:
        raise Refused("The signature does not match.")
    _fresh(timestamp)
    try:
        events = json.loads(payload)
    except ValueError:
        raise Unreadable("The body is not JSON.") from None
    if not isinstance(events, list):
        raise Unreadable("The body is not a list of events.")
    return [outcome for event in events if (outcome := _sendgrid_outcome(event))]


def _sendgrid_outcome(event) -> Outcome | None:
    """One SendGrid event as an outcome, or None for events that say nothing of delivery."""
    if not isinstance(event, dict):
        return None
    message_id = _sendgrid_send_id(str(event.get("sg_message_id") or ""))
    kind = event.get("event")
    if not message_id or not isinstance(kind, str):
        return None
    if kind == "delivered":
        return Outcome(message_id, "delivered")
    if kind == "deferred":
        return Outcome(message_id, "deferred")
    if kind == "bounce":
        blocked = event.get("type") == "blocked"
        return Outcome(message_id, "failed", "blocked" if blocked else "bounced")
    if kind == "dropped":
        return Outcome(message_id, "failed", "dropped")
    if kind == "spamreport":
        return Outcome(message_id, "failed", "spam_report")
    return None  # processed, open, click, unsubscribe…


def _sendgrid_send_id(sg_message_id: str) -> str:
    """The X-Message-Id of the send in an event's sg_message_id, which adds ".filter…" or
    ".recvd…" and more to it (the id itself may hold dots)."""
    for marker in (".filter", ".recvd"):
        if marker in sg_message_id:
            return sg_message_id.split(marker, 1)[0]
    return sg_message_id.split(".", 1)[0]


# Vonage's err-code of a failed or rejected receipt, as one of services.methods.deliveries.REASONS.
_VONAGE_ERRORS = {
    "2": "unreachable",  # absent subscriber, temporary
    "3": "invalid_number",  # absent subscriber, permanent
    "4": "refused_by_phone",  # call barred by user
    "7": "unreachable",  # handset busy
    "8": "unreachable",  # network error
    "9": "invalid_number",  # illegal number
    "11": "invalid_number",  # unroutable
    "12": "unreachable",  # destination unreachable
}


def vonage_outcomes(
    params: dict, signature_secret: str, signature_method: str, api_key: str
) -> list[Outcome]:
    """The outcome in a signed Vonage SMS delivery receipt (Refused otherwise)."""
    # Imported here: the Vonage SDK takes most of a second to import (as in the senders).
    from pydantic import ValidationError
    from vonage_http_client.auth import Auth

    if not isinstance(params, dict) or not params.get("sig") or not params.get("timestamp"):
        raise Refused("The signature or its timestamp is missing.")
    if not all(isinstance(value, str | int | float) for value in params.values()):
        raise Refused("The signature does not match.")
    auth = Auth(
        api_key=api_key, signature_secret=signature_secret, signature_method=signature_method
    )
    try:
        # check_signature takes "sig" out of what it is given: hand it a copy.
        verified = auth.check_signature(dict(params))
    except (ValidationError, TypeError, ValueError):
        verified = False
    if not verified:
        raise Refused("The signature does not match.")
    _fresh(params["timestamp"])
    message_id = str(params.get("messageId") or "")
    status = str(params.get("status") or "").lower()
    error = str(params.get("err-code") or "").strip()
    if not message_id:
        return []
    if status == "delivered":
        return [Outcome(message_id, "delivered")]
    if status == "buffered":
        return [Outcome(message_id, "deferred")]
    if status == "expired":
        return [Outcome(message_id, "failed", "unreachable")]
    if status in ("failed", "rejected"):
        return [Outcome(message_id, "failed", _VONAGE_ERRORS.get(error, "carrier_rejected"))]
    return []  # accepted, unknown: nothing new
