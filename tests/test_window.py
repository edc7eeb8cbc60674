"""The 2-Step Verification window: tabs, adding each kind of method, the toggle, delete,
sign out other sessions, sudo mode and bad input."""

import html
import re
from datetime import UTC

import pyotp
import pytest

from models import crypto
from models.events import SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.sessions import UserSession
from models.verification import OneTimeCode, PendingSetup, VerificationMethod
from tests.conftest import is_fragment, is_full_page

WINDOW = "/profile/2sv"
ADDED_SUBJECT = "A two-factor authentication device has been added"


def text(response):
    return html.unescape(response.get_data(as_text=True))


def last_code(to):
    message = (
        OutboxMessage.select()
        .where(OutboxMessage.to == to)
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def shown_key(response):
    match = re.search(r'class="secret-key"[^>]*>([A-Z2-7 ]+)<', text(response))
    return match.group(1).replace(" ", "")


def totp_now(secret, clock, offset_steps=0):
    moment = clock().replace(tzinfo=UTC)
    return pyotp.TOTP(secret).at(moment, counter_offset=offset_steps)


@pytest.fixture
def family(factory):
    return factory.family(email="pat@example.com", name="Pat Parent")


@pytest.fixture
def signed_in(browser, family):
    browser.login("pat@example.com")
    return browser


def add_email(browser, address="pat@example.com"):
    browser.get(WINDOW + "?tab=email")
    browser.post("/profile/2sv/methods/email/send", {"destination": address})
    return browser.post("/profile/2sv/methods/email/confirm", {"code": last_code(address)})


def add_authenticator(browser, clock):
    page = browser.post("/profile/2sv/methods/authenticator/start")
    secret = shown_key(page)
    response = browser.post(
        "/profile/2sv/methods/authenticator/confirm", {"code": totp_now(secret, clock)}
    )
    return secret, response


# --- the page and its tabs --------------------------------------------------------------


def test_window_shows_status_methods_tabs_and_activity(signed_in):
    page = signed_in.get(WINDOW)
    body = text(page)
    assert page.status_code == 200 and is_full_page(page)
    assert 'role="switch"' in body and "2-Step Verification" in body
    assert 'role="tablist"' in body
    for label in ("Authenticator App", "Email", "Text Message"):
        assert f">{label}</a>" in body
    assert "Recent security activity" in body
    assert "Sign out other sessions" in body


@pytest.mark.parametrize("slug", ["authenticator", "email", "text-message"])
def test_tab_is_a_fragment_for_htmx_and_a_full_page_without(signed_in, slug):
    fragment = signed_in.get(f"/profile/2sv/methods/{slug}", htmx=True)
    assert fragment.status_code == 200 and is_fragment(fragment)
    assert 'id="method-tabs"' in text(fragment)
    assert f'id="tab-{slug}"' in text(fragment)
    assert re.search(rf'id="tab-{slug}"[^>]*aria-selected="true"', text(fragment), re.S)
    page = signed_in.get(f"{WINDOW}?tab={slug}")
    assert is_full_page(page)
    assert re.search(rf'id="tab-{slug}"[^>]*aria-selected="true"', text(page), re.S)
    same = signed_in.get(f"/profile/2sv/methods/{slug}")
    assert is_full_page(same)


def test_unknown_tab_is_404(signed_in):
    assert signed_in.get("/profile/2sv/methods/carrier-pigeon").status_code == 404


def test_email_tab_prefills_the_login_email(signed_in):
    body = text(signed_in.get(WINDOW + "?tab=email"))
    assert 'value="pat@example.com"' in body
    assert "Email address" in body


# --- the authenticator app --------------------------------------------------------------


def test_authenticator_set_up_with_a_code_from_the_shown_key(signed_in, clock, family):
    page = signed_in.post("/profile/2sv/methods/authenticator/start", htmx=True)
    assert is_fragment(page)
    body = text(page)
    assert "<svg" in body and "otpauth" not in body.split("<svg")[0][-50:]
    secret = shown_key(page)
    assert len(secret) == 32  # 160 bits
    # A re-render shows the same key (Decisions 11).
    assert shown_key(signed_in.get(WINDOW + "?tab=authenticator")) == secret
    response = signed_in.post(
        "/profile/2sv/methods/authenticator/confirm", {"code": totp_now(secret, clock)}, htmx=True
    )
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#two-step-window"
    method = VerificationMethod.get(VerificationMethod.user == family)
    assert method.kind == "totp"
    assert crypto.decrypt(method.secret) == secret
    assert secret not in method.secret  # encrypted at rest
    assert PendingSetup.select().count() == 0
    # Once saved, the key is never shown again.
    assert secret not in text(signed_in.get(WINDOW + "?tab=authenticator"))
    email = OutboxMessage.select().where(OutboxMessage.subject == ADDED_SUBJECT).get()
    assert email.to == "pat@example.com" and "Authenticator App" in email.body


def test_authenticator_allows_one_step_of_drift(signed_in, clock, family):
    page = signed_in.post("/profile/2sv/methods/authenticator/start")
    secret = shown_key(page)
    code = totp_now(secret, clock, offset_steps=-1)
    response = signed_in.post("/profile/2sv/methods/authenticator/confirm", {"code": code})
    assert response.status_code == 303
    assert VerificationMethod.select().count() == 1


@pytest.mark.parametrize(
    ("make_code", "message"),
    [
        (
            lambda secret, clock: "000000" if totp_now(secret, clock) != "000000" else "111111",
            "didn't match",
        ),
        (lambda secret, clock: totp_now(secret, clock, offset_steps=-2), "didn't match"),
        (lambda secret, clock: "12ab56", "6-digit code"),
        (lambda secret, clock: "1234567", "6-digit code"),
    ],
)
def test_authenticator_refuses_bad_codes(signed_in, clock, make_code, message):
    secret = shown_key(signed_in.post("/profile/2sv/methods/authenticator/start"))
    response = signed_in.post(
        "/profile/2sv/methods/authenticator/confirm",
        {"code": make_code(secret, clock)},
        htmx=True,
    )
    assert response.status_code == 422
    assert message in text(response)
    assert is_fragment(response)
    assert VerificationMethod.select().count() == 0


def test_enrolment_step_is_not_accepted_again(signed_in, clock, family):
    secret, _ = add_authenticator(signed_in, clock)
    method = VerificationMethod.get(VerificationMethod.user == family)
    from services.methods import totp

    assert totp.verify_method(method, totp_now(secret, clock)) is totp.TotpResult.JUST_USED
    clock.advance(seconds=30)
    assert totp.verify_method(method, totp_now(secret, clock)) is totp.TotpResult.OK


def test_five_wrong_set_up_codes_cancel_the_set_up(signed_in, clock):
    secret = shown_key(signed_in.post("/profile/2sv/methods/authenticator/start"))
    wrong = "000000" if totp_now(secret, clock) != "000000" else "111111"
    for _ in range(4):
        signed_in.post("/profile/2sv/methods/authenticator/confirm", {"code": wrong})
    last = signed_in.post("/profile/2sv/methods/authenticator/confirm", {"code": wrong})
    assert "cancelled this set-up" in text(last)
    assert PendingSetup.select().count() == 0
    # The old key no longer works; a new set-up gives a new key.
    assert shown_key(signed_in.post("/profile/2sv/methods/authenticator/start")) != secret


def test_pending_key_is_reused_for_30_minutes_then_replaced(app, family, clock):
    from services.methods import enrolment

    with app.test_request_context():
        enrolment.start_authenticator(family)
        first = enrolment.pending_authenticator(family).secret
        clock.advance(minutes=29)
        enrolment.start_authenticator(family)
        assert enrolment.pending_authenticator(family).secret == first
        clock.advance(minutes=2)
        assert enrolment.pending_authenticator(family) is None
        enrolment.start_authenticator(family)
        assert enrolment.pending_authenticator(family).secret != first


# --- email and text message ---------------------------------------------------------------


def test_email_set_up_end_to_end(signed_in, family):
    sent = signed_in.post(
        "/profile/2sv/methods/email/send", {"destination": "Pat.Other@Example.com"}, htmx=True
    )
    assert sent.status_code == 200 and is_fragment(sent)
    assert "p\u2022\u2022\u2022@example.com" in text(sent)
    message = OutboxMessage.select().order_by(OutboxMessage.id.desc()).first()
    assert message.subject == "User OTP from Online-Auth"
    assert message.to == "pat.other@example.com"
    code = last_code("pat.other@example.com")
    assert OneTimeCode.select().where(OneTimeCode.code_hash.contains(code)).count() == 0
    response = signed_in.post("/profile/2sv/methods/email/confirm", {"code": code})
    assert response.status_code == 303
    method = VerificationMethod.get(VerificationMethod.user == family)
    assert (method.kind, method.destination) == ("email", "pat.other@example.com")
    confirmation = OutboxMessage.select().where(OutboxMessage.subject == ADDED_SUBJECT).get()
    assert confirmation.to == "pat@example.com"  # the login email
    assert "p\u2022\u2022\u2022@example.com" in confirmation.body
    page = text(signed_in.get(WINDOW))
    assert "Email is set up" in page


def test_text_message_set_up_end_to_end(signed_in, family):
    sent = signed_in.post(
        "/profile/2sv/methods/text-message/send", {"destination": "(201) 555-0123"}
    )
    assert sent.status_code == 200
    sms = OutboxMessage.select().where(OutboxMessage.channel == "sms").get()
    assert sms.to == "+12015550123" and sms.subject == ""
    code = re.search(r"\d{6}", sms.body).group(0)
    assert (
        signed_in.post(
            "/profile/2sv/methods/text-message/confirm", {"code": f"{code[:3]} {code[3:]}"}
        ).status_code
        == 303
    )
    method = VerificationMethod.get(VerificationMethod.user == family)
    assert method.destination == "+12015550123"
    assert "\u2022\u2022\u2022-\u2022\u2022\u2022-0123" in text(signed_in.get(WINDOW))
    assert "+12015550123" not in text(signed_in.get(WINDOW))


def test_resend_keeps_the_first_code_alive(signed_in, clock):
    signed_in.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    first = last_code("pat@example.com")
    clock.advance(seconds=31)
    signed_in.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    assert signed_in.post("/profile/2sv/methods/email/confirm", {"code": first}).status_code == 303


def test_sending_again_within_the_cooldown_offers_the_code_sent(signed_in, clock):
    signed_in.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    clock.advance(seconds=5)
    again = signed_in.post(
        "/profile/2sv/methods/email/send", {"destination": "pat@example.com"}, htmx=True
    )
    assert again.status_code == 200
    assert is_fragment(again)
    assert "5 seconds ago. It's still good." in text(again)
    assert OutboxMessage.select().count() == 1


def test_sending_to_a_cooling_address_for_another_purpose_is_429_with_when(
    signed_in, factory, clock
):
    """A sign-in code went to this address a moment ago: no set-up code to offer again."""
    from services.methods import EMAIL_KIND, codes

    codes.send(factory.family(), "sign_in", EMAIL_KIND, "shared@example.com")
    again = signed_in.post(
        "/profile/2sv/methods/email/send", {"destination": "shared@example.com"}, htmx=True
    )
    assert again.status_code == 429
    assert is_fragment(again)
    assert "another code" in text(again)


def test_code_for_one_address_does_not_confirm_another(signed_in, clock):
    signed_in.post("/profile/2sv/methods/email/send", {"destination": "first@example.com"})
    code = last_code("first@example.com")
    clock.advance(seconds=31)
    signed_in.post("/profile/2sv/methods/email/send", {"destination": "second@example.com"})
    response = signed_in.post("/profile/2sv/methods/email/confirm", {"code": code})
    assert response.status_code == 422
    assert VerificationMethod.select().count() == 0


@pytest.mark.parametrize(
    ("slug", "destination", "message"),
    [
        ("text-message", "555-CALL-NOW-PLEASE", "valid"),
        ("text-message", "+1 900 555 0123", "valid"),
        ("text-message", "12", "valid"),
        ("text-message", "", "Enter a mobile number"),
        ("text-message", "9" * 40, "too long"),
        ("email", "not-an-email", "valid email"),
        ("email", "pat@@example.com", "valid email"),
        ("email", "", "Enter an email address"),
        ("email", "a" * 300 + "@example.com", "valid email"),
    ],
)
def test_bad_destinations_are_refused_in_place(signed_in, slug, destination, message):
    response = signed_in.post(
        f"/profile/2sv/methods/{slug}/send", {"destination": destination}, htmx=True
    )
    assert response.status_code == 422
    assert message in text(response)
    assert 'aria-invalid="true"' in text(response)
    assert OutboxMessage.select().count() == 0
    assert PendingSetup.select().count() == 0


def test_premium_rate_number_is_refused(signed_in):
    response = signed_in.post(
        "/profile/2sv/methods/text-message/send", {"destination": "+1 900 555 0199"}
    )
    assert response.status_code == 422
    assert OutboxMessage.select().count() == 0


@pytest.mark.parametrize("code", ["abcdef", "12345", "1234567", "", "١٢٣٤٥٦"])
def test_bad_codes_are_refused_with_a_message(signed_in, code):
    signed_in.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    response = signed_in.post("/profile/2sv/methods/email/confirm", {"code": code})
    assert response.status_code == 422
    assert "6-digit code" in text(response)
    assert VerificationMethod.select().count() == 0


def test_confirm_without_sending_first(signed_in):
    response = signed_in.post("/profile/2sv/methods/email/confirm", {"code": "123456"})
    assert response.status_code == 422
    assert "Send a code first" in text(response)


def test_only_one_method_of_each_kind(signed_in, clock):
    add_email(signed_in)
    clock.advance(seconds=31)
    again = signed_in.post("/profile/2sv/methods/email/send", {"destination": "x@example.com"})
    assert again.status_code == 409
    assert "delete it and add it again" in text(again)
    assert VerificationMethod.select().count() == 1


def test_sending_failure_is_502_and_keeps_nothing(signed_in, monkeypatch):
    from services.delivery import senders

    class Broken:
        def send_email(self, *args, **kwargs):
            raise senders.DeliveryError("provider down")

    monkeypatch.setattr(senders, "email_sender", lambda: Broken())
    response = signed_in.post(
        "/profile/2sv/methods/email/send", {"destination": "pat@example.com"}, htmx=True
    )
    assert response.status_code == 502
    assert "couldn't send the code" in text(response)
    assert OneTimeCode.select().count() == 0


# --- the toggle -----------------------------------------------------------------------------


def test_turning_on_without_a_method_shows_the_error_in_place(signed_in, family):
    response = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=True)
    assert response.status_code == 422
    assert is_fragment(response)
    body = text(response)
    assert body.lstrip().startswith('<div id="two-step-toggle"')
    assert "Add a verification method before turning on 2-Step Verification" in body
    assert not User.get_by_id(family.id).two_step_enabled
    page = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"})
    assert page.status_code == 422 and is_full_page(page)


def test_family_turns_on_and_off_and_keeps_methods(signed_in, family):
    add_email(signed_in)
    on = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=True)
    # The first time, turning it on leads to the recovery codes, shown once.
    assert on.headers["HX-Redirect"] == "/profile/2sv/recovery-codes/new"
    assert 'aria-checked="true"' in text(signed_in.get(WINDOW))
    assert User.get_by_id(family.id).two_step_enabled
    off = signed_in.post(f"{WINDOW}/toggle", {"enabled": "off"}, htmx=True)
    assert 'aria-checked="false"' in text(off)
    assert "safer choice" in text(off)
    assert not User.get_by_id(family.id).two_step_enabled
    assert VerificationMethod.select().count() == 1
    # Back on (recovery codes exist already): the toggle says so in place.
    again = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=True)
    assert is_fragment(again) and 'aria-checked="true"' in text(again)
    assert "2-Step Verification is on." in text(again)
    kinds = [e.kind for e in SecurityEvent.select().order_by(SecurityEvent.id)]
    assert "2sv_on" in kinds and "2sv_off" in kinds
    subjects = {m.subject for m in OutboxMessage.select()}
    assert {"2-Step Verification is on", "2-Step Verification is off"} <= subjects


def test_toggle_without_javascript_redirects_back(signed_in, family):
    add_email(signed_in)
    response = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile/2sv/recovery-codes/new"
    assert "2-Step Verification is on." in text(signed_in.get(WINDOW))


@pytest.mark.parametrize("roles", [["staff"], ["staff", "family"]])
def test_staff_toggle_is_locked_on(browser, factory, roles):
    user = factory.user(email="terry@example.com", roles=roles, two_step=True)
    VerificationMethod.create(user=user, kind="email", destination="terry@example.com")
    VerificationMethod.create(user=user, kind="sms", destination="+12015550123")
    _sign_in_with_existing_method(browser, "terry@example.com")
    page = text(browser.get(WINDOW))
    assert re.search(r'role="switch" aria-checked="true"\s+disabled', page)
    assert "Required for staff accounts" in page
    refused = browser.post(f"{WINDOW}/toggle", {"enabled": "off"}, htmx=True)
    assert refused.status_code == 409
    assert "required for staff" in text(refused)
    assert User.get_by_id(user.id).two_step_enabled


def _sign_in_with_existing_method(browser, email):
    """Sign in a login that has an email method, reading the code from the outbox."""
    user = User.by_email(email)
    browser.login(email)
    if VerificationMethod.select().where(VerificationMethod.user == user).count() > 1:
        method = VerificationMethod.get(
            VerificationMethod.user == user, VerificationMethod.kind == "email"
        )
        browser.post("/login/verify/method", {"method_id": method.id})
    response = browser.post("/login/verify", {"code": last_code(email)})
    assert response.status_code in (302, 303), text(response)


def test_bad_toggle_value_is_422(signed_in):
    assert signed_in.post(f"{WINDOW}/toggle", {"enabled": "maybe"}).status_code == 422


# --- delete ---------------------------------------------------------------------------------


def test_delete_asks_first_inline_and_as_a_page(signed_in, family):
    add_email(signed_in)
    method = VerificationMethod.get()
    inline = signed_in.get(f"/profile/2sv/methods/{method.id}/delete", htmx=True)
    assert is_fragment(inline) and "Delete Email?" in text(inline)
    assert text(inline).lstrip().startswith(f'<li id="method-{method.id}"')
    page = signed_in.get(f"/profile/2sv/methods/{method.id}/delete")
    assert is_full_page(page) and "Delete Email?" in text(page)
    assert VerificationMethod.select().count() == 1  # asking changes nothing


def test_family_deleting_last_method_turns_2sv_off(signed_in, family):
    add_email(signed_in)
    signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"})
    method = VerificationMethod.get()
    response = signed_in.post(f"/profile/2sv/methods/{method.id}/delete", htmx=True)
    assert response.status_code == 200
    assert "2-Step Verification is now off" in text(response)
    assert VerificationMethod.select().count() == 0
    assert not User.get_by_id(family.id).two_step_enabled
    removed = OutboxMessage.select().where(
        OutboxMessage.subject == "A two-factor authentication device has been removed"
    )
    assert removed.count() == 1


def test_staff_cannot_delete_their_last_method(browser, factory):
    user = factory.staff(email="terry@example.com", two_step=True)
    method = VerificationMethod.create(user=user, kind="email", destination="terry@example.com")
    _sign_in_with_existing_method(browser, "terry@example.com")
    page = text(browser.get(WINDOW))
    assert re.search(r'disabled aria-describedby="delete-reason-\d+">Delete', page)
    assert "Add another method before deleting" in page
    refused = browser.post(f"/profile/2sv/methods/{method.id}/delete")
    assert refused.status_code == 409
    assert VerificationMethod.select().count() == 1


def test_staff_can_delete_one_of_two(browser, factory):
    user = factory.staff(email="terry@example.com", two_step=True)
    VerificationMethod.create(user=user, kind="email", destination="terry@example.com")
    sms = VerificationMethod.create(user=user, kind="sms", destination="+12015550123")
    _sign_in_with_existing_method(browser, "terry@example.com")
    assert browser.post(f"/profile/2sv/methods/{sms.id}/delete").status_code == 303
    assert VerificationMethod.select().count() == 1
    assert User.get_by_id(user.id).two_step_enabled


@pytest.mark.parametrize("method_id", ["999999", "abc", "-1", "1e9", "99999999999999999999999"])
def test_tampered_method_id_is_404(signed_in, method_id):
    add_email(signed_in)
    assert signed_in.post(f"/profile/2sv/methods/{method_id}/delete").status_code == 404
    assert signed_in.get(f"/profile/2sv/methods/{method_id}/delete").status_code == 404
    assert VerificationMethod.select().count() == 1


def test_cannot_delete_another_persons_method(signed_in, factory):
    other = factory.family(email="other@example.com")
    theirs = VerificationMethod.create(user=other, kind="email", destination="other@example.com")
    assert signed_in.post(f"/profile/2sv/methods/{theirs.id}/delete").status_code == 404
    assert VerificationMethod.select().count() == 1


def test_missing_csrf_changes_nothing(signed_in, family):
    add_email(signed_in)
    method = VerificationMethod.get()
    assert signed_in.post(f"/profile/2sv/methods/{method.id}/delete", csrf=False).status_code == 400
    assert signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"}, csrf=False).status_code == 400
    assert (
        signed_in.post(
            "/profile/2sv/methods/email/send", {"destination": "x@example.com"}, csrf=False
        ).status_code
        == 400
    )
    assert VerificationMethod.select().count() == 1
    assert not User.get_by_id(family.id).two_step_enabled


# --- sudo mode and sessions -----------------------------------------------------------------


def test_changes_need_a_recent_sign_in(signed_in, clock, family):
    add_email(signed_in)
    clock.advance(minutes=16)
    signed_in.get(WINDOW)
    response = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/confirm-password")
    assert not User.get_by_id(family.id).two_step_enabled
    confirm = signed_in.get(response.headers["Location"])
    assert "Confirm your password" in text(confirm)
    wrong = signed_in.post("/confirm-password", {"password": "nope", "next": WINDOW})
    assert wrong.status_code == 422
    right = signed_in.post(
        "/confirm-password", {"password": "correct horse battery", "next": WINDOW}
    )
    assert right.headers["Location"] == WINDOW
    assert signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"}).status_code == 303
    assert User.get_by_id(family.id).two_step_enabled


def test_sudo_redirect_is_hx_redirect_for_htmx(signed_in, clock):
    clock.advance(minutes=16)
    signed_in.get(WINDOW)
    response = signed_in.post("/profile/2sv/methods/authenticator/start", htmx=True)
    assert response.headers["HX-Redirect"].startswith("/confirm-password")
    assert PendingSetup.select().count() == 0


def test_sign_out_other_sessions_keeps_this_one(app, signed_in, new_browser, family):
    phone = new_browser()
    phone.login("pat@example.com")
    assert UserSession.select().count() == 2
    response = signed_in.post(f"{WINDOW}/sessions/end-others", htmx=True)
    assert "Signed out 1 other session" in text(response)
    assert is_fragment(response)
    assert UserSession.select().count() == 1
    assert phone.get("/profile").status_code == 302
    assert signed_in.get("/profile").status_code == 200


@pytest.mark.parametrize(
    "path", ["authenticator/send", "security-key/send", "security-key/confirm"]
)
def test_kinds_without_codes_have_no_send_or_confirm(signed_in, path):
    response = signed_in.post(f"/profile/2sv/methods/{path}", {"code": "123456"})
    assert response.status_code == 404
    assert "does not receive codes" in text(response)
    assert PendingSetup.select().count() == 0


def test_confirming_a_method_uses_its_code_only_if_the_method_is_saved(
    signed_in, family, monkeypatch
):
    """The code's use and the saved method commit together: when saving fails (here another
    request saved an email method between the check and the insert), the code stays unused."""
    from services.methods import enrolment

    signed_in.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    code = last_code("pat@example.com")
    VerificationMethod.create(user=family, kind="email", destination="pat@example.com")
    monkeypatch.setattr(enrolment, "_existing", lambda user, kind: None)  # the race window
    response = signed_in.post("/profile/2sv/methods/email/confirm", {"code": code})
    assert "already" in text(response)
    assert OneTimeCode.select().where(OneTimeCode.used_at.is_null(False)).count() == 0
    assert VerificationMethod.select().where(VerificationMethod.user == family).count() == 1
