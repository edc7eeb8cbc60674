"""Contract tests of the real senders: the official SDKs talk to local fake providers
(tests/fake_providers.py) that check the requests and answer with successes, refusals,
silence and hang-ups. Nothing leaves 127.0.0.1."""

import base64
import logging
import time

import pytest

from models.outbox import OutboxMessage
from services.delivery import senders
from services.delivery.senders import (
    DeliveryError,
    OutboxSender,
    SendGridEmailSender,
    VonageSmsSender,
)
from tests.fake_providers import (
    SENDGRID_ACCEPTED,
    VONAGE_SENT,
    self_signed_certificate,
    vonage_refusal,
)

CODE = "482913"
SUBJECT = "User OTP from Online-Auth"
TEXT = f"Your TwoStep verification code is {CODE}. It expires in 10 minutes."
HTML = f"<p>Your TwoStep verification code is <strong>{CODE}</strong>.</p>"
EMAIL = "pat@example.com"
PHONE = "+12015550123"
TIMEOUT = 0.5
SLOW = 5.0  # how long a silent provider would wait; stopping the server cuts it short


def email_through(provider, timeout=TIMEOUT) -> SendGridEmailSender:
    return SendGridEmailSender(
        "SG.test-key", "TwoStep <no-reply@example.com>", host=provider.url, timeout=timeout
    )


def sms_through(provider, timeout=TIMEOUT) -> VonageSmsSender:
    return VonageSmsSender(
        "test-key", "test-secret", "TwoStep", rest_host=provider.host, timeout=timeout
    )


def assert_private(error: DeliveryError) -> None:
    """The error names the problem, never the message (which holds the code)."""
    text = str(error)
    assert CODE not in text
    assert TEXT not in text
    assert EMAIL not in text
    assert PHONE.removeprefix("+") not in text


# SendGrid ------------------------------------------------------------------------------


def test_sendgrid_request_is_what_the_mail_send_api_expects(sendgrid):
    email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT, HTML)

    [request] = sendgrid.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == "Bearer SG.test-key"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["personalizations"][0]["to"][0]["email"] == EMAIL
    assert body["from"] == {"email": "no-reply@example.com", "name": "TwoStep"}
    assert body["subject"] == SUBJECT
    assert body["content"] == [
        {"type": "text/plain", "value": TEXT},
        {"type": "text/html", "value": HTML},
    ]


def test_sendgrid_sends_plain_text_alone_when_there_is_no_html(sendgrid):
    email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT)

    [request] = sendgrid.requests
    assert request.json()["content"] == [{"type": "text/plain", "value": TEXT}]


@pytest.mark.parametrize("status", [400, 401, 403, 413, 429, 500, 502, 503])
def test_sendgrid_refusal_is_a_delivery_error_without_the_code(sendgrid, status, caplog):
    sendgrid.answer_with(
        status,
        {"errors": [{"message": f"refused {TEXT}", "field": "content"}]},
    )

    with pytest.raises(DeliveryError) as raised:
        email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT, HTML)

    assert f"HTTP {status}" in str(raised.value)
    assert_private(raised.value)
    assert len(sendgrid.requests) == 1  # no silent retry
    assert CODE not in caplog.text
    assert any(record.levelno == logging.WARNING for record in caplog.records)


def test_sendgrid_error_text_is_kept_for_troubleshooting(sendgrid):
    sendgrid.answer_with(
        403, {"errors": [{"message": "The from address does not match a verified Sender"}]}
    )

    with pytest.raises(DeliveryError, match="does not match a verified Sender"):
        email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT)


def test_sendgrid_that_does_not_answer_in_time_is_a_delivery_error(sendgrid, caplog):
    sendgrid.answer_with(SENDGRID_ACCEPTED, delay=SLOW)

    started = time.monotonic()
    with pytest.raises(DeliveryError, match="no answer within 0.5 seconds") as raised:
        email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT, HTML)

    assert time.monotonic() - started < SLOW / 2
    assert_private(raised.value)
    assert CODE not in caplog.text


def test_sendgrid_refused_connection_is_a_delivery_error(closed_port):
    sender = SendGridEmailSender(
        "SG.test-key",
        "no-reply@example.com",
        host=f"http://127.0.0.1:{closed_port}",
        timeout=TIMEOUT,
    )

    with pytest.raises(DeliveryError, match="refused") as raised:
        sender.send_email(EMAIL, SUBJECT, TEXT, HTML)

    assert_private(raised.value)


def test_sendgrid_hanging_up_is_a_delivery_error(sendgrid):
    sendgrid.answer_with(hang_up=True)

    with pytest.raises(DeliveryError) as raised:
        email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT)

    assert_private(raised.value)
    assert len(sendgrid.requests) == 1


# Vonage --------------------------------------------------------------------------------


def test_vonage_request_is_what_the_sms_api_expects(vonage):
    sms_through(vonage).send_sms(PHONE, TEXT)

    [request] = vonage.requests
    assert (request.method, request.path) == ("POST", "/sms/json")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    # SDK v4 sends the key and secret as HTTP Basic credentials, not in the form.
    expected = base64.b64encode(b"test-key:test-secret").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.form() == {"from": "TwoStep", "to": "12015550123", "text": TEXT}


@pytest.mark.parametrize(
    ("status", "error_text"),
    [("2", "Missing to param"), ("29", "Non-White-listed Destination - rejected")],
)
def test_vonage_refusal_in_a_200_answer_is_a_delivery_error(vonage, status, error_text, caplog):
    vonage.answer_with(200, vonage_refusal(status, error_text))

    with pytest.raises(DeliveryError) as raised:
        sms_through(vonage).send_sms(PHONE, TEXT)

    assert f"error code {status}: {error_text}" in str(raised.value)
    assert_private(raised.value)
    assert len(vonage.requests) == 1
    assert CODE not in caplog.text


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502, 503])
def test_vonage_http_error_is_a_delivery_error_without_the_code(vonage, status, caplog):
    vonage.answer_with(status, {"type": "about:blank", "title": "No", "detail": TEXT})

    with pytest.raises(DeliveryError, match=f"HTTP {status}") as raised:
        sms_through(vonage).send_sms(PHONE, TEXT)

    assert_private(raised.value)
    assert len(vonage.requests) == 1  # no silent retry
    assert any(
        record.name == "services.delivery.senders" and record.levelno == logging.WARNING
        for record in caplog.records
    )


def test_vonage_that_does_not_answer_in_time_is_a_delivery_error(vonage):
    vonage.answer_with(200, VONAGE_SENT, delay=SLOW)

    started = time.monotonic()
    with pytest.raises(DeliveryError, match="no answer within 0.5 seconds") as raised:
        sms_through(vonage).send_sms(PHONE, TEXT)

    assert time.monotonic() - started < SLOW / 2
    assert_private(raised.value)
    assert len(vonage.requests) == 1


def test_vonage_refused_connection_is_a_delivery_error(closed_port):
    sender = VonageSmsSender(
        "test-key", "test-secret", "TwoStep", rest_host=f"127.0.0.1:{closed_port}", timeout=TIMEOUT
    )

    with pytest.raises(DeliveryError, match="refused") as raised:
        sender.send_sms(PHONE, TEXT)

    assert_private(raised.value)


def test_vonage_hanging_up_is_tried_once(vonage):
    vonage.answer_with(hang_up=True)

    with pytest.raises(DeliveryError) as raised:
        sms_through(vonage).send_sms(PHONE, TEXT)

    assert_private(raised.value)
    assert len(vonage.requests) == 1  # the SDK's reconnect loop is held to one attempt


def test_vonage_answer_that_is_not_json_is_a_delivery_error(vonage):
    vonage.answer_with(200, b"<html>maintenance</html>")

    with pytest.raises(DeliveryError) as raised:
        sms_through(vonage).send_sms(PHONE, TEXT)

    assert_private(raised.value)


def test_vonage_certificate_is_checked(vonage, monkeypatch, tmp_path):
    other = self_signed_certificate(tmp_path / "other")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other.cert_file))

    with pytest.raises(DeliveryError, match="secure connection failed") as raised:
        sms_through(vonage).send_sms(PHONE, TEXT)

    assert_private(raised.value)


def test_sdk_debug_logs_do_not_reveal_codes_or_secrets(sendgrid, vonage, caplog):
    """Both SDKs log whole requests at DEBUG; the senders keep those loggers at INFO."""
    caplog.set_level(logging.DEBUG)

    email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT, HTML)
    sms_through(vonage).send_sms(PHONE, TEXT)

    assert len(sendgrid.requests) == len(vonage.requests) == 1
    for secret in (
        CODE,
        "SG.test-key",
        "test-secret",
        base64.b64encode(b"test-key:test-secret").decode(),
    ):
        assert secret not in caplog.text


# Choosing a sender from the configuration ----------------------------------------------


def test_without_keys_both_channels_use_the_outbox(app, db):
    assert isinstance(senders.email_sender(), OutboxSender)
    assert isinstance(senders.sms_sender(), OutboxSender)
    assert senders.outbox_in_use()


@pytest.mark.parametrize(
    "settings",
    [{"VONAGE_API_KEY": "key"}, {"VONAGE_API_SECRET": "secret"}],
    ids=["key only", "secret only"],
)
def test_vonage_needs_both_key_and_secret(app, db, settings):
    app.config.update(settings)

    assert isinstance(senders.sms_sender(), OutboxSender)


class TestConfiguredProviders:
    """With SENDGRID_* and VONAGE_* set, the app sends through the providers."""

    @pytest.fixture
    def app_config(self, sendgrid, vonage):
        return {
            "SENDGRID_API_KEY": "SG.configured",
            "SENDGRID_HOST": sendgrid.url,
            "MAIL_FROM": "Sunshine <hello@example.com>",
            "VONAGE_API_KEY": "configured-key",
            "VONAGE_API_SECRET": "configured-secret",
            "VONAGE_REST_HOST": vonage.host,
            "SMS_FROM": "Sunshine",
            "DELIVERY_TIMEOUT": TIMEOUT,
        }

    def test_email_goes_to_sendgrid(self, db, sendgrid):
        sender = senders.email_sender()
        sender.send_email(EMAIL, SUBJECT, TEXT, HTML)

        assert isinstance(sender, SendGridEmailSender)
        [request] = sendgrid.requests
        assert request.headers["authorization"] == "Bearer SG.configured"
        assert request.json()["from"] == {"email": "hello@example.com", "name": "Sunshine"}
        assert OutboxMessage.select().count() == 0

    def test_text_messages_go_to_vonage(self, db, vonage):
        sender = senders.sms_sender()
        sender.send_sms(PHONE, TEXT)

        assert isinstance(sender, VonageSmsSender)
        [request] = vonage.requests
        assert request.form()["from"] == "Sunshine"
        assert OutboxMessage.select().count() == 0

    def test_the_outbox_is_not_in_use(self, db):
        assert not senders.outbox_in_use()

    def test_delivery_timeout_comes_from_the_configuration(self, db, sendgrid, vonage):
        sendgrid.answer_with(SENDGRID_ACCEPTED, delay=SLOW)
        vonage.answer_with(200, VONAGE_SENT, delay=SLOW)

        started = time.monotonic()
        with pytest.raises(DeliveryError, match="0.5 seconds"):
            senders.email_sender().send_email(EMAIL, SUBJECT, TEXT)
        with pytest.raises(DeliveryError, match="0.5 seconds"):
            senders.sms_sender().send_sms(PHONE, TEXT)
        assert time.monotonic() - started < SLOW


class TestOnlyEmailConfigured:
    """SendGrid for email while text messages still go to the outbox."""

    @pytest.fixture
    def app_config(self, sendgrid):
        return {"SENDGRID_API_KEY": "SG.configured", "SENDGRID_HOST": sendgrid.url}

    def test_each_channel_uses_its_own_sender(self, db):
        assert isinstance(senders.email_sender(), SendGridEmailSender)
        assert isinstance(senders.sms_sender(), OutboxSender)
        assert senders.outbox_in_use()
        assert senders.outbox_channels() == ["sms"]


# Sent or not: a refusal means the provider does not have the message; silence after the
# request went out means it may (DeliveryUnknown: the code stays live, it may arrive late).


def test_no_answer_in_time_or_a_dropped_connection_is_delivery_unknown(sendgrid, vonage):
    sendgrid.answer_with(SENDGRID_ACCEPTED, delay=SLOW)
    with pytest.raises(senders.DeliveryUnknown, match="may not have sent"):
        email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT)
    vonage.answer_with(hang_up=True)
    with pytest.raises(senders.DeliveryUnknown):
        sms_through(vonage).send_sms(PHONE, TEXT)
    vonage.answer_with(body=VONAGE_SENT, delay=SLOW)
    with pytest.raises(senders.DeliveryUnknown, match="no answer within 0.5 seconds"):
        sms_through(vonage).send_sms(PHONE, TEXT)


@pytest.mark.parametrize("status", [429, 500])
def test_an_error_answer_or_a_refused_connection_is_not_sent(sendgrid, closed_port, status):
    sendgrid.answer_with(status, b"")
    with pytest.raises(DeliveryError) as answered:
        email_through(sendgrid).send_email(EMAIL, SUBJECT, TEXT)
    assert not isinstance(answered.value, senders.DeliveryUnknown)
    refused = SendGridEmailSender(
        "SG.test-key", "no-reply@example.com", host=f"http://127.0.0.1:{closed_port}"
    )
    with pytest.raises(DeliveryError) as not_connected:
        refused.send_email(EMAIL, SUBJECT, TEXT)
    assert not isinstance(not_connected.value, senders.DeliveryUnknown)
    vonage_refused = VonageSmsSender(
        "test-key", "test-secret", "TwoStep", rest_host=f"127.0.0.1:{closed_port}"
    )
    with pytest.raises(DeliveryError) as sms_not_connected:
        vonage_refused.send_sms(PHONE, TEXT)
    assert not isinstance(sms_not_connected.value, senders.DeliveryUnknown)
