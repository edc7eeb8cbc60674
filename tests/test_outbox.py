"""The outbox: what it stores, `flask outbox` (text and JSON lines) and the /dev/outbox page."""

import json
from datetime import UTC, datetime

import pytest

from models.outbox import OutboxMessage
from services.delivery.senders import OutboxSender
from tests.conftest import START, is_fragment, is_full_page

EMAIL_TEXT = "Your TwoStep verification code is 482913. It expires in 10 minutes."
SMS_TEXT = "Your TwoStep verification code is 007351. It expires in 10 minutes."


@pytest.fixture
def sent(db, clock):
    """Two emails and a text message, a minute apart (oldest first)."""
    outbox = OutboxSender()
    outbox.send_email("pat@example.com", "User OTP from Online-Auth", EMAIL_TEXT, "<p>482913</p>")
    clock.advance(minutes=1)
    outbox.send_sms("+12015550123", SMS_TEXT)
    clock.advance(minutes=1)
    outbox.send_email("terry@example.com", "2-Step Verification turned on", "It is on.\n")
    return list(OutboxMessage.select().order_by(OutboxMessage.id))


def run(app, *args):
    result = app.test_cli_runner().invoke(args=["outbox", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_outbox_stores_email_and_text_messages(sent):
    email, sms, _ = sent
    assert (email.channel, email.to, email.subject) == (
        "email",
        "pat@example.com",
        "User OTP from Online-Auth",
    )
    assert (email.body, email.html) == (EMAIL_TEXT, "<p>482913</p>")
    assert email.created_at == START
    assert (sms.channel, sms.to, sms.subject, sms.body) == ("sms", "+12015550123", "", SMS_TEXT)


# flask outbox --------------------------------------------------------------------------


def test_cli_lists_messages_newest_last(app, sent):
    output = run(app)

    first = output.index("Email to pat@example.com")
    second = output.index("Text message to +12015550123")
    third = output.index("Email to terry@example.com")
    assert first < second < third
    assert "Subject: User OTP from Online-Auth" in output
    assert EMAIL_TEXT in output and SMS_TEXT in output
    assert "2026-11-26 12:00:05 UTC" in output


def test_cli_json_prints_one_object_a_line(app, sent):
    lines = run(app, "--json").splitlines()

    messages = [json.loads(line) for line in lines]
    assert [message["to"] for message in messages] == [
        "pat@example.com",
        "+12015550123",
        "terry@example.com",
    ]
    assert messages[0] == {
        "channel": "email",
        "to": "pat@example.com",
        "subject": "User OTP from Online-Auth",
        "body": EMAIL_TEXT,
        "created_at": "2026-11-26T12:00:05+00:00",
    }
    assert messages[1]["channel"] == "sms"
    assert messages[1]["subject"] == ""
    assert datetime.fromisoformat(messages[2]["created_at"]) == START.replace(minute=2, tzinfo=UTC)


def test_cli_limit_keeps_the_newest(app, sent):
    messages = [json.loads(line) for line in run(app, "--json", "--limit", "2").splitlines()]

    assert [message["to"] for message in messages] == ["+12015550123", "terry@example.com"]


def test_cli_refuses_a_limit_below_one(app, sent):
    result = app.test_cli_runner().invoke(args=["outbox", "--limit", "0"])

    assert result.exit_code != 0


def test_cli_clear_empties_the_outbox(app, sent):
    assert "3 messages" in run(app, "--clear")

    assert OutboxMessage.select().count() == 0
    assert run(app, "--json") == ""
    assert "The outbox is empty." in run(app)


def test_cli_opens_the_database_itself(app):
    """Like a real `flask outbox`: no connection is open before the command."""
    with app.app_context():
        OutboxSender().send_sms("+12015550123", SMS_TEXT)

    assert SMS_TEXT in run(app)


# /dev/outbox ---------------------------------------------------------------------------


def test_viewer_shows_messages_newest_first(browser, sent):
    response = browser.get("/dev/outbox")

    assert response.status_code == 200
    assert is_full_page(response)
    page = response.get_data(as_text=True)
    assert (
        page.index("terry@example.com")
        < page.index("Text message to +12015550123")
        < page.index("Email to pat@example.com")
    )
    assert "User OTP from Online-Auth" in page
    assert f"<pre>{EMAIL_TEXT}</pre>" in page
    assert 'datetime="2026-11-26T12:00:05+00:00"' in page
    assert "Nov 26, 2026, 12:00\u202fPM UTC" in page  # through Babel, in the page's language
    assert response.headers["Cache-Control"] == "no-store"


def test_viewer_escapes_what_it_shows(browser, db):
    OutboxSender().send_email("x@example.com", "<b>subject</b>", "<script>alert(1)</script>")

    page = browser.get("/dev/outbox").get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>subject</b>" not in page


def test_viewer_answers_htmx_with_a_fragment(browser, sent):
    response = browser.get("/dev/outbox", htmx=True)

    assert response.status_code == 200
    assert is_fragment(response)
    assert EMAIL_TEXT in response.get_data(as_text=True)


def test_viewer_says_when_the_outbox_is_empty(browser, db):
    assert "The outbox is empty." in browser.get("/dev/outbox").get_data(as_text=True)


def test_viewer_is_open_while_half_signed_in(browser, factory, sent):
    factory.staff(email="teacher@example.com")
    browser.login("teacher@example.com")
    assert browser.get("/").status_code == 303  # pending: everything else leads to the code box

    response = browser.get("/dev/outbox")

    assert response.status_code == 200
    assert EMAIL_TEXT in response.get_data(as_text=True)


def test_viewer_is_hidden_in_production(app, browser, sent):
    app.config["PRODUCTION"] = True

    assert browser.get("/dev/outbox").status_code == 404


def test_viewer_is_hidden_when_both_providers_are_configured(app, browser, sent):
    app.config.update(SENDGRID_API_KEY="SG.key", VONAGE_API_KEY="key", VONAGE_API_SECRET="secret")

    assert browser.get("/dev/outbox").status_code == 404


def test_viewer_stays_while_one_channel_still_uses_the_outbox(app, browser, sent):
    app.config.update(SENDGRID_API_KEY="SG.key")

    response = browser.get("/dev/outbox")

    assert response.status_code == 200
    assert "by text message" in response.get_data(as_text=True)


@pytest.mark.parametrize("address", ["192.0.2.10", "10.0.0.5", "2001:db8::1"])
def test_viewer_answers_only_this_machine(browser, sent, address):
    """It shows live codes without a sign-in: another machine gets 404."""
    response = browser.get("/dev/outbox", environ_base={"REMOTE_ADDR": address})

    assert response.status_code == 404
    assert EMAIL_TEXT not in response.get_data(as_text=True)


def test_viewer_answers_ipv6_loopback(browser, sent):
    response = browser.get("/dev/outbox", environ_base={"REMOTE_ADDR": "::1"})

    assert response.status_code == 200


def test_viewer_refuses_a_forwarded_address_from_elsewhere(app, browser, sent):
    """Behind PROXY_FIX_X_FOR, a proxy on this machine passing on another address: 404."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    response = browser.get("/dev/outbox", headers={"X-Forwarded-For": "198.51.100.7"})

    assert response.status_code == 404
