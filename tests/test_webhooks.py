"""The providers' delivery reports (issue 20): SendGrid's signed Event Webhook and Vonage's
signed SMS receipts move a code's delivery on; anything unsigned, tampered or stale gets 403
and changes nothing. Signed fixtures are made here with a generated ECDSA key pair (SendGrid)
and a test signature secret (Vonage, signed as its documentation says, not by the SDK)."""

import base64
import hashlib
import hmac
import json
import random
from datetime import UTC, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app import ConfigurationError, create_app
from models.deliveries import DELIVERED, FAILED, OUTBOX, SENDGRID, SENT, VONAGE, CodeDelivery
from models.events import DELIVERY_FAILED, SecurityEvent
from models.verification import EMAIL, SIGN_IN, SMS, VerificationMethod
from services.methods import deliveries

SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
VONAGE_SECRET = "test-signature-secret"
VONAGE_API_KEY = "test-key"
EMAIL_ADDRESS = "pat@example.com"
PHONE = "+12015550123"


def verification_key(private_key) -> str:
    """The public key as SendGrid shows it: base64 DER, without the PEM lines."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def app_config():
    return {
        "SENDGRID_WEBHOOK_VERIFICATION_KEY": verification_key(SENDGRID_KEY),
        "VONAGE_SIGNATURE_SECRET": VONAGE_SECRET,
        "VONAGE_API_KEY": VONAGE_API_KEY,
        "VONAGE_SIGNATURE_METHOD": "sha256",
    }


@pytest.fixture
def client(app):
    return app.test_client()


def unix(clock, seconds_ago=0) -> str:
    return str(int(clock().replace(tzinfo=UTC).timestamp()) - seconds_ago)


def sendgrid_post(client, events, clock, *, key=SENDGRID_KEY, seconds_ago=0, body=None, **kw):
    """POST `events` as SendGrid does: JSON, signed over timestamp + body."""
    payload = body if body is not None else json.dumps(events)
    timestamp = kw.pop("timestamp", unix(clock, seconds_ago))
    signature = base64.b64encode(
        key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    ).decode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": kw.pop("signature", signature),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    return client.post(
        "/webhooks/sendgrid",
        data=kw.pop("sent_body", payload),
        headers=headers,
        content_type="application/json",
    )


def vonage_signature(params: dict, secret=VONAGE_SECRET) -> str:
    """Vonage's signed-message scheme: HMAC-SHA256 over "&name=value" for each parameter in
    name order, with "&" and "=" in values replaced by "_"."""
    signer = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for name in sorted(params):
        value = str(params[name]).replace("&", "_").replace("=", "_")
        signer.update(f"&{name}={value}".encode())
    return signer.hexdigest()


def vonage_receipt(message_id, clock, *, status="delivered", err_code="0", seconds_ago=0):
    params = {
        "msisdn": PHONE.removeprefix("+"),
        "to": "TwoStep",
        "network-code": "12345",
        "messageId": message_id,
        "price": "0.03330000",
        "status": status,
        "scts": "2611261200",
        "err-code": err_code,
        "api-key": VONAGE_API_KEY,
        "message-timestamp": "2026-11-26 12:00:05",
        "timestamp": unix(clock, seconds_ago),
        "nonce": "b1e1f1a6-32c5-4c4e-9cc0-3b8a5fd0a8a1",
    }
    params["sig"] = vonage_signature(params)
    return params


def delivery(user, channel=EMAIL, destination=EMAIL_ADDRESS, provider=SENDGRID, message_id="m1"):
    return deliveries.record_send(
        user,
        None,
        purpose=SIGN_IN,
        channel=channel,
        destination=destination,
        provider=provider,
        message_id=message_id,
    )


def sms_delivery(user, message_id="0A01"):
    return delivery(user, channel=SMS, destination=PHONE, provider=VONAGE, message_id=message_id)


def state_of(row):
    row = CodeDelivery.get_by_id(row.id)
    return row.state, row.reason


def snapshot():
    """Everything a report could change."""
    return (
        [(row.id, row.state, row.reason, row.updated_at) for row in CodeDelivery.select()],
        [(row.id, row.delivery_problem) for row in VerificationMethod.select()],
        SecurityEvent.select().count(),
    )


# SendGrid ------------------------------------------------------------------------------


def test_sendgrid_delivered_event_moves_the_delivery_on(client, factory, clock):
    sent = delivery(factory.family(), message_id="14c5d75ce93.dfd.64b469")
    response = sendgrid_post(
        client,
        [
            {"event": "processed", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.1.0"},
            {"event": "delivered", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.1.0"},
        ],
        clock,
    )
    assert response.status_code == 204
    assert state_of(sent) == (DELIVERED, "")


@pytest.mark.parametrize(
    "event, reason",
    [
        ({"event": "bounce", "type": "bounce", "reason": "550 5.1.1 unknown"}, "bounced"),
        ({"event": "bounce", "type": "blocked"}, "blocked"),
        ({"event": "dropped", "reason": "Bounced Address"}, "dropped"),
        ({"event": "spamreport"}, "spam_report"),
    ],
)
def test_sendgrid_failures_keep_the_reason_and_list_it_in_the_activity(
    client, factory, clock, event, reason
):
    user = factory.family()
    sent = delivery(user, message_id="abc")
    response = sendgrid_post(client, [{**event, "sg_message_id": "abc.filter1"}], clock)
    assert response.status_code == 204
    assert state_of(sent) == (FAILED, reason)
    [logged] = SecurityEvent.select().where(SecurityEvent.kind == DELIVERY_FAILED)
    assert (logged.user_id, logged.method_kind) == (user.id, EMAIL)
    assert logged.detail == "p•••@example.com"
    assert deliveries.reason_words(reason) == deliveries.REASONS[reason]


def test_sendgrid_deferred_then_delivered_and_a_late_deferral_changes_nothing(
    client, factory, clock
):
    sent = delivery(factory.family(), message_id="abc")
    sendgrid_post(client, [{"event": "deferred", "sg_message_id": "abc.f"}], clock)
    assert state_of(sent) == ("deferred", "")
    sendgrid_post(client, [{"event": "delivered", "sg_message_id": "abc.f"}], clock)
    sendgrid_post(client, [{"event": "deferred", "sg_message_id": "abc.f"}], clock)
    assert state_of(sent) == (DELIVERED, "")


def test_a_repeated_bounce_is_logged_once(client, factory, clock):
    sent = delivery(factory.family(), message_id="abc")
    bounce = [{"event": "bounce", "sg_message_id": "abc.f"}]
    for _ in range(3):
        assert sendgrid_post(client, bounce, clock).status_code == 204
    assert state_of(sent) == (FAILED, "bounced")
    assert SecurityEvent.select().where(SecurityEvent.kind == DELIVERY_FAILED).count() == 1


def test_sendgrid_unknown_message_id_is_204_and_ignored(client, factory, clock):
    delivery(factory.family(), message_id="abc")
    before = snapshot()
    response = sendgrid_post(client, [{"event": "bounce", "sg_message_id": "zzz.filter"}], clock)
    assert response.status_code == 204
    assert snapshot() == before


def test_sendgrid_only_touches_its_own_messages(client, factory, clock):
    """A Vonage or outbox message with the same id is not SendGrid's to change."""
    user = factory.family()
    other = delivery(user, channel=SMS, destination=PHONE, provider=VONAGE, message_id="abc")
    sendgrid_post(client, [{"event": "bounce", "sg_message_id": "abc.f"}], clock)
    assert state_of(other) == (SENT, "")


@pytest.mark.parametrize(
    "tamper",
    [
        "wrong key",
        "body changed",
        "timestamp changed",
        "no signature",
        "no timestamp",
        "signature not base64",
        "signature garbage",
    ],
)
def test_sendgrid_bad_or_missing_signature_is_403_and_changes_nothing(
    client, factory, clock, tamper
):
    sent = delivery(factory.family(), message_id="abc")
    events = [{"event": "bounce", "sg_message_id": "abc.f"}]
    before = snapshot()
    options = {
        "wrong key": {"key": OTHER_KEY},
        "body changed": {"sent_body": json.dumps([{"event": "bounce", "sg_message_id": "abc.g"}])},
        "timestamp changed": {"timestamp": unix(clock, 1)},
        "no signature": {"signature": ""},
        "signature not base64": {"signature": "%%%not base64%%%"},
        "signature garbage": {"signature": base64.b64encode(b"garbage").decode()},
    }
    if tamper == "no timestamp":
        response = client.post(
            "/webhooks/sendgrid",
            data=json.dumps(events),
            headers={"X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ=="},
            content_type="application/json",
        )
    elif tamper == "timestamp changed":
        # Signed at one time, sent claiming another.
        payload = json.dumps(events)
        signed_at = unix(clock)
        signature = base64.b64encode(
            SENDGRID_KEY.sign((signed_at + payload).encode(), ec.ECDSA(hashes.SHA256()))
        ).decode()
        response = client.post(
            "/webhooks/sendgrid",
            data=payload,
            headers={
                "X-Twilio-Email-Event-Webhook-Signature": signature,
                "X-Twilio-Email-Event-Webhook-Timestamp": options[tamper]["timestamp"],
            },
            content_type="application/json",
        )
    else:
        response = sendgrid_post(client, events, clock, **options[tamper])
    assert response.status_code == 403
    assert snapshot() == before
    assert state_of(sent) == (SENT, "")


@pytest.mark.parametrize("seconds_ago", [6 * 60, -6 * 60, 24 * 3600])
def test_sendgrid_stale_or_future_timestamp_is_403_even_when_signed(
    client, factory, clock, seconds_ago
):
    sent = delivery(factory.family(), message_id="abc")
    response = sendgrid_post(
        client, [{"event": "bounce", "sg_message_id": "abc.f"}], clock, seconds_ago=seconds_ago
    )
    assert response.status_code == 403
    assert state_of(sent) == (SENT, "")


def test_sendgrid_four_minutes_old_is_still_accepted(client, factory, clock):
    sent = delivery(factory.family(), message_id="abc")
    response = sendgrid_post(
        client, [{"event": "bounce", "sg_message_id": "abc.f"}], clock, seconds_ago=4 * 60
    )
    assert response.status_code == 204
    assert state_of(sent) == (FAILED, "bounced")


@pytest.mark.parametrize("body", ["not json", '{"event": "bounce"}', '[1, null, "x"]'])
def test_sendgrid_signed_but_odd_bodies_change_nothing_and_never_500(client, factory, clock, body):
    delivery(factory.family(), message_id="abc")
    before = snapshot()
    response = sendgrid_post(client, None, clock, body=body)
    assert response.status_code in (204, 400)
    assert snapshot() == before


# Vonage --------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_vonage_delivered_receipt_moves_the_delivery_on(client, factory, clock, as_json):
    sent = sms_delivery(factory.family())
    receipt = vonage_receipt("0A01", clock)
    if as_json:
        response = client.post("/webhooks/vonage", json=receipt)
    else:
        response = client.post("/webhooks/vonage", data=receipt)
    assert response.status_code == 204
    assert state_of(sent) == (DELIVERED, "")


@pytest.mark.parametrize(
    "status, err_code, reason",
    [
        ("failed", "2", "unreachable"),
        ("failed", "3", "invalid_number"),
        ("rejected", "4", "refused_by_phone"),
        ("rejected", "6", "carrier_rejected"),
        ("failed", "99", "carrier_rejected"),
        ("expired", "1", "unreachable"),
    ],
)
def test_vonage_failures_keep_the_reason(client, factory, clock, status, err_code, reason):
    user = factory.family()
    sent = sms_delivery(user)
    receipt = vonage_receipt("0A01", clock, status=status, err_code=err_code)
    assert client.post("/webhooks/vonage", data=receipt).status_code == 204
    assert state_of(sent) == (FAILED, reason)
    [logged] = SecurityEvent.select().where(SecurityEvent.kind == DELIVERY_FAILED)
    assert (logged.method_kind, logged.detail) == (SMS, "•••-•••-0123")


def test_vonage_buffered_is_deferred_and_accepted_changes_nothing(client, factory, clock):
    sent = sms_delivery(factory.family())
    client.post("/webhooks/vonage", data=vonage_receipt("0A01", clock, status="accepted"))
    assert state_of(sent) == (SENT, "")
    client.post("/webhooks/vonage", data=vonage_receipt("0A01", clock, status="buffered"))
    assert state_of(sent) == ("deferred", "")


@pytest.mark.parametrize(
    "tamper", ["no sig", "wrong secret", "status changed", "sig of other receipt", "nested value"]
)
def test_vonage_bad_or_missing_signature_is_403_and_changes_nothing(client, factory, clock, tamper):
    sent = sms_delivery(factory.family())
    receipt = vonage_receipt("0A01", clock, status="failed", err_code="3")
    if tamper == "no sig":
        del receipt["sig"]
    elif tamper == "wrong secret":
        receipt["sig"] = vonage_signature({k: v for k, v in receipt.items() if k != "sig"}, "x")
    elif tamper == "status changed":
        receipt["status"] = "expired"
    elif tamper == "sig of other receipt":
        receipt["sig"] = vonage_receipt("0A02", clock, status="failed")["sig"]
    before = snapshot()
    if tamper == "nested value":
        response = client.post("/webhooks/vonage", json={**receipt, "price": {"a": 1}})
    else:
        response = client.post("/webhooks/vonage", data=receipt)
    assert response.status_code == 403
    assert snapshot() == before
    assert state_of(sent) == (SENT, "")


def test_vonage_stale_receipt_is_403(client, factory, clock):
    sent = sms_delivery(factory.family())
    receipt = vonage_receipt("0A01", clock, status="failed", seconds_ago=5 * 60 + 1)
    assert client.post("/webhooks/vonage", data=receipt).status_code == 403
    assert state_of(sent) == (SENT, "")


def test_vonage_unknown_message_id_is_204_and_ignored(client, factory, clock):
    sms_delivery(factory.family())
    before = snapshot()
    receipt = vonage_receipt("FFFF", clock, status="failed")
    assert client.post("/webhooks/vonage", data=receipt).status_code == 204
    assert snapshot() == before


# Both ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/sendgrid", "/webhooks/vonage"])
def test_without_the_settings_the_endpoints_are_404(tmp_path, clock, path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "x",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'plain.db'}",
            "CLOCK": clock,
            "SENDGRID_WEBHOOK_VERIFICATION_KEY": "",
            "VONAGE_SIGNATURE_SECRET": "",
        }
    )
    response = app.test_client().post(path, data="[]", content_type="application/json")
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/webhooks/sendgrid", "/webhooks/vonage"])
def test_webhooks_answer_only_post(client, path):
    assert client.get(path).status_code == 405
    assert client.put(path).status_code == 405


def test_webhooks_need_no_csrf_token_or_session(app, factory, clock):
    """The test app checks CSRF tokens; a signed report is accepted without one."""
    assert app.config.get("WTF_CSRF_ENABLED", True)
    sent = delivery(factory.family(), message_id="abc")
    delivered = [{"event": "delivered", "sg_message_id": "abc"}]
    response = sendgrid_post(app.test_client(), delivered, clock)
    assert response.status_code == 204
    assert state_of(sent) == (DELIVERED, "")


def test_webhooks_are_rate_limited_per_address(app, factory, clock):
    app.config["WEBHOOK_REQUESTS_PER_IP"] = "5 per minute"
    client = app.test_client()
    statuses = [
        sendgrid_post(client, [{"event": "delivered", "sg_message_id": "abc"}], clock).status_code
        for _ in range(7)
    ]
    assert statuses == [204] * 5 + [429] * 2
    other = app.test_client()
    response = other.post(
        "/webhooks/vonage",
        data=vonage_receipt("x", clock),
        environ_base={"REMOTE_ADDR": "127.0.0.2"},
    )
    assert response.status_code == 204


def test_a_bad_verification_key_stops_the_app_from_starting(tmp_path):
    with pytest.raises(ConfigurationError, match="SENDGRID_WEBHOOK_VERIFICATION_KEY"):
        create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "x",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
                "SENDGRID_WEBHOOK_VERIFICATION_KEY": "not a key",
            }
        )
    with pytest.raises(ConfigurationError, match="VONAGE_SIGNATURE_METHOD"):
        create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "x",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
                "VONAGE_SIGNATURE_METHOD": "md5hash",
            }
        )


def test_a_thousand_unsigned_posts_change_nothing_and_never_5xx(app, factory, clock):
    """Webhook abuse: junk of every shape, forged headers, replayed old reports."""
    user = factory.family()
    VerificationMethod.create(user=user, kind=EMAIL, destination=EMAIL_ADDRESS)
    VerificationMethod.create(user=user, kind=SMS, destination=PHONE)
    delivery(user, message_id="abc")
    sms_delivery(user)
    delivery(user, provider=OUTBOX, message_id="1")
    stale_sendgrid = [{"event": "bounce", "sg_message_id": "abc.f"}]
    stale_vonage = vonage_receipt("0A01", clock, status="failed", seconds_ago=3600)
    before = snapshot()
    client = app.test_client()
    generator = random.Random(20)
    statuses = set()
    for index in range(1000):
        choice = index % 8
        junk = bytes(generator.randrange(256) for _ in range(generator.randrange(0, 200)))
        if choice == 0:
            response = client.post("/webhooks/sendgrid", data=junk)
        elif choice == 1:
            response = client.post(
                "/webhooks/sendgrid",
                json=[{"event": "bounce", "sg_message_id": "abc"}],
                headers={
                    "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(junk).decode(),
                    "X-Twilio-Email-Event-Webhook-Timestamp": unix(clock),
                },
            )
        elif choice == 2:
            response = sendgrid_post(client, stale_sendgrid, clock, seconds_ago=3600)
        elif choice == 3:
            response = client.post("/webhooks/vonage", data=junk, content_type="application/json")
        elif choice == 4:
            forged = dict(stale_vonage, timestamp=unix(clock), sig=junk.hex()[:64])
            response = client.post("/webhooks/vonage", data=forged)
        elif choice == 5:
            response = client.post("/webhooks/vonage", data=stale_vonage)
        elif choice == 6:
            response = client.post(
                "/webhooks/vonage",
                data={"messageId": "0A01", "status": "failed", "timestamp": junk.hex() or "1"},
            )
        else:
            response = client.post(
                "/webhooks/sendgrid",
                data=junk,
                headers={
                    "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                    "X-Twilio-Email-Event-Webhook-Timestamp": junk.hex()[:20] or "x",
                },
                content_type="application/json",
            )
        statuses.add(response.status_code)
        assert response.status_code < 500, (index, response.status_code)
    assert statuses <= {400, 403, 429}
    assert 403 in statuses
    assert snapshot() == before
    assert not [row for row in CodeDelivery.select() if row.state == FAILED]


def test_delivery_rows_are_purged_after_the_keep_days(app, factory, clock):
    from services.housekeeping import purge

    user = factory.family()
    delivery(user, message_id="old")
    clock.advance(days=31)
    delivery(user, message_id="new")
    assert purge()["code_deliveries"] == 1
    assert [row.message_id for row in CodeDelivery.select()] == ["new"]


def test_delivery_ids_are_kept_as_given(factory):
    row = delivery(factory.family(), message_id="x" * 300)
    assert len(CodeDelivery.get_by_id(row.id).message_id) == 128
    assert timedelta(0) == row.updated_at - row.created_at
