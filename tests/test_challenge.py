"""The second step of signing in: code box, method picker, throttling, replays, the pending
state and the routing of staff without a method to the forced set-up."""

import html
import re
from datetime import UTC, timedelta

import pyotp
import pytest

from models import crypto
from models.events import SIGNED_IN, VERIFICATION_PAUSED, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import (
    EMAIL,
    ENROL,
    SMS,
    TOTP,
    OneTimeCode,
    PendingSetup,
    VerificationMethod,
)
from services.delivery import senders
from services.methods import codes, recovery_codes
from tests.conftest import is_fragment, is_full_page
from tests.test_codes import issue

PHONE = "+12015550123"
SIX_DIGITS = re.compile(r"\b(\d{6})\b")
VERIFY = "/login/verify"
PICKER = "/login/verify/methods"
CHOOSE = "/login/verify/method"
RESEND = "/login/verify/resend"
SETUP = "/login/verify/setup"

WRONG_TEXT = "That code isn't right"
PAUSED_TEXT = "verification is paused"


# --- helpers -------------------------------------------------------------------------------


def add_email(user, address=None):
    return VerificationMethod.create(user=user, kind=EMAIL, destination=address or user.email)


def add_sms(user, phone=PHONE):
    return VerificationMethod.create(user=user, kind=SMS, destination=phone)


def add_totp(user):
    """An authenticator method; returns (method, its plain key)."""
    secret = pyotp.random_base32()
    method = VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(secret))
    return method, secret


def totp_code(secret, clock, seconds=0):
    """The code the person's app shows at the test clock's time (+ `seconds`)."""
    moment = clock().replace(tzinfo=UTC) + timedelta(seconds=seconds)
    return pyotp.TOTP(secret).at(moment)


def wrong_totp_code(secret, clock):
    """A six-digit code that no step within the allowed drift accepts."""
    near = {totp_code(secret, clock, offset) for offset in (-60, -30, 0, 30, 60)}
    return next(f"{n:06d}" for n in range(100000, 999999, 7919) if f"{n:06d}" not in near)


def sent_codes(to=None):
    """The codes in the outbox, oldest first (to one address or number if given)."""
    query = OutboxMessage.select().order_by(OutboxMessage.id)
    if to is not None:
        query = query.where(OutboxMessage.to == to)
    return [SIX_DIGITS.search(message.body).group(1) for message in query]


def text(response):
    """The body with HTML entities decoded ("isn&#39;t" reads "isn't")."""
    return html.unescape(response.get_data(as_text=True))


def fresh(user):
    return User.get_by_id(user.id)


def signed_in(browser):
    """Whether the browser is fully signed in (the profile page opens)."""
    return browser.get("/profile").status_code == 200


def two_step_family(factory, email="pat@example.com"):
    return factory.family(email=email, name="Pat Parent", two_step=True)


# --- one method of each kind ---------------------------------------------------------------


def test_single_email_method_sends_the_code_with_the_password_post(browser, factory):
    user = two_step_family(factory)
    add_email(user)
    response = browser.login("pat@example.com")
    assert response.status_code == 303
    assert response.headers["Location"] == VERIFY
    assert UserSession.get().state == PENDING
    sent = OutboxMessage.select().where(OutboxMessage.to == "pat@example.com")
    assert [message.subject for message in sent] == ["User OTP from Online-Auth"]

    page = browser.get(VERIFY)
    body = text(page)
    assert page.status_code == 200
    assert "Verification code" in body and 'autocomplete="one-time-code"' in body
    assert "We sent a code to p\u2022\u2022\u2022@example.com" in body
    assert "Send new code" in body and "Try another method" not in body
    # A reload (a GET) sends nothing.
    browser.get(VERIFY)
    browser.get(PICKER)
    assert OutboxMessage.select().count() == 1
    assert not signed_in(browser)


def test_right_email_code_signs_in_with_a_fresh_session(browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    pending = UserSession.get()
    pending_cookie = browser.client.get_cookie("twostep_session").value
    (code,) = sent_codes()

    response = browser.post(VERIFY, {"code": code})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert signed_in(browser)
    row = UserSession.get()
    assert row.state == ACTIVE and row.token_hash != pending.token_hash
    assert not UserSession.select().where(UserSession.token_hash == pending.token_hash).exists()
    assert browser.client.get_cookie("twostep_session").value != pending_cookie
    assert VerificationMethod.get(kind=EMAIL).last_used_at == clock()
    event = SecurityEvent.get(SecurityEvent.kind == SIGNED_IN)
    assert event.method_kind == EMAIL
    assert fresh(user).last_sign_in_at == clock()


def test_single_text_message_method(browser, factory):
    user = two_step_family(factory)
    add_sms(user)
    assert browser.login("pat@example.com").headers["Location"] == VERIFY
    message = OutboxMessage.get()
    assert message.channel == "sms" and message.to == PHONE
    body = text(browser.get(VERIFY))
    assert "\u2022\u2022\u2022-\u2022\u2022\u2022-0123" in body and "Send new code" in body
    assert "2015550123" not in body
    assert browser.post(VERIFY, {"code": sent_codes()[0]}).status_code == 303
    assert SecurityEvent.get(SecurityEvent.kind == SIGNED_IN).method_kind == SMS
    assert VerificationMethod.get(kind=SMS).last_used_at is not None


def test_single_authenticator_method(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    assert browser.login("pat@example.com").headers["Location"] == VERIFY
    assert OutboxMessage.select().count() == 0
    body = text(browser.get(VERIFY))
    assert "authenticator app" in body
    assert "Send new code" not in body and "Try another method" not in body
    assert "clock" in body  # the troubleshooting hint
    assert "Still refused? Once signed in" in body and "Lost your phone?" in body
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303
    assert signed_in(browser)
    assert SecurityEvent.get(SecurityEvent.kind == SIGNED_IN).method_kind == TOTP
    assert VerificationMethod.get(kind=TOTP).last_used_at == clock()


@pytest.mark.parametrize("shape", ["{a}{b}", "{a} {b}", "{a}-{b}", " {a} {b} "])
def test_code_box_ignores_spaces_and_dashes(browser, factory, shape):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    code = sent_codes()[0]
    typed = shape.format(a=code[:3], b=code[3:])
    assert browser.post(VERIFY, {"code": typed}).status_code == 303


def test_leading_zeros_are_kept(browser, factory, monkeypatch):
    monkeypatch.setattr(codes.secrets, "randbelow", lambda _n: 4321)
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    assert sent_codes() == ["004321"]
    assert browser.post(VERIFY, {"code": "4321"}).status_code == 422
    assert browser.post(VERIFY, {"code": "004-321"}).status_code == 303


def test_next_brings_the_person_back_after_the_code(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.get("/login")
    browser.post(
        "/login",
        {"email": "pat@example.com", "password": "correct horse battery", "next": "/profile"},
    )
    response = browser.post(VERIFY, {"code": totp_code(secret, clock)})
    assert response.headers["Location"] == "/profile"


def test_unsafe_next_is_dropped(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.get("/login")
    browser.post(
        "/login",
        {
            "email": "pat@example.com",
            "password": "correct horse battery",
            "next": "//evil.example/",
        },
    )
    response = browser.post(VERIFY, {"code": totp_code(secret, clock)})
    assert response.headers["Location"] == "/"


# --- several methods: the picker -----------------------------------------------------------


def three_methods(factory):
    user = two_step_family(factory)
    add_email(user)
    add_sms(user)
    _method, secret = add_totp(user)
    return user, secret


def test_three_methods_show_the_picker_and_send_nothing_yet(browser, factory):
    three_methods(factory)
    assert browser.login("pat@example.com").headers["Location"] == VERIFY
    assert OutboxMessage.select().count() == 0
    body = text(browser.get(VERIFY))
    buttons = re.findall(
        r'<button type="submit" class="button" name="method_id"[^>]*>([^<]*)<', body
    )
    assert buttons == [
        "Authenticator App",
        "Email p\u2022\u2022\u2022@example.com",
        "Text Message \u2022\u2022\u2022-\u2022\u2022\u2022-0123",
    ]


def test_the_picker_never_shows_a_full_address_or_number(browser, factory):
    three_methods(factory)
    browser.login("pat@example.com")
    for response in (browser.get(VERIFY), browser.get(PICKER), browser.get(PICKER, htmx=True)):
        body = text(response)
        assert "pat@example.com" not in body
        assert "2015550123" not in body and "555-0123" not in body


def test_choosing_email_sends_the_code_and_swaps_in_the_code_box(browser, factory):
    three_methods(factory)
    browser.login("pat@example.com")
    email = VerificationMethod.get(kind=EMAIL)
    response = browser.post(CHOOSE, {"method_id": str(email.id)}, htmx=True)
    assert response.status_code == 200 and is_fragment(response)
    body = text(response)
    assert 'id="challenge"' in body and "Verification code" in body
    assert "Send new code" in body and "Try another method" in body
    assert "You can ask for a new code in 30 seconds" in body
    assert len(sent_codes("pat@example.com")) == 1
    assert browser.post(VERIFY, {"code": sent_codes()[0]}, htmx=True).headers["HX-Redirect"] == "/"


def test_choosing_the_app_swaps_in_the_code_box_and_sends_nothing(browser, factory, clock):
    _user, secret = three_methods(factory)
    browser.login("pat@example.com")
    app_method = VerificationMethod.get(kind=TOTP)
    response = browser.post(CHOOSE, {"method_id": str(app_method.id)})
    assert response.status_code == 200 and is_full_page(response)
    assert "Send new code" not in text(response) and "Try another method" in text(response)
    assert OutboxMessage.select().count() == 0
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303


def test_switching_methods_midway_keeps_the_first_code_working(browser, factory):
    three_methods(factory)
    browser.login("pat@example.com")
    email = VerificationMethod.get(kind=EMAIL)
    sms = VerificationMethod.get(kind=SMS)
    browser.post(CHOOSE, {"method_id": str(email.id)}, htmx=True)
    picker = browser.get(PICKER, htmx=True)
    assert picker.status_code == 200 and is_fragment(picker)
    assert 'name="method_id"' in text(picker)
    browser.post(CHOOSE, {"method_id": str(sms.id)}, htmx=True)
    emailed = sent_codes("pat@example.com")[0]
    assert len(sent_codes(PHONE)) == 1
    # The code box is now the text message one, yet the emailed code works (Decisions 7).
    assert "\u2022\u2022\u2022-0123" in text(browser.get(VERIFY))
    assert browser.post(VERIFY, {"code": emailed}).status_code == 303
    assert SecurityEvent.get(SecurityEvent.kind == SIGNED_IN).method_kind == EMAIL
    assert VerificationMethod.get_by_id(email.id).last_used_at is not None
    assert VerificationMethod.get_by_id(sms.id).last_used_at is None


def test_switching_from_email_to_the_app(browser, factory, clock):
    _user, secret = three_methods(factory)
    browser.login("pat@example.com")
    browser.post(CHOOSE, {"method_id": str(VerificationMethod.get(kind=EMAIL).id)})
    browser.post(CHOOSE, {"method_id": str(VerificationMethod.get(kind=TOTP).id)})
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303
    assert SecurityEvent.get(SecurityEvent.kind == SIGNED_IN).method_kind == TOTP


def test_try_another_method_is_a_get_that_changes_nothing(browser, factory):
    three_methods(factory)
    browser.login("pat@example.com")
    browser.post(CHOOSE, {"method_id": str(VerificationMethod.get(kind=EMAIL).id)})
    before = OneTimeCode.select().count()
    response = browser.get(PICKER)
    assert response.status_code == 200 and is_full_page(response)
    assert OneTimeCode.select().count() == before
    # Coming back to the code box still shows the email method that was chosen.
    assert "p\u2022\u2022\u2022@example.com" in text(browser.get(VERIFY))


# --- send new code -------------------------------------------------------------------------


def test_send_new_code_keeps_the_earlier_code_valid(browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    clock.advance(seconds=31)
    response = browser.post(RESEND, htmx=True)
    assert response.status_code == 200 and is_fragment(response)
    assert "We sent a code to" in text(response)
    first, second = sent_codes()
    assert browser.post(VERIFY, {"code": first}).status_code == 303


def test_send_new_code_within_the_cooldown_offers_the_newest_code_again(browser, factory, clock):
    """Decisions 19: no refusal, no new code; the code box says the code sent is still good."""
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    clock.advance(seconds=20)
    response = browser.post(RESEND)
    assert response.status_code == 200
    body = text(response)
    masked = "p\u2022\u2022\u2022@example.com"
    still_good = f"We sent a code to {masked} 20 seconds ago. It's still good."
    assert still_good in body
    assert "Verification code" in body  # still on the code box
    assert OutboxMessage.select().count() == 1
    clock.advance(seconds=10)
    assert browser.post(RESEND).status_code == 200
    assert OutboxMessage.select().count() == 2
    assert browser.post(VERIFY, {"code": sent_codes()[0]}).status_code == 303


def test_send_new_code_respects_the_hourly_cap_and_names_the_way_out(browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    for _ in range(4):
        clock.advance(seconds=31)
        assert browser.post(RESEND).status_code == 200
    clock.advance(seconds=31)
    response = browser.post(RESEND)
    body = text(response)
    assert response.status_code == 429 and "in 58 minutes" in body
    assert "use another method or a recovery code, or ask your center's admin" in body
    assert OutboxMessage.select().count() == 5


def test_choosing_the_same_email_again_within_the_cooldown(browser, factory, clock):
    three_methods(factory)
    browser.login("pat@example.com")
    email = VerificationMethod.get(kind=EMAIL)
    browser.post(CHOOSE, {"method_id": str(email.id)})
    browser.get(PICKER)
    clock.advance(seconds=12)
    response = browser.post(CHOOSE, {"method_id": str(email.id)}, htmx=True)
    assert response.status_code == 200 and is_fragment(response)
    body = text(response)
    assert "12 seconds ago. It's still good." in body
    assert "Verification code" in body  # the code box: the code sent earlier still works
    assert OutboxMessage.select().count() == 1
    assert browser.post(VERIFY, {"code": sent_codes()[0]}).status_code == 303


class FailingSender:
    def send_email(self, *args, **kwargs):
        raise senders.DeliveryError("provider down")

    def send_sms(self, *args, **kwargs):
        raise senders.DeliveryError("provider down")


def test_a_failed_send_answers_502_and_offers_another_method(browser, factory, monkeypatch):
    three_methods(factory)
    browser.login("pat@example.com")
    monkeypatch.setattr(senders, "email_sender", FailingSender)
    response = browser.post(
        CHOOSE, {"method_id": str(VerificationMethod.get(kind=EMAIL).id)}, htmx=True
    )
    assert response.status_code == 502 and is_fragment(response)
    body = text(response)
    assert "We couldn't send the code. Try again or choose another method." in body
    assert 'name="method_id"' in body  # still the picker
    assert OneTimeCode.select().count() == 0


def test_a_failed_send_at_the_password_step_shows_on_the_code_box(browser, factory, monkeypatch):
    user = two_step_family(factory)
    add_email(user)
    monkeypatch.setattr(senders, "email_sender", FailingSender)
    assert browser.login("pat@example.com").headers["Location"] == VERIFY
    body = text(browser.get(VERIFY))
    assert "We couldn't send the code" in body and "Send new code" in body
    monkeypatch.undo()
    assert browser.post(RESEND).status_code == 200
    assert browser.post(VERIFY, {"code": sent_codes()[0]}).status_code == 303


def test_the_resend_button_is_refused_for_the_app(browser, factory):
    user = two_step_family(factory)
    add_totp(user)
    browser.login("pat@example.com")
    response = browser.post(RESEND)
    assert response.status_code == 422
    assert OutboxMessage.select().count() == 0


# --- codes that do not work ----------------------------------------------------------------


def test_a_code_from_enrolment_is_refused_at_sign_in(app, browser, factory):
    user = two_step_family(factory)
    add_totp(user)
    browser.login("pat@example.com")
    with app.test_request_context():
        enrol_code = issue(user, ENROL, "pat@example.com")
    response = browser.post(VERIFY, {"code": enrol_code})
    assert response.status_code == 422 and WRONG_TEXT in text(response)
    assert not signed_in(browser)
    assert fresh(user).failed_code_count == 1


def test_code_requested_at_9_59_works(browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    clock.advance(minutes=9, seconds=59)
    assert browser.post(VERIFY, {"code": sent_codes()[0]}).status_code == 303


def test_code_at_10_01_is_expired(browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    clock.advance(minutes=10, seconds=1)
    response = browser.post(VERIFY, {"code": sent_codes()[0]})
    assert response.status_code == 422
    assert "That code has expired" in text(response)
    assert not signed_in(browser)


def test_a_code_works_once(browser, new_browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    (code,) = sent_codes()
    assert browser.post(VERIFY, {"code": code}).status_code == 303
    other = new_browser()
    clock.advance(seconds=31)
    other.login("pat@example.com")
    again = other.post(VERIFY, {"code": code})
    # A repeat of a right code is no guess: refused, and not counted.
    assert again.status_code == 422 and "That code was just used" in text(again)
    assert fresh(user).failed_code_count == 0


def test_the_pending_state_expires(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.login("pat@example.com")
    clock.advance(minutes=14, seconds=59)
    assert browser.get(VERIFY).status_code == 200
    clock.advance(seconds=2)
    response = browser.get(VERIFY)
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert UserSession.select().count() == 0
    response = browser.post(VERIFY, {"code": totp_code(secret, clock)})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert not signed_in(browser)


# --- the pause -----------------------------------------------------------------------------


def test_five_wrong_codes_over_two_sessions_pause_verification(
    browser, new_browser, factory, clock
):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    wrong = wrong_totp_code(secret, clock)
    laptop, phone = browser, new_browser()
    laptop.login("pat@example.com")
    phone.login("pat@example.com")
    for _ in range(3):
        response = laptop.post(VERIFY, {"code": wrong})
        assert response.status_code == 422 and WRONG_TEXT in text(response)
    assert phone.post(VERIFY, {"code": wrong}).status_code == 422
    fifth = phone.post(VERIFY, {"code": wrong}, htmx=True)
    assert fifth.status_code == 429 and is_fragment(fifth)
    assert PAUSED_TEXT in text(fifth) and "in 15 minutes" in text(fifth)
    paused_email = OutboxMessage.get(OutboxMessage.to == "pat@example.com")
    assert paused_email.subject == "Wrong verification codes were entered for your account"
    assert SecurityEvent.select().where(SecurityEvent.kind == VERIFICATION_PAUSED).count() == 1

    # During the pause even the right code is refused, with the same message.
    clock.advance(minutes=5)
    refused = laptop.post(VERIFY, {"code": totp_code(secret, clock)})
    assert refused.status_code == 429
    assert PAUSED_TEXT in text(refused) and "in 10 minutes" in text(refused)
    assert not signed_in(laptop)

    # After 15 minutes it works (the old pending sessions have expired by then).
    clock.advance(minutes=10, seconds=1)
    again = new_browser()
    again.login("pat@example.com")
    assert again.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303
    assert fresh(user).failed_code_count == 0


def test_a_right_code_before_the_fifth_resets_the_count(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    for _round in range(2):
        clock.advance(seconds=30)
        browser.login("pat@example.com")
        wrong = wrong_totp_code(secret, clock)
        for _ in range(4):
            assert browser.post(VERIFY, {"code": wrong}).status_code == 422
        assert fresh(user).failed_code_count == 4
        assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303
        assert fresh(user).failed_code_count == 0
        browser.logout()
    assert fresh(user).verification_paused_until is None


def test_no_code_is_sent_during_a_pause(browser, factory, clock):
    user = two_step_family(factory)
    add_email(user)
    User.update(verification_paused_until=clock() + timedelta(minutes=15)).where(
        User.id == user.id
    ).execute()
    browser.login("pat@example.com")
    assert OutboxMessage.select().count() == 0
    assert PAUSED_TEXT in text(browser.get(VERIFY))
    response = browser.post(RESEND)
    assert response.status_code == 429 and PAUSED_TEXT in text(response)
    assert OutboxMessage.select().count() == 0


class TestPerIpLimit:
    @pytest.fixture
    def app_config(self):
        return {"SIGN_IN_ATTEMPTS_PER_IP": "3 per minute", "MAX_FAILED_CODES": 100}

    def test_code_attempts_are_limited_per_ip(self, browser, factory, clock):
        user = two_step_family(factory)
        _method, secret = add_totp(user)
        browser.login("pat@example.com")
        wrong = wrong_totp_code(secret, clock)
        for _ in range(3):
            assert browser.post(VERIFY, {"code": wrong}).status_code == 422
        response = browser.post(VERIFY, {"code": totp_code(secret, clock)})
        assert response.status_code == 429
        assert not signed_in(browser)


# --- authenticator replays -----------------------------------------------------------------


def test_a_right_authenticator_code_repeated_is_not_a_guess(browser, factory, clock):
    """A double click, a second tab: "That code was just used", and nothing is counted."""
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    code = totp_code(secret, clock)
    browser.login("pat@example.com")
    assert browser.post(VERIFY, {"code": code}).status_code == 303
    browser.logout()
    browser.login("pat@example.com")
    for _ in range(6):  # more than the pause allows: none of them is a guess
        response = browser.post(VERIFY, {"code": code})
        assert response.status_code == 422
        assert "That code was just used" in text(response)
    assert fresh(user).failed_code_count == 0
    clock.advance(seconds=30)
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303


def test_an_older_authenticator_code_after_a_newer_one_is_counted(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.login("pat@example.com")
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303
    browser.logout()
    browser.login("pat@example.com")
    response = browser.post(VERIFY, {"code": totp_code(secret, clock, -30)})
    assert response.status_code == 422 and "used already" in text(response)
    assert fresh(user).failed_code_count == 1


def test_a_code_of_the_previous_step_is_accepted_once(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.login("pat@example.com")
    assert browser.post(VERIFY, {"code": totp_code(secret, clock, -30)}).status_code == 303


def test_signing_in_in_the_enrolment_step_is_a_replay(app, browser, factory, clock):
    from services.methods import enrolment

    user = factory.family(email="pat@example.com")
    with app.test_request_context():
        assert enrolment.start_authenticator(user).ok
        secret = crypto.decrypt(enrolment.pending_authenticator(user).secret)
        assert enrolment.confirm_authenticator(user, totp_code(secret, clock)).ok
        assert enrolment.set_enabled(fresh(user), True).ok
    browser.login("pat@example.com")
    response = browser.post(VERIFY, {"code": totp_code(secret, clock)})
    assert response.status_code == 422 and "just used" in text(response)
    clock.advance(seconds=30)
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303


# --- the pending state reaches nothing else -------------------------------------------------


def test_every_get_route_redirects_a_pending_sign_in_to_the_challenge(
    app, browser, new_browser, factory
):
    """Every page that needs a signed-in person sends a pending one to the challenge; the
    public pages (sign-in, forgot password, health check, static files) show them nothing of
    theirs. Only the verification steps themselves open."""
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    anonymous = new_browser()
    adapter = app.url_map.bind("localhost")
    gated = public = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith("/login/verify"):
            continue  # not a page, or one of the verification steps
        if rule.endpoint == "dev.outbox":
            continue  # the developer outbox shows every message to anyone; not in production
        url = adapter.build(rule.endpoint, {name: "1" for name in rule.arguments}, method="GET")
        if rule.endpoint == "static":
            url = "/static/css/app.css"
        if rule.endpoint == "home.favicon":
            continue  # an icon, the same for everyone (tests/test_auth.py checks it is public)
        stranger = anonymous.get(url)
        if stranger.status_code in (302, 303) and "/login" in stranger.headers["Location"]:
            for htmx in (False, True):
                response = browser.get(url, htmx=htmx)
                if htmx:
                    assert response.headers.get("HX-Redirect") == VERIFY, url
                else:
                    assert response.status_code in (302, 303), url
                    assert response.headers["Location"] == VERIFY, url
            gated += 1
        else:
            body = text(browser.get(url))
            assert "pat@example.com" not in body and "Pat Parent" not in body, url
            public += 1
    assert gated >= 5 and public >= 2
    # The verification steps themselves answer.
    assert browser.get(VERIFY).status_code == 200
    assert browser.get(PICKER).status_code == 200


def test_sign_out_while_pending_ends_the_pending_session(browser, factory):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    assert browser.post("/logout").status_code == 303
    assert UserSession.select().count() == 0
    assert browser.get(VERIFY).headers["Location"] == "/login"


def test_signing_out_other_sessions_ends_pending_ones_too(
    app, browser, new_browser, factory, clock
):
    from services.account import sessions

    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.login("pat@example.com")
    browser.post(VERIFY, {"code": totp_code(secret, clock)})
    stranger = new_browser()
    stranger.login("pat@example.com")
    assert stranger.get(VERIFY).status_code == 200
    keep = UserSession.get(UserSession.state == ACTIVE)
    with app.test_request_context():
        assert [row.id for row in sessions.active_sessions(user)] == [keep.id]
        assert sessions.end_others(user, keep=keep) == 1
    assert stranger.get(VERIFY).headers["Location"] == "/login"
    assert signed_in(browser)


def test_a_pending_sign_in_whose_2sv_was_turned_off_just_continues(browser, factory):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    User.update(two_step_enabled=False).where(User.id == user.id).execute()
    page = browser.get(VERIFY)
    assert page.status_code == 200 and "no code is needed" in text(page)
    assert not signed_in(browser)
    assert browser.post(VERIFY, {}).headers["Location"] == "/"
    assert signed_in(browser)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("method_id", ["abc", "", "99999", "1 OR 1=1", "-1", "1e3", "9" * 40])
def test_a_tampered_method_id_is_refused(browser, factory, method_id):
    three_methods(factory)
    browser.login("pat@example.com")
    response = browser.post(CHOOSE, {"method_id": method_id})
    assert response.status_code == 422
    assert "Choose one of the methods listed" in text(response)
    assert OneTimeCode.select().count() == 0


def test_another_persons_method_id_is_refused(browser, factory):
    three_methods(factory)
    stranger = factory.family(email="someone@example.com", two_step=True)
    theirs = add_email(stranger)
    browser.login("pat@example.com")
    response = browser.post(CHOOSE, {"method_id": str(theirs.id)}, htmx=True)
    assert response.status_code == 422 and is_fragment(response)
    assert OutboxMessage.select().count() == 0
    assert "someone" not in text(response)
    # Still the picker: nothing was chosen.
    assert 'name="method_id"' in text(browser.get(VERIFY))


def test_a_destination_in_the_form_is_ignored(browser, factory):
    three_methods(factory)
    browser.login("pat@example.com")
    email = VerificationMethod.get(kind=EMAIL)
    browser.post(CHOOSE, {"method_id": str(email.id), "destination": "evil@example.com"})
    assert [message.to for message in OutboxMessage.select()] == ["pat@example.com"]


@pytest.mark.parametrize(
    "typed", ["12a456", "abcdef", "12345", "1234567", "١٢٣٤٥٦", "", "x" * 5000]
)
def test_a_malformed_code_gets_a_422_and_counts_nothing(browser, factory, typed):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    response = browser.post(VERIFY, {"code": typed})
    assert response.status_code == 422
    assert "Enter the" in text(response)
    assert fresh(user).failed_code_count == 0
    assert not signed_in(browser)


@pytest.mark.parametrize(
    ("url", "data"), [(VERIFY, {"code": "123456"}), (CHOOSE, {"method_id": "1"}), (RESEND, {})]
)
def test_posts_without_csrf_are_refused(browser, factory, url, data):
    user, _secret = three_methods(factory)
    browser.login("pat@example.com")
    browser.get(VERIFY)
    response = browser.post(url, data, csrf=False)
    assert response.status_code == 400
    assert OutboxMessage.select().count() == 0
    assert fresh(user).failed_code_count == 0
    assert UserSession.get().state == PENDING


def test_challenge_pages_without_a_pending_sign_in_go_to_sign_in(browser, factory):
    for url in (VERIFY, PICKER):
        assert browser.get(url).headers["Location"] == "/login"
    browser.get("/login")
    assert browser.post(VERIFY, {"code": "123456"}).headers["Location"] == "/login"


def test_a_signed_in_person_is_not_challenged_again(browser, factory, clock):
    user = two_step_family(factory)
    _method, secret = add_totp(user)
    browser.login("pat@example.com")
    browser.post(VERIFY, {"code": totp_code(secret, clock)})
    assert browser.get(VERIFY).headers["Location"] == "/login"
    assert signed_in(browser)


# --- staff without a method ----------------------------------------------------------------


@pytest.mark.parametrize("email", ["teacher@example.com", "both@example.com", "admin@example.com"])
def test_demo_staff_are_sent_to_the_forced_set_up(app, browser, email):
    app.test_cli_runner().invoke(args=["seed-demo"])
    response = browser.login(email, "twostep-demo")
    assert response.status_code == 303
    assert response.headers["Location"] == SETUP
    assert UserSession.get().state == PENDING
    assert browser.get(VERIFY).headers["Location"] == SETUP
    assert browser.get("/").headers["Location"] == VERIFY
    assert OutboxMessage.select().count() == 0


def test_a_fresh_staff_login_is_forced_to_set_up(browser, factory):
    factory.staff(email="new@example.com")
    assert browser.login("new@example.com").headers["Location"] == SETUP


def test_a_family_with_2sv_off_is_not_asked(app, browser):
    app.test_cli_runner().invoke(args=["seed-demo"])
    response = browser.login("parent@example.com", "twostep-demo")
    assert response.headers["Location"] == "/"
    assert UserSession.get().state == ACTIVE


def test_staff_with_a_method_get_the_code_box(browser, factory, clock):
    user = factory.staff(email="teacher@example.com")
    _method, secret = add_totp(user)
    assert browser.login("teacher@example.com").headers["Location"] == VERIFY
    assert browser.post(VERIFY, {"code": totp_code(secret, clock)}).status_code == 303


# --- HTMX fragments and full pages ---------------------------------------------------------


@pytest.mark.parametrize("url", [VERIFY, PICKER])
def test_picker_and_code_box_answer_fragments_and_pages(browser, factory, url):
    three_methods(factory)
    browser.login("pat@example.com")
    fragment = browser.get(url, htmx=True)
    assert fragment.status_code == 200 and is_fragment(fragment)
    assert 'id="challenge"' in text(fragment) and 'hx-target="this"' in text(fragment)
    assert "HX-Request" in fragment.headers.get("Vary", "")
    page = browser.get(url)
    assert page.status_code == 200 and is_full_page(page)
    assert 'id="challenge"' in text(page)


def test_code_box_errors_answer_fragments_and_pages(browser, factory):
    user = two_step_family(factory)
    add_email(user)
    browser.login("pat@example.com")
    fragment = browser.post(VERIFY, {"code": "000000"}, htmx=True)
    assert fragment.status_code == 422 and is_fragment(fragment)
    assert 'aria-invalid="true"' in text(fragment)
    page = browser.post(VERIFY, {"code": "000000"})
    assert page.status_code == 422 and is_full_page(page)
    code_box = browser.get(VERIFY, htmx=True)
    assert is_fragment(code_box) and "Verification code" in text(code_box)


class TestStaffMethodPolicy:
    """Staff sign in only with the kinds STAFF_METHODS allows (here: no email)."""

    @pytest.fixture
    def app_config(self):
        return {"STAFF_METHODS": "totp,sms"}

    def test_the_picker_offers_only_allowed_kinds(self, browser, factory):
        user = factory.staff(email="terry@example.com")
        add_email(user)
        add_sms(user)
        add_totp(user)
        browser.login("terry@example.com")
        body = text(browser.get(VERIFY))
        assert "Authenticator App" in body and "Text Message" in body
        assert "Email p" not in body and "Email t" not in body
        email = VerificationMethod.get(kind=EMAIL)
        assert browser.post(CHOOSE, {"method_id": str(email.id)}).status_code == 422
        assert OutboxMessage.select().count() == 0

    def test_a_left_out_method_is_proven_first_then_an_allowed_one_set_up(
        self, browser, factory, clock
    ):
        """Decisions 20: the password alone never reaches the set-up; the saved email is
        proven first, and only then is an allowed method set up to finish signing in."""
        user = factory.staff(email="terry@example.com")
        add_email(user)
        assert browser.login("terry@example.com").headers["Location"] == VERIFY
        (code,) = sent_codes("terry@example.com")
        # The set-up is closed until the email is proven.
        assert browser.get(SETUP).status_code != 200
        refused = browser.post("/profile/2sv/methods/authenticator/start")
        assert refused.status_code == 302 and "/login" in refused.headers["Location"]
        assert PendingSetup.select().count() == 0
        proven = browser.post(VERIFY, {"code": code})
        assert proven.headers["Location"] == SETUP
        assert not signed_in(browser)
        page = browser.get(SETUP)
        assert page.status_code == 200 and "Authenticator App" in text(page)
        assert fresh(user).failed_code_count == 0
        # An allowed method set up: signed in.
        browser.post("/profile/2sv/methods/authenticator/start")
        secret = crypto.decrypt(PendingSetup.get().secret)
        clock.advance(seconds=30)
        saved = browser.post(
            "/profile/2sv/methods/authenticator/confirm", {"code": totp_code(secret, clock)}
        )
        assert saved.status_code == 303
        assert signed_in(browser)

    def test_a_recovery_code_proves_it_too_then_the_set_up(self, browser, factory):
        user = factory.staff(email="terry@example.com")
        add_email(user)
        codes = recovery_codes.generate(user)
        browser.login("terry@example.com")
        done = browser.post("/login/verify/recovery", {"recovery_code": codes[0]})
        assert done.headers["Location"] == SETUP
        assert not signed_in(browser)
        assert browser.get(VERIFY).headers["Location"] == SETUP
        assert browser.get(SETUP).status_code == 200

    def test_a_wrong_code_for_the_left_out_method_never_opens_the_set_up(self, browser, factory):
        user = factory.staff(email="terry@example.com")
        add_email(user)
        browser.login("terry@example.com")
        assert browser.post(VERIFY, {"code": "000000"}).status_code == 422
        assert browser.get(SETUP).status_code != 200
        assert fresh(user).failed_code_count == 1
