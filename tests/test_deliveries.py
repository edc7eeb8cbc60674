"""Delivery status in the product (issue 20): each sent code keeps the provider's message id;
a bounce after the send turns the code box's alert on (polled with HTMX, or on the next
load); the window says when a method's last two codes failed; the admin's person page shows
each method's last delivery; failed deliveries are in the security activity; the outbox
counts as delivered at once and `flask outbox --fail ADDRESS` fails the newest code."""

import html
import re

import pytest

from models.deliveries import DELIVERED, FAILED, OUTBOX, SENDGRID, SENT, VONAGE, CodeDelivery
from models.outbox import OutboxMessage
from models.people import User
from models.verification import EMAIL, SIGN_IN, SMS, VerificationMethod
from services.methods import EMAIL_KIND, SMS_KIND, codes, deliveries
from tests.conftest import is_full_page
from tests.fake_providers import (
    VONAGE_SENT,
    Answer,
    FakeProvider,
)
from tests.test_admin import seed, sign_in
from tests.test_webhooks import SENDGRID_KEY, delivery, sendgrid_post, verification_key

ADDRESS = "pat@example.com"
PHONE = "+12015550123"
VERIFY = "/login/verify"
STATUS = "/login/verify/delivery"
ALERT = "We couldn't deliver the code to p•••@example.com: the address bounced."
POLLING = 'hx-trigger="every 3s"'


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def status_box(page: str) -> str:
    """The delivery status box of a page or fragment."""
    match = re.search(
        r'<div id="delivery-status".*?</div>\s*(?=<form|<div class="button-row|$)', page, re.S
    )
    assert match, page
    return match.group(0)


@pytest.fixture
def app_config(request):
    """SendGrid (the fake) for email when a test asks for it; the signed webhook always on."""
    config = {"SENDGRID_WEBHOOK_VERIFICATION_KEY": verification_key(SENDGRID_KEY)}
    if "sendgrid" in request.fixturenames:
        provider = request.getfixturevalue("sendgrid")
        config.update(SENDGRID_API_KEY="SG.test-key", SENDGRID_HOST=provider.url)
    return config


def family_with(factory, *kinds):
    """A family login with 2SV on and the given methods (email, sms)."""
    user = factory.family(email=ADDRESS, two_step=True)
    for kind in kinds:
        VerificationMethod.create(
            user=user, kind=kind, destination=ADDRESS if kind == EMAIL else PHONE
        )
    return user


def newest_delivery() -> CodeDelivery:
    return CodeDelivery.select().order_by(CodeDelivery.id.desc()).first()


# Message ids --------------------------------------------------------------------------


def test_an_outbox_code_keeps_the_outbox_id_and_counts_as_delivered(browser, factory):
    user = family_with(factory, EMAIL)
    assert browser.login(ADDRESS).status_code == 303
    delivery = newest_delivery()
    message = OutboxMessage.select().order_by(OutboxMessage.id.desc()).first()
    assert (delivery.user_id, delivery.provider, delivery.message_id) == (
        user.id,
        OUTBOX,
        str(message.id),
    )
    assert (delivery.state, delivery.purpose, delivery.destination) == (DELIVERED, SIGN_IN, ADDRESS)
    page = text(browser.get(VERIFY))
    box = status_box(page)
    assert "Delivered." in box and "Check again" not in box
    # The outbox's "delivered" may still be failed by `flask outbox --fail`: it keeps asking.
    assert POLLING in box


def test_at_sign_in_delivered_says_to_look_in_the_spam_folder_once(browser, factory):
    """The sign-in's code box has no spam line of its own: "Delivered." says it (a set-up's
    box says it under its field, and its status doesn't: tests/test_setup_delivery.py)."""
    family_with(factory, EMAIL)
    browser.login(ADDRESS)  # the outbox: delivered at once
    hint = "If it isn't in your inbox, look in your spam folder."
    page = browser.get(VERIFY)
    assert "<html" in text(page) and text(page).count(hint) == 1
    assert text(browser.get(STATUS, htmx=True)).count(hint) == 1


def test_a_sendgrid_code_keeps_its_x_message_id_and_the_code_box_polls(browser, factory, sendgrid):
    family_with(factory, EMAIL)
    assert browser.login(ADDRESS).status_code == 303
    delivery = newest_delivery()
    assert (delivery.provider, delivery.state) == (SENDGRID, SENT)
    assert delivery.message_id == sendgrid.message_ids[-1]
    assert delivery.code_id is not None
    box = status_box(text(browser.get(VERIFY)))
    assert POLLING in box and f'hx-get="{STATUS}"' in box
    assert f'href="{VERIFY}"' in box and "Check again" in box  # without JavaScript


def test_a_vonage_code_keeps_its_message_id(app, factory, certificate, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert_file))
    user = factory.family(email=ADDRESS)
    with FakeProvider(Answer(body=VONAGE_SENT), tls=certificate.server_context()) as vonage:
        app.config.update(
            VONAGE_API_KEY="test-key", VONAGE_API_SECRET="test-secret", VONAGE_REST_HOST=vonage.host
        )
        with app.test_request_context():
            assert codes.send(user, SIGN_IN, SMS_KIND, PHONE).ok
    delivery = newest_delivery()
    assert (delivery.provider, delivery.state, delivery.channel) == (VONAGE, SENT, SMS)
    assert delivery.message_id == vonage.message_ids[-1] != VONAGE_SENT["messages"][0]["message-id"]


def test_a_failed_send_keeps_no_delivery(app, factory, sendgrid):
    user = factory.family(email=ADDRESS)
    sendgrid.answer_with(500, {"errors": [{"message": "down"}]})
    with app.test_request_context():
        assert codes.send(user, SIGN_IN, EMAIL_KIND, ADDRESS).status == 502
    assert CodeDelivery.select().count() == 0


# The code box ---------------------------------------------------------------------------


def bounce(browser_or_client, clock, message_id):
    client = getattr(browser_or_client, "client", browser_or_client)
    events = [{"event": "bounce", "type": "bounce", "sg_message_id": f"{message_id}.filter1"}]
    assert sendgrid_post(client, events, clock).status_code == 204


@pytest.mark.parametrize("alternatives", [False, True])
def test_a_bounce_after_the_send_turns_the_alert_on(
    app, browser, factory, sendgrid, clock, alternatives
):
    family_with(factory, EMAIL, *([SMS] if alternatives else []))
    browser.login(ADDRESS)
    if alternatives:  # the picker first: choose the email
        method = VerificationMethod.get(VerificationMethod.kind == EMAIL)
        browser.post("/login/verify/method", {"method_id": method.id})
    polled = browser.get(STATUS, htmx=True)
    assert polled.status_code == 200 and "<html" not in text(polled)
    assert POLLING in text(polled) and ALERT not in text(polled)

    clock.advance(seconds=20)
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])

    # With JavaScript: the next poll brings the alert and stops polling (a final state).
    polled = text(browser.get(STATUS, htmx=True))
    assert ALERT in polled and 'role="alert"' in polled
    assert POLLING not in polled and "Check again" not in polled
    # The ways on are the code box's own buttons, below: the alert says which, has none.
    assert ("Try another method." in polled) is alternatives
    assert "<form" not in polled and "<button" not in polled and "button-row" not in polled
    # Without JavaScript: the page shows it when loaded.
    page = text(browser.get(VERIFY))
    assert ALERT in page and ("Try another method." in page) is alternatives


def test_a_bounce_that_comes_before_its_send_is_recorded_waits_for_it(
    app, browser, factory, sendgrid, clock, monkeypatch
):
    """The webhook can be quicker than the request that sent the code: a report on a
    message id no send has recorded is kept, and the send that records that id takes it."""
    from models.deliveries import EarlyReport
    from tests import fake_providers

    monkeypatch.setattr(fake_providers, "sendgrid_message_id", lambda: "quick-bounce-id")
    family_with(factory, EMAIL)
    bounce(app.test_client(), clock, "quick-bounce-id")  # before the send
    assert CodeDelivery.select().count() == 0
    assert [(row.message_id, row.state) for row in EarlyReport.select()] == [
        ("quick-bounce-id", FAILED)
    ]

    browser.login(ADDRESS)
    delivery = newest_delivery()
    assert (delivery.message_id, delivery.state, delivery.reason) == (
        "quick-bounce-id",
        FAILED,
        "bounced",
    )
    assert EarlyReport.select().count() == 0  # taken
    assert ALERT in text(browser.get(VERIFY))


def test_reports_for_ids_no_send_records_are_purged_after_a_day(app, factory, clock):
    from models.deliveries import EarlyReport
    from services.housekeeping import purge

    bounce(app.test_client(), clock, "not-ours")
    clock.advance(hours=23)
    assert purge()["early_delivery_reports"] == 0
    clock.advance(hours=2)
    assert purge()["early_delivery_reports"] == 1
    assert EarlyReport.select().count() == 0


def test_an_early_report_taken_twice_moves_the_delivery_once(factory, clock):
    """A report applied by the send and by the webhook's own second look (both can see the
    other's row) changes the state and logs the failure once."""
    from models.events import DELIVERY_FAILED, SecurityEvent
    from services.methods.deliveries import Outcome

    user = family_with(factory, EMAIL)
    deliveries.apply(SENDGRID, [Outcome("twice", FAILED, "bounced")])
    delivery(user, message_id="twice")  # the send, recorded after the report came
    assert deliveries.take_early_reports(SENDGRID, "twice") == 1
    assert deliveries.apply(SENDGRID, [Outcome("twice", FAILED, "bounced")]) == 0
    assert deliveries.take_early_reports(SENDGRID, "twice") == 0
    assert (newest_delivery().state, newest_delivery().reason) == (FAILED, "bounced")
    assert SecurityEvent.select().where(SecurityEvent.kind == DELIVERY_FAILED).count() == 1


def test_send_new_code_after_a_bounce_starts_a_new_delivery(app, browser, factory, sendgrid, clock):
    family_with(factory, EMAIL)
    browser.login(ADDRESS)
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])
    clock.advance(seconds=31)
    response = browser.post("/login/verify/resend", htmx=True)
    assert response.status_code == 200
    box = status_box(text(response))
    assert ALERT not in box and POLLING in box
    assert [row.state for row in CodeDelivery.select().order_by(CodeDelivery.id)] == [FAILED, SENT]


def test_polling_stops_after_two_minutes_but_check_again_stays(browser, factory, sendgrid, clock):
    family_with(factory, EMAIL)
    browser.login(ADDRESS)
    clock.advance(seconds=119)
    assert POLLING in text(browser.get(STATUS, htmx=True))
    clock.advance(seconds=1)
    polled = text(browser.get(STATUS, htmx=True))
    assert POLLING not in polled
    # "Check again" still asks once, replacing the whole box (with or without JavaScript).
    check_again = re.search(r"<a [^>]*>Check again</a>", polled).group(0)
    assert f'href="{VERIFY}"' in check_again and f'hx-get="{STATUS}"' in check_again
    assert 'hx-target="#delivery-status"' in check_again and 'hx-swap="outerHTML"' in check_again


def test_the_status_without_htmx_is_the_code_box_page(browser, factory, sendgrid):
    family_with(factory, EMAIL)
    browser.login(ADDRESS)
    response = browser.get(STATUS)
    assert response.status_code == 303 and response.headers["Location"].endswith(VERIFY)


def test_the_status_needs_a_pending_sign_in(browser):
    response = browser.get(STATUS, htmx=True)
    assert response.headers.get("HX-Redirect", "").startswith("/login")


def test_an_earlier_sign_ins_failure_is_not_shown(app, browser, factory, sendgrid, clock):
    user = family_with(factory, EMAIL)
    deliveries.apply(
        SENDGRID,
        [
            deliveries.Outcome(
                deliveries.record_send(
                    user,
                    None,
                    purpose=SIGN_IN,
                    channel=EMAIL,
                    destination=ADDRESS,
                    provider=SENDGRID,
                    message_id="old",
                ).message_id,
                FAILED,
                "bounced",
            )
        ],
    )
    clock.advance(minutes=30)
    browser.login(ADDRESS)
    assert ALERT not in text(browser.get(VERIFY))


# The window, the admin's page, the activity, the outbox ----------------------------------


def run_cli(app, *args):
    return app.test_cli_runner().invoke(args=["outbox", *args])


def test_flask_outbox_fail_marks_the_newest_code_to_that_address(app, browser, factory, clock):
    family_with(factory, EMAIL)
    browser.login(ADDRESS)
    clock.advance(seconds=31)
    browser.post("/login/verify/resend")
    first, newest = CodeDelivery.select().order_by(CodeDelivery.id)
    result = run_cli(app, "--fail", ADDRESS)
    assert result.exit_code == 0, result.output
    assert "as failed: the address bounced." in result.output
    assert CodeDelivery.get_by_id(newest.id).state == FAILED
    assert CodeDelivery.get_by_id(first.id).state == DELIVERED
    assert ALERT in text(browser.get(VERIFY))


def test_flask_outbox_fail_says_when_there_is_nothing_to_fail(app, db):
    result = run_cli(app, "--fail", "nobody@example.com")
    assert result.exit_code != 0
    assert "no verification code to nobody@example.com" in result.output


def send_and_fail(app, user, clock, kind=EMAIL_KIND, destination=ADDRESS):
    clock.advance(seconds=31)
    with app.test_request_context():
        assert codes.send(user, SIGN_IN, kind, destination).ok
    assert run_cli(app, "--fail", destination).exit_code == 0


def test_the_window_says_when_the_last_two_codes_failed(app, browser, factory, clock):
    user = factory.family(email=ADDRESS)
    VerificationMethod.create(user=user, kind=EMAIL, destination=ADDRESS)
    browser.login(ADDRESS)
    note = "The last two codes sent to p•••@example.com didn't arrive: the address bounced."

    send_and_fail(app, user, clock)
    page = text(browser.get("/profile/2sv"))
    assert note not in page
    assert "Verification code not delivered — p•••@example.com" in page  # the activity

    send_and_fail(app, user, clock)
    page = text(browser.get("/profile/2sv"))
    assert note in page and "Delete this method and add it again" in page

    clock.advance(seconds=31)
    with app.test_request_context():
        codes.send(user, SIGN_IN, EMAIL_KIND, ADDRESS)  # the outbox: delivered
    assert note not in text(browser.get("/profile/2sv"))


def test_the_admin_sees_each_methods_last_delivery(app, browser, db, clock):
    seed()
    parent = User.by_email("parent@example.com")
    VerificationMethod.create(user=parent, kind=EMAIL, destination="parent@example.com")
    VerificationMethod.create(user=parent, kind=SMS, destination=PHONE)
    with app.test_request_context():
        assert codes.send(parent, SIGN_IN, SMS_KIND, PHONE).ok
    send_and_fail(app, parent, clock, destination="parent@example.com")
    sign_in(browser, "admin@example.com")

    page = text(browser.get(f"/admin/people/{parent.id}"))
    cells = dict(
        re.findall(r'<th scope="row">([^<]+)</th>.*?<td class="delivery-(\w+)">', page, re.S)
    )
    assert cells == {"Email": "failed", "Text Message": "delivered"}
    assert "not delivered</strong>, the address bounced" in page
    assert "Verification code not delivered" in page  # the person's recent activity
    activity = text(browser.get(f"/admin/activity?person={parent.id}"))
    assert "Verification code not delivered" in activity


def test_a_reset_links_code_box_shows_the_bounce_too(app, browser, factory, clock):
    from tests.test_passwords import ask_for_link, last_token, reset_url

    family_with(factory, EMAIL, SMS)
    ask_for_link(browser, ADDRESS)
    token = last_token(ADDRESS)
    method = VerificationMethod.get(VerificationMethod.kind == EMAIL)
    browser.get(reset_url(token))
    assert browser.post(reset_url(token, "/method"), {"method_id": method.id}).status_code == 200
    status = reset_url(token, "/delivery")
    polled = text(browser.get(status, htmx=True))
    assert POLLING in polled and f'hx-get="{status}"' in polled and ALERT not in polled

    assert run_cli(app, "--fail", ADDRESS).exit_code == 0
    polled = text(browser.get(status, htmx=True))
    assert ALERT in polled and POLLING not in polled and "Try another method." in polled
    # The ways on are the code box's own buttons (tests below count them): the alert has none.
    assert "<form" not in polled and "<button" not in polled and "button-row" not in polled
    assert ALERT in text(browser.get(reset_url(token)))  # without JavaScript
    assert browser.get(status).status_code == 303  # the status alone is for HTMX
    # The sign-in's status knows nothing of a reset link's codes.
    assert browser.get(STATUS, htmx=True).headers.get("HX-Redirect", "").startswith("/login")


# Said once: Send new code and Try another method ----------------------------------------


def buttons(page: str, name: str) -> list[str]:
    """The buttons named `name` (a form's, or a link shown as a button), each with the form
    around it when it has one."""
    pattern = rf"<(?:button|a) [^>]*>\s*{re.escape(name)}\s*</(?:button|a)>"
    forms = re.findall(r"<form [^>]*>.*?</form>", page, re.S)
    in_forms = [form for form in forms if re.search(pattern, form)]
    outside = re.findall(pattern, re.sub(r"<form [^>]*>.*?</form>", "", page, flags=re.S))
    return in_forms + outside


def on_screen(page: str, polled: str) -> str:
    """What an HTMX page shows once a poll swapped `polled` into its status box."""
    return page.replace(status_box(page), polled)


def assert_each_way_on_once(shown: str, resend: str, alternatives: bool) -> None:
    """The failure alert is on, with one Send new code (posting to `resend`, with HTMX or
    without) and Try another method once when there is another method, else not at all."""
    assert ALERT in shown
    [send] = buttons(shown, "Send new code")
    assert f'action="{resend}"' in send and f'hx-post="{resend}"' in send
    assert len(buttons(shown, "Try another method")) == (1 if alternatives else 0)
    assert not re.search(r'<div class="button-row[^"]*">\s*</div>', shown)  # no empty row


@pytest.mark.parametrize("alternatives", [False, True], ids=["one method", "two methods"])
def test_at_sign_in_a_failure_shows_send_new_code_and_try_another_method_once(
    app, browser, factory, alternatives
):
    """Polling swaps the status alone, so the alert repeats none of the code box's buttons:
    after the poll, on the component HTMX swaps in and on the page without JavaScript."""
    family_with(factory, EMAIL, *([SMS] if alternatives else []))
    browser.login(ADDRESS)  # the outbox: delivered at once, still polled
    if alternatives:  # the picker first: choose the email
        method = VerificationMethod.get(VerificationMethod.kind == EMAIL)
        browser.post("/login/verify/method", {"method_id": method.id})
    before = text(browser.get(VERIFY))
    assert "Delivered." in status_box(before) and POLLING in status_box(before)
    assert len(buttons(before, "Send new code")) == 1

    assert run_cli(app, "--fail", ADDRESS).exit_code == 0
    polled = text(browser.get(STATUS, htmx=True))
    assert buttons(polled, "Send new code") == buttons(polled, "Try another method") == []
    component = browser.get(VERIFY, htmx=True)
    assert "<html" not in text(component)
    full = browser.get(VERIFY)
    assert is_full_page(full)
    for shown in (on_screen(before, polled), text(component), text(full)):
        assert_each_way_on_once(shown, "/login/verify/resend", alternatives)


@pytest.mark.parametrize("alternatives", [False, True], ids=["one method", "two methods"])
def test_on_a_reset_link_a_failure_shows_send_new_code_and_try_another_method_once(
    app, browser, factory, alternatives
):
    from tests.test_passwords import ask_for_link, last_token, reset_url

    family_with(factory, EMAIL, *([SMS] if alternatives else []))
    ask_for_link(browser, ADDRESS)
    token = last_token(ADDRESS)
    method = VerificationMethod.get(VerificationMethod.kind == EMAIL)
    browser.get(reset_url(token))
    assert browser.post(reset_url(token, "/method"), {"method_id": method.id}).status_code == 200
    before = text(browser.get(reset_url(token)))
    assert "Delivered." in status_box(before) and POLLING in status_box(before)
    assert len(buttons(before, "Send new code")) == 1

    assert run_cli(app, "--fail", ADDRESS).exit_code == 0
    polled = text(browser.get(reset_url(token, "/delivery"), htmx=True))
    assert buttons(polled, "Send new code") == buttons(polled, "Try another method") == []
    component = browser.get(reset_url(token), htmx=True)
    assert "<html" not in text(component)
    full = browser.get(reset_url(token))
    assert is_full_page(full)
    for shown in (on_screen(before, polled), text(component), text(full)):
        assert_each_way_on_once(shown, reset_url(token, "/resend"), alternatives)
    if alternatives:  # the box's own: the picker, with JavaScript or without
        [other] = buttons(text(full), "Try another method")
        assert f'action="{reset_url(token)}"' in other and 'name="methods"' in other
        assert f'hx-get="{reset_url(token)}?methods=1"' in other


def test_without_javascript_the_code_boxs_send_new_code_sends_a_new_code(
    app, browser, factory, clock
):
    family_with(factory, EMAIL)
    browser.login(ADDRESS)
    assert run_cli(app, "--fail", ADDRESS).exit_code == 0
    [send] = buttons(text(browser.get(VERIFY)), "Send new code")
    assert 'method="post"' in send and 'name="csrf_token"' in send
    clock.advance(seconds=31)
    response = browser.post("/login/verify/resend")  # that plain form
    assert response.status_code == 200 and is_full_page(response)
    page = text(response)
    assert ALERT not in page and "Delivered." in status_box(page)
    assert len(buttons(page, "Send new code")) == 1
    assert [row.state for row in CodeDelivery.select().order_by(CodeDelivery.id)] == [
        FAILED,
        DELIVERED,
    ]


def test_a_code_the_provider_gave_no_id_for_promises_no_report(browser, factory, sendgrid):
    """Delivery unknown (no answer, no id): no webhook can name it, so nothing is polled."""
    family_with(factory, EMAIL)
    browser.login(ADDRESS)
    CodeDelivery.update(message_id=None).execute()
    box = status_box(text(browser.get(VERIFY)))
    assert POLLING not in box and "Sent." not in box and "Check again" not in box
