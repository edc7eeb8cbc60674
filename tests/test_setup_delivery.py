"""Delivery status in the Add-method code box (issue 20): when an email address or phone is
being added, the box below its field says what became of the code sent there - sent,
delivered, or not delivered and why, asking to check what was typed - polled with HTMX, on
the next load without JavaScript; the same in a staff member's forced set-up at sign-in."""

import re

import pytest

from models.deliveries import FAILED, SENT, CodeDelivery
from models.people import User
from models.verification import ENROL, SMS, VerificationMethod
from tests.conftest import is_fragment, is_full_page
from tests.test_deliveries import (  # noqa: F401 (app_config: the fake SendGrid, the webhook on)
    POLLING,
    app_config,
    bounce,
    newest_delivery,
    run_cli,
    status_box,
    text,
)
from tests.test_webhooks import sendgrid_post
from tests.test_window import last_code

ADDRESS = "pat@example.com"
PHONE = "+12015550123"
WINDOW = "/profile/2sv"
SETUP = "/login/verify/setup"
SEND = "/profile/2sv/methods/email/send"
STATUS = "/profile/2sv/methods/email/delivery"
SMS_STATUS = "/profile/2sv/methods/text-message/delivery"
ALERT = "We couldn't deliver the code to p•••@example.com: the address bounced."
CHECK_ADDRESS = "Check the address above: if it's wrong, correct it and send a new code."
CHECK_NUMBER = "Check the number above: if it's wrong, correct it and send a new code."


@pytest.fixture
def parent(factory):
    return factory.family(email=ADDRESS)


@pytest.fixture
def signed_in(browser, parent):
    assert browser.login(ADDRESS).status_code == 303
    return browser


def send_setup_code(browser, page=WINDOW, destination=ADDRESS, slug="email"):
    """Open the tab and send a code to `destination`, as the tab's form does with HTMX."""
    browser.get(f"{page}?tab={slug}")
    response = browser.post(
        f"/profile/2sv/methods/{slug}/send", {"destination": destination}, htmx=True
    )
    assert response.status_code == 200, text(response)
    return response


def deliver(app, clock, message_id):
    """SendGrid's signed report that the message was delivered (its webhook has no cookie)."""
    events = [{"event": "delivered", "sg_message_id": f"{message_id}.filter1"}]
    assert sendgrid_post(app.test_client(), events, clock).status_code == 204


SPAM_HINTS = (
    "Not there? Check your spam folder.",  # the code box's own line, under the field
    "If it isn't in your inbox, look in your spam folder.",  # the sign-in status's "Delivered."
)


def spam_hints(page: str) -> int:
    """How often the code box tells to look in the spam folder."""
    return sum(page.count(hint) for hint in SPAM_HINTS)


def send_new_code_forms(page: str) -> list[str]:
    """The forms whose button is "Send new code"."""
    forms = re.findall(r"<form [^>]*>.*?</form>", page, re.S)
    return [
        form for form in forms if re.search(r"<button [^>]*>\s*Send new code\s*</button>", form)
    ]


def on_screen(fragment: str, polled: str) -> str:
    """What an HTMX page shows once a poll swapped `polled` into `fragment`'s status box."""
    return fragment.replace(status_box(fragment), polled)


def sign_in_to_add(browser, factory, staff: bool) -> str:
    """A family login (the window) or a staff login without a method (the forced set-up),
    signed in; the page holding their tabs."""
    (factory.staff if staff else factory.family)(email=ADDRESS)
    assert browser.login(ADDRESS).status_code == 303
    return SETUP if staff else WINDOW


# Right after the send ----------------------------------------------------------------------


def test_right_after_the_send_the_box_says_sent_and_keeps_asking(signed_in, sendgrid):
    response = send_setup_code(signed_in)
    delivery = newest_delivery()
    assert (delivery.purpose, delivery.destination, delivery.state) == (ENROL, ADDRESS, SENT)
    box = status_box(text(response))
    assert "Sent. We'll show here if it can't be delivered." in box
    assert ALERT not in box and 'role="alert"' not in box
    assert POLLING in box and f'hx-get="{STATUS}"' in box
    # "Check again" without JavaScript loads the window with the tab open.
    check_again = re.search(r"<a [^>]*>Check again</a>", box).group(0)
    assert f'href="{WINDOW}?tab=email"' in check_again and f'hx-get="{STATUS}"' in check_again
    assert "/login/verify" not in box  # nothing of the sign-in's

    polled = signed_in.get(STATUS, htmx=True)
    assert polled.status_code == 200 and is_fragment(polled)
    assert status_box(text(polled)).strip() == box.strip()


def test_before_any_send_the_tab_has_no_status_box(signed_in, sendgrid):
    page = text(signed_in.get(f"{WINDOW}?tab=email"))
    assert 'id="delivery-status"' not in page
    response = signed_in.get(STATUS, htmx=True)
    assert response.headers["HX-Redirect"] == f"{WINDOW}?tab=email"


# The provider's reports --------------------------------------------------------------------


def test_a_delivered_report_says_delivered_and_stops_asking(app, signed_in, sendgrid, clock):
    send_setup_code(signed_in)
    clock.advance(seconds=5)
    deliver(app, clock, sendgrid.message_ids[-1])
    polled = text(signed_in.get(STATUS, htmx=True))
    assert "Delivered." in polled
    assert POLLING not in polled and "Check again" not in polled and ALERT not in polled


def test_a_bounce_says_why_asks_to_check_the_address_and_offers_the_set_ups_ways_on(
    app, signed_in, sendgrid, clock
):
    send_setup_code(signed_in)
    clock.advance(seconds=20)
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])

    polled = text(signed_in.get(STATUS, htmx=True))
    assert ALERT in polled and CHECK_ADDRESS in polled and 'role="alert"' in polled
    assert "recovery code" not in polled and "Try another method." not in polled
    assert POLLING not in polled and "Check again" not in polled
    # The ways on are the set-up's: the field's own Send new code above (to what is typed
    # there, corrected or not), or open another method's tab; the alert sends nothing itself.
    assert '<form method="post"' not in polled and "Send new code" not in polled
    other = re.search(r'<form method="get".*?</form>', polled, re.S).group(0)
    assert f'action="{WINDOW}"' in other and 'name="tab" value="authenticator"' in other
    assert 'hx-get="/profile/2sv/methods/authenticator"' in other and "Try another method" in other
    assert "/login/verify" not in polled

    # The field's "Send new code", the address unchanged: a new code there, the alert gone.
    clock.advance(seconds=31)
    response = signed_in.post(SEND, {"destination": ADDRESS}, htmx=True)
    box = status_box(text(response))
    assert ALERT not in box and POLLING in box
    assert [row.state for row in CodeDelivery.select().order_by(CodeDelivery.id)] == [FAILED, SENT]

    # "Try another method": that tab opens in place.
    tab = text(signed_in.get("/profile/2sv/methods/authenticator?tab=authenticator", htmx=True))
    assert 'id="panel-authenticator"' in tab


def test_without_javascript_the_status_is_the_page_which_shows_the_same(
    app, signed_in, sendgrid, clock
):
    send_setup_code(signed_in)
    response = signed_in.get(STATUS)
    assert response.status_code == 303 and response.headers["Location"] == f"{WINDOW}?tab=email"

    bounce(app.test_client(), clock, sendgrid.message_ids[-1])
    assert signed_in.get(STATUS).headers["Location"] == f"{WINDOW}?tab=email"
    page = signed_in.get(f"{WINDOW}?tab=email")
    assert is_full_page(page)
    box = status_box(text(page))
    assert ALERT in box and CHECK_ADDRESS in box


def test_a_failed_text_message_asks_to_check_the_number(app, signed_in, clock):
    send_setup_code(signed_in, destination="(201) 555-0123", slug="text-message")
    assert run_cli(app, "--fail", PHONE).exit_code == 0
    polled = text(signed_in.get(SMS_STATUS, htmx=True))
    assert "We couldn't deliver the code to •••-•••-0123:" in polled
    assert CHECK_NUMBER in polled and "Send new code" not in polled
    # Send new code is the number field's, with the number to check in it.
    [form] = send_new_code_forms(text(signed_in.get(f"{WINDOW}?tab=text-message")))
    assert 'action="/profile/2sv/methods/text-message/send"' in form
    assert re.search(rf'<input [^>]*type="tel"[^>]*value="{re.escape(PHONE)}"', form)


# Said once: the spam hint, and Send new code --------------------------------------------


@pytest.mark.parametrize("staff", [False, True], ids=["window", "forced set-up"])
def test_a_delivered_email_says_to_look_in_the_spam_folder_once(browser, factory, staff):
    page = sign_in_to_add(browser, factory, staff)
    fragment = text(send_setup_code(browser, page=page))  # the outbox: delivered at once
    assert "Delivered." in status_box(fragment)
    assert spam_hints(fragment) == 1
    polled = text(browser.get(STATUS, htmx=True))
    assert "Delivered." in polled and spam_hints(on_screen(fragment, polled)) == 1
    # Without JavaScript: the send's answer is the page, and so is a later load.
    response = browser.post(SEND, {"destination": ADDRESS})
    assert response.status_code == 200 and is_full_page(response)
    assert "Delivered." in status_box(text(response)) and spam_hints(text(response)) == 1
    full = browser.get(f"{page}?tab=email")
    assert is_full_page(full) and spam_hints(text(full)) == 1


def test_the_spam_hint_stays_once_when_the_status_turns_to_delivered(
    app, signed_in, sendgrid, clock
):
    fragment = text(send_setup_code(signed_in))
    assert "Sent." in status_box(fragment) and spam_hints(fragment) == 1
    deliver(app, clock, sendgrid.message_ids[-1])
    polled = text(signed_in.get(STATUS, htmx=True))
    assert "Delivered." in polled and spam_hints(on_screen(fragment, polled)) == 1
    assert spam_hints(text(signed_in.get(f"{WINDOW}?tab=email"))) == 1


@pytest.mark.parametrize("staff", [False, True], ids=["window", "forced set-up"])
def test_after_a_failure_the_one_send_new_code_is_the_fields(
    app, browser, factory, sendgrid, clock, staff
):
    """The alert asks to check what was typed: the field's Send new code sends to what is
    typed there now; a second one sending to the address first used would undo a correction."""
    page = sign_in_to_add(browser, factory, staff)
    fragment = text(send_setup_code(browser, page=page))
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])

    polled = text(browser.get(STATUS, htmx=True))
    assert ALERT in polled and CHECK_ADDRESS in polled and send_new_code_forms(polled) == []
    tab = text(browser.get("/profile/2sv/methods/email", htmx=True))
    full = browser.get(f"{page}?tab=email")
    assert is_full_page(full)
    for shown in (on_screen(fragment, polled), tab, text(full)):
        assert ALERT in shown
        [form] = send_new_code_forms(shown)
        assert f'action="{SEND}"' in form and f'hx-post="{SEND}"' in form
        assert re.search(rf'<input [^>]*type="email"[^>]*value="{ADDRESS}"', form)
        assert 'type="hidden" name="destination"' not in form


def test_without_javascript_send_new_code_sends_to_the_corrected_address(
    app, signed_in, sendgrid, clock
):
    send_setup_code(signed_in, destination="pat@exampel.com")
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])
    page = text(signed_in.get(f"{WINDOW}?tab=email"))
    assert "We couldn't deliver the code to p•••@exampel.com" in page
    [form] = send_new_code_forms(page)
    assert 'value="pat@exampel.com"' in form  # what was typed, to correct

    clock.advance(seconds=5)
    response = signed_in.post(SEND, {"destination": ADDRESS})  # the plain form, corrected
    assert response.status_code == 200 and is_full_page(response)
    box = status_box(text(response))
    assert "the address bounced" not in box and "Sent." in box
    assert newest_delivery().destination == ADDRESS
    assert len(send_new_code_forms(text(response))) == 1


# Which set-up, whose ----------------------------------------------------------------------


def test_a_new_address_starts_again_without_the_old_ones_failure(app, signed_in, sendgrid, clock):
    send_setup_code(signed_in, destination="pat@exampel.com")
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])
    assert "the address bounced" in text(signed_in.get(STATUS, htmx=True))
    clock.advance(seconds=5)
    response = send_setup_code(signed_in, destination=ADDRESS)
    box = status_box(text(response))
    assert "the address bounced" not in box and "Sent." in box
    assert "the address bounced" not in text(signed_in.get(STATUS, htmx=True))


def test_a_sign_in_codes_failure_to_the_same_address_is_not_the_set_ups(
    app, signed_in, parent, sendgrid, clock
):
    from tests.test_webhooks import delivery

    send_setup_code(signed_in)
    failed = delivery(parent, message_id="sign-in-code")  # a sign-in code, later, bounced
    bounce(app.test_client(), clock, failed.message_id)
    polled = text(signed_in.get(STATUS, htmx=True))
    assert ALERT not in polled and "Sent." in polled


def test_once_the_method_is_saved_the_status_leads_to_the_page(signed_in, clock):
    send_setup_code(signed_in)  # the outbox: delivered at once, still asked again
    assert "Delivered." in text(signed_in.get(STATUS, htmx=True))
    response = signed_in.post(
        "/profile/2sv/methods/email/confirm", {"code": last_code(ADDRESS)}, htmx=True
    )
    assert response.status_code == 200
    assert VerificationMethod.select().count() == 1
    assert signed_in.get(STATUS, htmx=True).headers["HX-Redirect"] == f"{WINDOW}?tab=email"
    assert signed_in.get(STATUS).status_code == 303


def test_another_person_sees_nothing_of_it(app, signed_in, factory, new_browser, sendgrid, clock):
    send_setup_code(signed_in)
    bounce(app.test_client(), clock, sendgrid.message_ids[-1])

    factory.family(email="sam@example.com")
    other = new_browser()
    assert other.login("sam@example.com").status_code == 303
    response = other.get(STATUS, htmx=True)
    assert response.headers["HX-Redirect"] == f"{WINDOW}?tab=email"
    assert "p•••@example.com" not in text(response)
    page = text(other.get(f"{WINDOW}?tab=email"))
    assert 'id="delivery-status"' not in page and "p•••@example.com" not in page

    stranger = new_browser()  # signed out: the sign-in page, as for every tab
    response = stranger.get(STATUS, htmx=True)
    assert response.headers.get("HX-Redirect", "").startswith("/login")
    assert "p•••" not in text(response)


@pytest.mark.parametrize(
    "path",
    [
        "/profile/2sv/methods/fax/delivery",
        "/profile/2sv/methods/authenticator/delivery",
        "/profile/2sv/methods/security-key/delivery",
        "/profile/2sv/methods/12/delivery",
        "/profile/2sv/methods/e%27mail/delivery",
    ],
)
def test_a_kind_that_gets_no_code_is_not_found(signed_in, path):
    assert signed_in.get(path, htmx=True).status_code == 404
    assert signed_in.get(path).status_code == 404


def test_a_kind_the_staff_policy_leaves_out_is_not_found(app, browser, factory):
    app.config["STAFF_METHODS"] = "totp,sms"
    factory.staff(email="terry@example.com")
    browser.login("terry@example.com")
    assert browser.get(STATUS, htmx=True).status_code == 404


# The staff's forced set-up at sign-in ---------------------------------------------------


def test_the_forced_set_up_shows_the_status_too(app, browser, factory, sendgrid, clock):
    factory.staff(email=ADDRESS)
    assert browser.login(ADDRESS).headers["Location"] == SETUP
    response = send_setup_code(browser, page=SETUP)
    box = status_box(text(response))
    assert POLLING in box and f'hx-get="{STATUS}"' in box
    assert f'href="{SETUP}?tab=email"' in box

    bounce(app.test_client(), clock, sendgrid.message_ids[-1])
    polled = text(browser.get(STATUS, htmx=True))
    assert ALERT in polled and CHECK_ADDRESS in polled
    assert f'action="{SEND}"' not in polled and f'action="{SETUP}"' in polled  # the field's resend
    assert 'name="tab" value="authenticator"' in polled

    # Without JavaScript: the set-up page, showing it.
    response = browser.get(STATUS)
    assert response.status_code == 303 and response.headers["Location"] == f"{SETUP}?tab=email"
    page = browser.get(response.headers["Location"])
    assert is_full_page(page) and ALERT in status_box(text(page))


def test_a_staff_member_who_must_prove_a_method_first_gets_no_status(browser, factory):
    """Staff with a saved method prove it before any set-up (Decisions 20): the set-up's
    status is not theirs to ask for yet."""
    staff = factory.staff(email=ADDRESS, two_step=True)
    VerificationMethod.create(user=staff, kind=SMS, destination=PHONE)
    browser.login(ADDRESS)
    response = browser.get(STATUS, htmx=True)
    assert response.headers.get("HX-Redirect", "").startswith("/login")


def test_in_spanish_the_alert_asks_to_check_the_number(app, signed_in, parent):
    User.update(language="es").where(User.id == parent.id).execute()
    send_setup_code(signed_in, destination="(201) 555-0123", slug="text-message")
    assert run_cli(app, "--fail", PHONE).exit_code == 0
    polled = text(signed_in.get(SMS_STATUS, htmx=True))
    assert "No pudimos entregar el código a •••-•••-0123:" in polled
    assert "Revisa el número de arriba: si está mal, corrígelo y envía un código nuevo." in polled
    assert "Enviar un código nuevo" not in polled and "Probar otro método" in polled
    page = text(signed_in.get(f"{WINDOW}?tab=text-message"))
    assert len(re.findall(r"<button [^>]*>\s*Enviar un código nuevo\s*</button>", page)) == 1
