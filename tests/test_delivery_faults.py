"""SendGrid and Vonage failing during a sign-in, against the local fake providers: what the
person sees and what the database holds.

A provider that does not answer within DELIVERY_TIMEOUT may still deliver ("delivery
unknown"): the code stays live and the page says it may arrive late. A provider that answers
with an error (500, 429) or cannot be reached did not take the message: no code is left. A code
whose send never completed (its worker died) is never accepted and stops counting towards the
send limits.
"""

import html
import re
import time
from datetime import timedelta

import pytest

from models.deliveries import CodeDelivery
from models.outbox import OutboxMessage
from models.verification import EMAIL, SEND_PENDING, SIGN_IN, SMS, OneTimeCode, VerificationMethod
from services.methods import BY_KIND, codes
from services.security import throttle
from tests.fake_providers import (
    SENDGRID_ACCEPTED,
    VONAGE_SENT,
)

TIMEOUT = 0.5
SLOW = 5.0  # a provider that hangs; stopping the fake server at the end cuts it short
VERIFY = "/login/verify"
PHONE = "+12015550123"
UNKNOWN_TEXT = "It may arrive late"
FAILED_TEXT = "We couldn't send the code. Try again or choose another method."


@pytest.fixture
def app_config(sendgrid, vonage):
    return {
        "SENDGRID_API_KEY": "SG.test-key",
        "SENDGRID_HOST": sendgrid.url,
        "VONAGE_API_KEY": "test-key",
        "VONAGE_API_SECRET": "test-secret",
        "VONAGE_REST_HOST": vonage.host,
        "DELIVERY_TIMEOUT": TIMEOUT,
    }


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def person_with(factory, kind: str):
    user = factory.family(email="pat@example.com", two_step=True)
    destination = PHONE if kind == SMS else user.email
    VerificationMethod.create(user=user, kind=kind, destination=destination)
    return user


def timed_login(browser):
    started = time.monotonic()
    response = browser.login("pat@example.com")
    return response, time.monotonic() - started


@pytest.mark.parametrize("kind", [EMAIL, SMS])
def test_a_provider_that_hangs_leaves_a_live_code_that_may_arrive_late(
    browser, factory, sendgrid, vonage, kind, clock
):
    provider = sendgrid if kind == EMAIL else vonage
    provider.answer_with(SENDGRID_ACCEPTED if kind == EMAIL else 200, VONAGE_SENT, delay=SLOW)
    person_with(factory, kind)

    response, seconds = timed_login(browser)
    assert response.headers["Location"] == VERIFY
    assert seconds < TIMEOUT + 2  # the timeout, the password hash and TLS, slack
    page = text(browser.get(VERIFY))
    assert UNKNOWN_TEXT in page and "choose another method" in page

    [row] = OneTimeCode.select()
    assert row.expires_at == row.created_at + timedelta(minutes=10)  # live, as if sent
    assert OutboxMessage.select().count() == 0
    # Its send attempt is recorded with it: the provider, no message id (none came back).
    [delivery] = CodeDelivery.select()
    assert (delivery.code_id, delivery.provider, delivery.message_id) == (
        row.id,
        "sendgrid" if kind == EMAIL else "vonage",
        None,
    )
    # The message arrives late after all: its code works.
    late_code = _code_from(provider)
    assert browser.post(VERIFY, {"code": late_code}).status_code == 303
    assert browser.get("/profile").status_code == 200


@pytest.mark.parametrize("status", [500, 429])
@pytest.mark.parametrize("kind", [EMAIL, SMS])
def test_a_provider_error_leaves_no_code_and_says_so(
    browser, factory, sendgrid, vonage, kind, status
):
    provider = sendgrid if kind == EMAIL else vonage
    provider.answer_with(status, {"errors": [{"message": "try later"}]})
    person_with(factory, kind)

    response = browser.login("pat@example.com")
    assert response.headers["Location"] == VERIFY
    assert FAILED_TEXT in text(browser.get(VERIFY))
    assert OneTimeCode.select().count() == 0
    assert CodeDelivery.select().count() == 0
    assert len(provider.requests) == 1  # tried once, no silent retry


@pytest.mark.parametrize("kind", [EMAIL, SMS])
def test_a_provider_that_refuses_connections_leaves_no_code(
    app, browser, factory, closed_port, kind
):
    app.config["SENDGRID_HOST"] = f"http://127.0.0.1:{closed_port}"
    app.config["VONAGE_REST_HOST"] = f"127.0.0.1:{closed_port}"
    person_with(factory, kind)

    browser.login("pat@example.com")
    assert FAILED_TEXT in text(browser.get(VERIFY))
    assert OneTimeCode.select().count() == 0


def test_a_code_whose_send_never_completed_is_never_accepted_nor_counted(app, db, factory, clock):
    """What a worker killed during a send leaves: the row stored before the provider call,
    never activated. It is not live, and once it can no longer be in flight it does not
    count towards the cooldown or the caps."""
    user = person_with(factory, EMAIL)
    with app.test_request_context():
        row, code = codes._create(user, SIGN_IN, "email", user.email, live=False)
        assert row.expires_at == SEND_PENDING
        assert not codes.verify(user, SIGN_IN, code).ok
        # While it may still be in flight it holds the cooldown like any send.
        assert throttle.send_retry_at(user, user.email) is not None
        clock.advance(seconds=app.config["DELIVERY_TIMEOUT"] + 11)
        assert throttle.send_retry_at(user, user.email) is None
        assert not codes.verify(user, SIGN_IN, code).ok
        # A send that completes gives its code the real expiry, counted from the request.
        outcome = codes.send(user, SIGN_IN, BY_KIND[EMAIL], user.email)
        assert outcome.ok
        newest = OneTimeCode.select().order_by(OneTimeCode.id.desc()).first()
        assert newest.expires_at == newest.created_at + timedelta(minutes=10)


def _code_from(provider) -> str:
    request = provider.requests[-1]
    if request.path.startswith("/v3/mail/send"):
        body = request.json()["content"][0]["value"]
    else:
        body = request.form()["text"]
    return re.search(r"\b(\d{6})\b", body).group(1)
