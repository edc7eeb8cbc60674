"""The whole delivery path in a real browser (issue 20): the code goes out through the SendGrid
SDK to the local fake SendGrid, which names it (X-Message-Id); SendGrid's signed Event Webhook
then reports a bounce, and the code box shows the alert - with JavaScript in place, without a
reload; without JavaScript on the next load."""

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from services.methods import mask_email  # noqa: E402
from tests.e2e.live import LiveServer  # noqa: E402
from tests.fake_providers import SENDGRID_ACCEPTED, Answer, FakeProvider  # noqa: E402
from tests.test_webhooks import SENDGRID_KEY, sendgrid_post, verification_key  # noqa: E402


@pytest.fixture(scope="module")
def sendgrid():
    with FakeProvider(Answer(status=SENDGRID_ACCEPTED)) as provider:
        yield provider


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, sendgrid):
    """The app sending email through the fake SendGrid, its signed webhook on."""
    server = LiveServer(
        tmp_path_factory.mktemp("e2e-sendgrid") / "e2e.db",
        SENDGRID_API_KEY="SG.test-key",
        SENDGRID_HOST=sendgrid.url,
        SENDGRID_WEBHOOK_VERIFICATION_KEY=verification_key(SENDGRID_KEY),
    )
    server.start()
    yield server
    server.stop()


def test_a_signed_sendgrid_bounce_turns_the_code_box_alert_on(
    visitor, people, live_server, sendgrid
):
    parent = people.family(name="Pat Parent", two_step=True)
    people.add_method(parent, "email", parent.email)
    visitor.sign_in(parent.email)
    page = visitor.page
    expect(page.get_by_label("Verification code")).to_be_visible()
    expect(page.get_by_text("We'll show here if it can't be delivered")).to_be_visible()
    sent = [each for each in sendgrid.requests if each.path == "/v3/mail/send"]
    assert sent[-1].json()["personalizations"][0]["to"][0]["email"] == parent.email
    visitor.check("code box: sent, waiting for the report")

    marker = visitor.mark_document() if visitor.js else ""
    bounce = [
        {
            "email": parent.email,
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 The email account does not exist.",
            "sg_message_id": f"{sendgrid.message_ids[-1]}.filter0001.16648.5515E0B88.0",
        }
    ]
    with live_server.database():
        answer = sendgrid_post(live_server.app.test_client(), bounce, live_server.clock)
    assert answer.status_code == 204, answer.get_data(as_text=True)

    alert = visitor.bounce_alert(mask_email(parent.email))
    visitor.expect_reported(
        alert, marker, load_again=page.get_by_role("link", name="Check again").click
    )
    visitor.check("code box: the code bounced (SendGrid's report)")
