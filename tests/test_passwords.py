"""Forgot password, the reset link (the second step first when 2SV is on) and Change password."""

import html
import re
from datetime import UTC, timedelta

import pyotp
import pytest

from models import crypto
from models.events import (
    PASSWORD_CHANGED,
    RECOVERY_CODE_USED_FOR_RESET,
    SIGNED_IN,
    SecurityEvent,
)
from models.outbox import OutboxMessage
from models.passwords import PasswordResetToken
from models.people import User
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import EMAIL, SIGN_IN, TOTP, OneTimeCode, VerificationMethod
from services.account.passwords import verify_password
from services.methods import recovery_codes
from services.signin import password_reset
from tests.conftest import PASSWORD, is_fragment, is_full_page

FORGOT = "/forgot-password"
CHANGE = "/profile/password"
NEW_PASSWORD = "a brand new secret phrase"
LINK = re.compile(r"http://localhost/reset-password/([A-Za-z0-9_\-]+)")
SIX_DIGITS = re.compile(r"\b(\d{6})\b")
CSRF_VALUE = re.compile(r'(X-CSRFToken": "|name="csrf_token" type="hidden" value=")[^"]+')


# --- helpers --------------------------------------------------------------------------------


def text(response):
    return html.unescape(response.get_data(as_text=True))


def without_csrf(response):
    """The body with CSRF token values blanked (they carry a timestamp)."""
    return CSRF_VALUE.sub(r"\1", text(response))


def ask_for_link(browser, email, htmx=False):
    """Post the Forgot password form; closing the response runs the delivery, as a server does."""
    browser.get(FORGOT)
    response = browser.post(FORGOT, {"email": email}, htmx=htmx)
    response.close()
    return response


def reset_emails(to):
    return list(
        OutboxMessage.select()
        .where(OutboxMessage.to == to, OutboxMessage.subject == password_reset.RESET_SUBJECT)
        .order_by(OutboxMessage.id)
    )


def last_token(to):
    return LINK.search(reset_emails(to)[-1].body).group(1)


def reset_url(token, suffix=""):
    return f"/reset-password/{token}{suffix}"


def choose_new_password(browser, token, password=NEW_PASSWORD, confirm=None, htmx=False):
    return browser.post(
        reset_url(token),
        {"new_password": password, "confirm_password": password if confirm is None else confirm},
        htmx=htmx,
    )


def fresh(user):
    return User.get_by_id(user.id)


def has_password(user, password):
    return verify_password(fresh(user).password_hash, password)


def signed_in(browser):
    return browser.get("/profile").status_code == 200


def last_code(to):
    message = (
        OutboxMessage.select()
        .where(OutboxMessage.to == to, OutboxMessage.subject == "User OTP from Online-Auth")
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return SIX_DIGITS.search(message.body).group(1)


def totp_code(secret, clock):
    return pyotp.TOTP(secret).at(clock().replace(tzinfo=UTC))


@pytest.fixture
def pat(factory):
    return factory.family(email="pat@example.com", name="Pat Parent")


@pytest.fixture
def pat_with_2sv(factory):
    user = factory.family(email="pat@example.com", name="Pat Parent", two_step=True)
    VerificationMethod.create(user=user, kind=EMAIL, destination="pat@example.com")
    return user


# --- Forgot password ------------------------------------------------------------------------


def test_sign_in_page_links_to_forgot_password(browser):
    body = text(browser.get("/login"))
    assert 'href="/forgot-password"' in body and "Forgot password?" in body


@pytest.mark.parametrize("htmx", [False, True])
def test_known_and_unknown_email_get_the_same_answer(browser, pat, htmx):
    known = ask_for_link(browser, "pat@example.com", htmx=htmx)
    unknown = ask_for_link(browser, "nobody@example.com", htmx=htmx)
    assert known.status_code == unknown.status_code == 200
    assert without_csrf(known) == without_csrf(unknown)
    assert "If an account exists for that email address" in text(known)
    assert (is_fragment(known) and is_fragment(unknown)) if htmx else is_full_page(known)
    assert len(reset_emails("pat@example.com")) == 1
    assert OutboxMessage.select().where(OutboxMessage.to == "nobody@example.com").count() == 0
    assert PasswordResetToken.select().count() == 1


def test_the_link_is_random_and_stored_only_as_a_hash(browser, pat):
    ask_for_link(browser, "pat@example.com")
    ask_for_link(browser, "PAT@example.com ")
    first, second = (LINK.search(m.body).group(1) for m in reset_emails("pat@example.com"))
    assert first != second and len(first) >= 40
    stored = [row.token_hash for row in PasswordResetToken.select()]
    assert first not in stored and second not in stored
    assert all(len(value) == 64 for value in stored)


def test_the_link_works_once(browser, new_browser, pat):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    page = browser.get(reset_url(token))
    assert page.status_code == 200 and "New password" in text(page)
    done = choose_new_password(browser, token)
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    assert has_password(pat, NEW_PASSWORD)
    again = new_browser().get(reset_url(token))
    assert again.status_code == 410 and "was used already" in text(again)
    replay = choose_new_password(browser, token, "yet another secret phrase")
    assert replay.status_code == 410
    assert has_password(pat, NEW_PASSWORD)


def test_the_link_expires_after_30_minutes(browser, pat, clock):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    clock.advance(minutes=29, seconds=59)
    assert browser.get(reset_url(token)).status_code == 200
    clock.advance(seconds=1)
    expired = browser.get(reset_url(token))
    assert expired.status_code == 410 and "has expired" in text(expired)
    assert choose_new_password(browser, token).status_code == 410
    assert has_password(pat, PASSWORD)


def test_a_newer_link_does_not_extend_an_older_one(browser, pat, clock):
    ask_for_link(browser, "pat@example.com")
    older = last_token("pat@example.com")
    clock.advance(minutes=20)
    ask_for_link(browser, "pat@example.com")
    newer = last_token("pat@example.com")
    clock.advance(minutes=10)  # the older link is 30 minutes old, the newer one 10
    assert browser.get(reset_url(older)).status_code == 410
    assert browser.get(reset_url(newer)).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: token[:20],
        lambda token: token + "x",
        lambda token: "x" * 500,
        lambda token: token.swapcase(),
    ],
)
def test_a_tampered_link_is_refused(browser, pat, tamper):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    bad = tamper(token)
    page = browser.get(reset_url(bad))
    assert page.status_code == 404 and "isn't valid" in text(page)
    browser.get(reset_url(token))  # a page with a form, for the CSRF token
    assert choose_new_password(browser, bad).status_code == 404
    assert has_password(pat, PASSWORD)


def test_after_a_reset_older_links_are_used_up(browser, pat):
    ask_for_link(browser, "pat@example.com")
    older = last_token("pat@example.com")
    ask_for_link(browser, "pat@example.com")
    newer = last_token("pat@example.com")
    browser.get(reset_url(newer))
    choose_new_password(browser, newer)
    assert browser.get(reset_url(older)).status_code == 410


def test_requests_per_address_are_capped_silently(app, browser, pat, clock):
    cap = app.config["PASSWORD_RESET_REQUESTS_PER_ADDRESS"]
    answers = [ask_for_link(browser, "pat@example.com") for _ in range(cap + 2)]
    assert {answer.status_code for answer in answers} == {200}
    assert len({without_csrf(answer) for answer in answers}) == 1
    assert len(reset_emails("pat@example.com")) == cap
    clock.advance(hours=1, seconds=1)
    ask_for_link(browser, "pat@example.com")
    assert len(reset_emails("pat@example.com")) == cap + 1


def test_the_cap_holds_when_requests_arrive_together(app, pat):
    """Requests that were all under the cap when they came in (counted before any of them
    stored its link) still send no more than the cap: each delivery counts again first."""
    cap = app.config["PASSWORD_RESET_REQUESTS_PER_ADDRESS"]
    with app.test_request_context("/forgot-password", method="POST"):
        deliveries = [
            password_reset.request_link("pat@example.com", lambda token: f"/r/{token}")
            for _ in range(cap + 2)
        ]
        for deliver in deliveries:
            deliver()
    assert PasswordResetToken.select().where(PasswordResetToken.user == pat).count() == cap
    assert len(reset_emails("pat@example.com")) == cap


def test_requests_per_ip_are_limited(app, browser, pat):
    from blueprints.extensions import limiter

    app.config["PASSWORD_RESET_REQUESTS_PER_IP"] = "2 per hour"
    with app.app_context():
        limiter.reset()
    assert ask_for_link(browser, "a@example.com").status_code == 200
    assert ask_for_link(browser, "b@example.com").status_code == 200
    limited = ask_for_link(browser, "pat@example.com")
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
    assert reset_emails("pat@example.com") == []


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Enter your email address."),
        ("not-an-address", "Enter an email address"),
        ("a" * 250 + "@example.com", "at most 254 characters"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_bad_forgot_input_gets_a_422_in_place(browser, email, message, htmx):
    response = ask_for_link(browser, email, htmx=htmx)
    assert response.status_code == 422
    assert message in text(response)
    assert is_fragment(response) if htmx else is_full_page(response)
    assert OutboxMessage.select().count() == 0


def test_forgot_page_with_and_without_htmx(browser):
    page = browser.get(FORGOT)
    assert page.status_code == 200 and is_full_page(page) and 'id="forgot-form"' in text(page)
    fragment = browser.get(FORGOT, htmx=True)
    assert fragment.status_code == 200 and is_fragment(fragment)


# --- Choosing the new password (no 2SV) -----------------------------------------------------


def test_reset_without_2sv_changes_the_password_ends_sessions_and_emails(browser, new_browser, pat):
    laptop = new_browser()
    laptop.login("pat@example.com")
    assert signed_in(laptop)
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    done = choose_new_password(browser, token)
    assert done.status_code == 303
    assert has_password(pat, NEW_PASSWORD)
    assert not signed_in(laptop)
    assert not signed_in(browser)
    assert UserSession.select().where(UserSession.user == pat).count() == 0
    login_page = text(browser.get("/login"))
    assert "Your password was changed" in login_page
    changed = OutboxMessage.get(OutboxMessage.subject == password_reset.CHANGED_SUBJECT)
    assert changed.to == "pat@example.com" and NEW_PASSWORD not in changed.body
    event = SecurityEvent.get(SecurityEvent.kind == PASSWORD_CHANGED)
    assert event.user_id == pat.id
    assert browser.login("pat@example.com", NEW_PASSWORD).status_code == 303
    assert signed_in(browser)


@pytest.mark.parametrize("htmx", [False, True])
def test_the_new_password_must_follow_the_rules(browser, pat, htmx):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    cases = [
        ("short", None, "Use at least 12 characters."),
        ("pat@example.com", None, "Don't use your email address"),
        ("password1234", None, "too common"),
        (NEW_PASSWORD, "something else entirely", "don't match"),
        ("", None, "Enter a new password."),
    ]
    for password, confirm, message in cases:
        response = choose_new_password(browser, token, password, confirm, htmx=htmx)
        assert response.status_code == 422, message
        assert message in text(response)
        assert is_fragment(response) if htmx else is_full_page(response)
    assert has_password(pat, PASSWORD)
    assert PasswordResetToken.get().used_at is None


def test_reset_with_htmx_redirects_with_hx_redirect(browser, pat):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    assert is_fragment(browser.get(reset_url(token), htmx=True))
    done = choose_new_password(browser, token, htmx=True)
    assert done.headers["HX-Redirect"] == "/login"
    assert has_password(pat, NEW_PASSWORD)


# --- With 2-Step Verification on ------------------------------------------------------------


def test_with_2sv_the_link_asks_for_a_code_first(browser, pat_with_2sv):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    page = text(browser.get(reset_url(token)))
    assert "Choose how to get your code" in page
    assert "Email p\u2022\u2022\u2022@example.com" in page
    assert "New password" not in page
    # Opening the page sends nothing: only the choice (a POST) does.
    assert OneTimeCode.select().count() == 0


def test_with_2sv_no_code_never_changes_the_password_nor_signs_in(
    browser, new_browser, pat_with_2sv
):
    phone = new_browser()
    phone.login("pat@example.com")
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    refused = choose_new_password(browser, token)
    assert refused.status_code == 403
    assert "Verify it's you" in text(refused)
    assert has_password(pat_with_2sv, PASSWORD)
    assert not signed_in(browser)
    assert PasswordResetToken.get().used_at is None
    assert (
        OutboxMessage.select()
        .where(OutboxMessage.subject == password_reset.CHANGED_SUBJECT)
        .count()
        == 0
    )
    # The session on the other device is untouched (still pending its own code).
    assert UserSession.select().where(UserSession.state == PENDING).count() == 1


@pytest.mark.parametrize("htmx", [False, True])
def test_with_2sv_the_code_then_the_password(browser, new_browser, pat_with_2sv, clock, htmx):
    laptop = new_browser()
    laptop.login("pat@example.com")
    laptop.post("/login/verify", {"code": last_code("pat@example.com")})
    assert signed_in(laptop)
    clock.advance(seconds=31)  # past the resend cooldown of that address
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    method = VerificationMethod.get()
    browser.get(reset_url(token))

    chosen = browser.post(reset_url(token, "/method"), {"method_id": method.id}, htmx=htmx)
    assert chosen.status_code == 200
    assert "We sent a code to p\u2022\u2022\u2022@example.com" in text(chosen)
    assert is_fragment(chosen) if htmx else is_full_page(chosen)
    code_row = OneTimeCode.select().order_by(OneTimeCode.id.desc()).first()
    assert code_row.purpose == password_reset.PURPOSE

    wrong = browser.post(reset_url(token, "/verify"), {"code": "000000"}, htmx=htmx)
    assert wrong.status_code == 422 and "That code isn't right" in text(wrong)
    verified = browser.post(
        reset_url(token, "/verify"), {"code": last_code("pat@example.com")}, htmx=htmx
    )
    assert verified.status_code == 200 and "New password" in text(verified)
    assert not signed_in(browser)

    done = choose_new_password(browser, token, htmx=htmx)
    assert done.status_code == (200 if htmx else 303)
    user = fresh(pat_with_2sv)
    assert has_password(user, NEW_PASSWORD)
    assert user.two_step_enabled
    assert VerificationMethod.select().where(VerificationMethod.user == user).count() == 1
    assert not signed_in(laptop)
    assert not signed_in(browser)
    assert UserSession.select().count() == 0
    assert (
        OutboxMessage.select()
        .where(OutboxMessage.subject == password_reset.CHANGED_SUBJECT)
        .count()
        == 1
    )
    # Signing in with the new password still asks for the second step.
    browser.login("pat@example.com", NEW_PASSWORD)
    assert UserSession.get().state == PENDING
    assert not signed_in(browser)


def test_authenticator_only_shows_the_code_box_at_once(browser, factory, clock):
    user = factory.family(email="pat@example.com", two_step=True)
    secret = pyotp.random_base32()
    VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(secret))
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    page = text(browser.get(reset_url(token)))
    assert "Enter the 6-digit code from your authenticator app" in page
    assert "Send new code" not in page
    verified = browser.post(reset_url(token, "/verify"), {"code": totp_code(secret, clock)})
    assert verified.status_code == 200 and "New password" in text(verified)
    assert choose_new_password(browser, token).status_code == 303
    assert has_password(user, NEW_PASSWORD) and fresh(user).two_step_enabled


def test_staff_with_methods_verify_and_staff_without_do_not(browser, factory):
    staff = factory.staff(email="sam@example.com")
    VerificationMethod.create(user=staff, kind=EMAIL, destination="sam@example.com")
    newcomer = factory.staff(email="nia@example.com")
    ask_for_link(browser, "sam@example.com")
    assert "Choose how to get your code" in text(
        browser.get(reset_url(last_token("sam@example.com")))
    )
    ask_for_link(browser, "nia@example.com")
    token = last_token("nia@example.com")
    assert "New password" in text(browser.get(reset_url(token)))
    assert choose_new_password(browser, token).status_code == 303
    assert has_password(newcomer, NEW_PASSWORD)
    # Still no way round the forced set-up at the next sign-in.
    assert browser.login("nia@example.com", NEW_PASSWORD).headers["Location"].endswith("/setup")


def test_sign_in_codes_and_reset_codes_do_not_mix(browser, new_browser, pat_with_2sv):
    other = new_browser()
    other.login("pat@example.com")  # a sign-in code is sent
    sign_in_code = last_code("pat@example.com")
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    method = VerificationMethod.get()
    refused = browser.post(reset_url(token, "/method"), {"method_id": method.id})
    assert refused.status_code in (200, 429)  # the resend cooldown may hold the new send back
    response = browser.post(reset_url(token, "/verify"), {"code": sign_in_code})
    assert response.status_code == 422
    assert OneTimeCode.get(OneTimeCode.purpose == SIGN_IN).used_at is None


def test_wrong_codes_at_reset_count_towards_the_sign_in_pause(app, browser, pat_with_2sv):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    browser.post(reset_url(token, "/method"), {"method_id": VerificationMethod.get().id})
    statuses = [
        browser.post(reset_url(token, "/verify"), {"code": "000000"}).status_code
        for _ in range(app.config["MAX_FAILED_CODES"])
    ]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {422}
    paused = browser.post(reset_url(token, "/verify"), {"code": last_code("pat@example.com")})
    assert paused.status_code == 429 and "paused" in text(paused)
    assert fresh(pat_with_2sv).verification_paused_until is not None
    assert choose_new_password(browser, token).status_code == 403
    assert has_password(pat_with_2sv, PASSWORD)


def test_the_verified_state_expires_and_stays_in_its_browser(
    browser, new_browser, pat_with_2sv, clock
):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    browser.post(reset_url(token, "/method"), {"method_id": VerificationMethod.get().id})
    browser.post(reset_url(token, "/verify"), {"code": last_code("pat@example.com")})
    # Another browser with the same link has not given the code.
    stranger = new_browser()
    assert "New password" not in text(stranger.get(reset_url(token)))
    assert choose_new_password(stranger, token).status_code == 403
    clock.advance(minutes=11)
    assert "New password" not in text(browser.get(reset_url(token)))
    assert choose_new_password(browser, token).status_code == 403
    assert has_password(pat_with_2sv, PASSWORD)


def test_picker_resend_and_try_another_method(browser, factory, clock):
    user = factory.family(email="pat@example.com", two_step=True)
    email = VerificationMethod.create(user=user, kind=EMAIL, destination="pat@example.com")
    VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(pyotp.random_base32()))
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    page = text(browser.get(reset_url(token)))
    assert "Authenticator App" in page and "Email p\u2022\u2022\u2022@example.com" in page
    code_box = text(browser.post(reset_url(token, "/method"), {"method_id": email.id}))
    assert "Send new code" in code_box and "Try another method" in code_box
    clock.advance(seconds=31)
    resent = browser.post(reset_url(token, "/resend"), htmx=True)
    assert resent.status_code == 200 and is_fragment(resent)
    first, second = (
        SIX_DIGITS.search(m.body).group(1)
        for m in OutboxMessage.select().where(OutboxMessage.subject == "User OTP from Online-Auth")
    )
    picker = browser.get(reset_url(token) + "?methods=1", htmx=True)
    assert "Choose how to get your code" in text(picker) and is_fragment(picker)
    # Both codes are alive; the first one works.
    verified = browser.post(reset_url(token, "/verify"), {"code": first})
    assert "New password" in text(verified)


@pytest.mark.parametrize("method_id", ["", "abc", "-1", "0", "99999999999999999999999", "1e9"])
def test_a_tampered_method_choice_is_refused(browser, pat_with_2sv, factory, method_id):
    stranger = factory.family(email="sam@example.com", two_step=True)
    theirs = VerificationMethod.create(user=stranger, kind=EMAIL, destination="sam@example.com")
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    for value in (method_id, str(theirs.id)):
        response = browser.post(reset_url(token, "/method"), {"method_id": value})
        assert response.status_code == 422
        assert "Choose one of the methods listed" in text(response)
    assert OneTimeCode.select().count() == 0


@pytest.mark.parametrize("code", ["", "abcdef", "12345", "1234567", "١٢٣٤٥٦", "x" * 5000])
def test_bad_codes_get_a_4xx(browser, factory, code):
    user = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(pyotp.random_base32()))
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    response = browser.post(reset_url(token, "/verify"), {"code": code})
    assert response.status_code == 422


def test_reset_pages_refuse_posts_without_csrf(browser, pat_with_2sv):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.get(reset_url(token))
    method_id = VerificationMethod.get().id
    for url, data in [
        (FORGOT, {"email": "pat@example.com"}),
        (reset_url(token, "/method"), {"method_id": method_id}),
        (reset_url(token, "/resend"), {}),
        (reset_url(token, "/verify"), {"code": "123456"}),
        (reset_url(token, "/recovery"), {"recovery_code": "ABCD-EFGH-2345"}),
        (reset_url(token), {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}),
        (CHANGE, {}),
    ]:
        response = browser.post(url, data, csrf=False)
        response.close()
        assert response.status_code in (400, 302), url
    assert len(reset_emails("pat@example.com")) == 1
    assert OneTimeCode.select().count() == 0
    assert has_password(pat_with_2sv, PASSWORD)


def test_non_utf8_input_is_a_4xx(browser, pat):
    browser.get(FORGOT)
    body = b"csrf_token=" + browser.csrf_token.encode() + b"&email=\xff\xfe%ff"
    response = browser.client.post(
        FORGOT, data=body, content_type="application/x-www-form-urlencoded"
    )
    assert 400 <= response.status_code < 500


def test_a_half_signed_in_browser_can_still_reset(browser, pat_with_2sv):
    browser.login("pat@example.com")  # pending: the code is not given yet
    assert browser.get(FORGOT).status_code == 200
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    assert browser.get(reset_url(token)).status_code == 200


# --- A recovery code in place of the second step --------------------------------------------

RECOVERY_USED_SUBJECT = "A recovery code was used to reset your password"


def open_link(browser, email="pat@example.com"):
    """Ask for a link for `email` and open it; return its token."""
    ask_for_link(browser, email)
    token = last_token(email)
    browser.get(reset_url(token))
    return token


def use_recovery_code(browser, token, code, htmx=False):
    return browser.post(reset_url(token, "/recovery"), {"recovery_code": code}, htmx=htmx)


def failed_count(user):
    return fresh(user).failed_code_count


@pytest.mark.parametrize("htmx", [False, True])
def test_every_second_step_offers_a_recovery_code(browser, factory, htmx):
    user = factory.family(email="pat@example.com", two_step=True)
    email = VerificationMethod.create(user=user, kind=EMAIL, destination="pat@example.com")
    VerificationMethod.create(user=user, kind=TOTP, secret=crypto.encrypt(pyotp.random_base32()))
    token = open_link(browser)
    picker = browser.get(reset_url(token), htmx=htmx)
    assert "Choose how to get your code" in text(picker) and "Use a recovery code" in text(picker)
    code_box = browser.post(reset_url(token, "/method"), {"method_id": email.id}, htmx=htmx)
    assert "Send new code" in text(code_box) and "Use a recovery code" in text(code_box)
    assert "Check your spam or junk folder" in text(code_box)
    assert "Lost your phone?" in text(code_box)

    form = browser.get(reset_url(token) + "?recovery=1", htmx=htmx)
    assert form.status_code == 200
    assert is_fragment(form) if htmx else is_full_page(form)
    page = text(form)
    assert '<label for="recovery-code">Recovery code</label>' in page
    assert 'aria-describedby="recovery-instructions"' in page
    assert f'action="{reset_url(token, "/recovery")}"' in page
    assert ">Verify</button>" in page
    assert re.search(r'<a class="button" role="button" href="[^"]+"[^>]*>Back</a>', page)
    assert "New password" not in page
    # Showing the form changes nothing: no code sent, nothing counted, no step passed.
    assert OneTimeCode.select().count() == 1
    assert failed_count(user) == 0
    assert "Use a recovery code" in text(browser.get(reset_url(token)))


def test_a_security_key_step_offers_a_recovery_code(browser, factory):
    user = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=user, kind="webauthn", destination="Key", credential_id="k1")
    page = text(browser.get(reset_url(open_link(browser))))
    assert "Use security key" in page and "Use a recovery code" in page
    assert "Try another method" not in page
    assert "Lost your key?" in page and "Once signed in" not in page


@pytest.mark.parametrize("htmx", [False, True])
def test_a_recovery_code_opens_the_new_password_form_once(browser, new_browser, pat_with_2sv, htmx):
    codes = recovery_codes.generate(pat_with_2sv)
    token = open_link(browser)

    verified = use_recovery_code(browser, token, codes[3].lower().replace("-", " "), htmx=htmx)
    assert verified.status_code == 200
    assert is_fragment(verified) if htmx else is_full_page(verified)
    page = text(verified)
    assert "Thanks, that's you. Now choose a new password." in page
    assert "New password" in page and 'id="new-password-form"' in page
    assert recovery_codes.remaining(pat_with_2sv) == 9
    # Used, logged and emailed; nobody is signed in (no sign-in, no active session).
    assert not signed_in(browser)
    assert SecurityEvent.select().where(SecurityEvent.kind == SIGNED_IN).count() == 0
    assert UserSession.select().count() == 0
    event = SecurityEvent.get(SecurityEvent.kind == RECOVERY_CODE_USED_FOR_RESET)
    assert event.method_kind == "recovery"
    assert event.detail == "9 recovery codes left"
    email = OutboxMessage.get(OutboxMessage.subject == RECOVERY_USED_SUBJECT)
    assert email.to == "pat@example.com"
    assert "Recovery code used to reset the password: 9 recovery codes left" in email.body
    assert codes[3] not in email.body

    done = choose_new_password(browser, token, htmx=htmx)
    assert done.status_code == (200 if htmx else 303)
    user = fresh(pat_with_2sv)
    assert has_password(user, NEW_PASSWORD) and user.two_step_enabled
    assert not signed_in(browser)
    assert UserSession.select().count() == 0

    # The code is used up: on a new link, in another browser, it is refused (a repeat just
    # after its use is not counted as a guess).
    other = new_browser()
    again_token = open_link(other)
    again = use_recovery_code(other, again_token, codes[3], htmx=htmx)
    assert again.status_code == 422
    assert "That recovery code was just used" in text(again)
    assert "New password" not in text(again)
    assert failed_count(pat_with_2sv) == 0
    assert choose_new_password(other, again_token).status_code == 403
    # The new password still asks for the second step at sign-in.
    browser.login("pat@example.com", NEW_PASSWORD)
    assert UserSession.get().state == PENDING


@pytest.mark.parametrize("htmx", [False, True])
def test_a_wrong_recovery_code_is_refused_in_place_and_counted(browser, pat_with_2sv, htmx):
    codes = recovery_codes.generate(pat_with_2sv)
    token = open_link(browser)
    wrong = use_recovery_code(browser, token, "ABCD-EFGH-2345", htmx=htmx)
    assert wrong.status_code == 422
    assert is_fragment(wrong) if htmx else is_full_page(wrong)
    page = text(wrong)
    assert "That recovery code isn't right" in page
    assert 'name="recovery_code"' in page and 'aria-invalid="true"' in page
    assert 'aria-describedby="recovery-instructions recovery-code-error"' in page
    assert '<p class="field-error" id="recovery-code-error" role="alert">' in page
    assert "New password" not in page
    assert failed_count(pat_with_2sv) == 1
    assert recovery_codes.remaining(pat_with_2sv) == len(codes)
    assert choose_new_password(browser, token).status_code == 403
    assert has_password(pat_with_2sv, PASSWORD)
    # A right one afterwards works, and starts the count again.
    assert "New password" in text(use_recovery_code(browser, token, codes[0], htmx=htmx))
    assert failed_count(pat_with_2sv) == 0


@pytest.mark.parametrize("typed", ["", "   ", "123456", "ABCD-EFGH", "ÀBCD-EFGH-2345", "x" * 5000])
def test_a_malformed_recovery_code_is_422_and_counts_nothing(browser, pat_with_2sv, typed):
    recovery_codes.generate(pat_with_2sv)
    token = open_link(browser)
    response = use_recovery_code(browser, token, typed)
    assert response.status_code == 422
    page = text(response)
    assert recovery_codes.EMPTY_MESSAGE in page or recovery_codes.FORMAT_MESSAGE in page
    assert 'aria-invalid="true"' in page
    assert failed_count(pat_with_2sv) == 0
    assert recovery_codes.remaining(pat_with_2sv) == recovery_codes.COUNT


def test_wrong_recovery_codes_and_wrong_codes_share_the_pause(app, browser, pat_with_2sv):
    codes = recovery_codes.generate(pat_with_2sv)
    token = open_link(browser)
    browser.post(reset_url(token, "/method"), {"method_id": VerificationMethod.get().id})
    statuses = []
    for attempt in range(app.config["MAX_FAILED_CODES"]):
        if attempt % 2:
            response = browser.post(reset_url(token, "/verify"), {"code": "000000"})
        else:
            response = use_recovery_code(browser, token, "ABCD-EFGH-2345")
        statuses.append(response.status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {422}
    assert "paused" in text(response)
    assert fresh(pat_with_2sv).verification_paused_until is not None

    # While paused, even a right recovery code is refused, and is not used up.
    paused = use_recovery_code(browser, token, codes[0])
    assert paused.status_code == 429 and "paused" in text(paused)
    assert 'name="recovery_code"' in text(paused)
    assert recovery_codes.remaining(pat_with_2sv) == recovery_codes.COUNT
    assert choose_new_password(browser, token).status_code == 403
    assert has_password(pat_with_2sv, PASSWORD)


def test_a_pending_sign_in_is_not_finished_by_a_recovery_code_at_reset(browser, pat_with_2sv):
    codes = recovery_codes.generate(pat_with_2sv)
    browser.login("pat@example.com")  # pending: the code is not given yet
    token = open_link(browser)
    assert "New password" in text(use_recovery_code(browser, token, codes[0]))
    assert not signed_in(browser)
    assert UserSession.select().where(UserSession.state == ACTIVE).count() == 0
    assert SecurityEvent.select().where(SecurityEvent.kind == SIGNED_IN).count() == 0


def test_once_the_step_is_passed_a_recovery_code_is_not_used(browser, pat_with_2sv):
    codes = recovery_codes.generate(pat_with_2sv)
    token = open_link(browser)
    browser.post(reset_url(token, "/method"), {"method_id": VerificationMethod.get().id})
    browser.post(reset_url(token, "/verify"), {"code": last_code("pat@example.com")})
    answer = use_recovery_code(browser, token, codes[0])
    assert answer.status_code == 200 and "New password" in text(answer)
    assert recovery_codes.remaining(pat_with_2sv) == recovery_codes.COUNT
    # The form itself is not offered either: the new-password form is.
    assert "New password" in text(browser.get(reset_url(token) + "?recovery=1"))


def test_without_recovery_codes_the_page_still_works(browser, pat_with_2sv):
    token = open_link(browser)
    assert "Use a recovery code" in text(browser.get(reset_url(token)))
    assert "Recovery code" in text(browser.get(reset_url(token) + "?recovery=1"))
    refused = use_recovery_code(browser, token, "ABCD-EFGH-2345")
    assert refused.status_code == 422 and "isn't right" in text(refused)
    back = text(browser.get(reset_url(token)))
    assert "Choose how to get your code" in back
    browser.post(reset_url(token, "/method"), {"method_id": VerificationMethod.get().id})
    verified = browser.post(reset_url(token, "/verify"), {"code": last_code("pat@example.com")})
    assert verified.status_code == 200 and "New password" in text(verified)
    assert failed_count(pat_with_2sv) == 0


def test_a_broken_link_takes_no_recovery_code(browser, pat_with_2sv):
    codes = recovery_codes.generate(pat_with_2sv)
    response = use_recovery_code(browser, "not-a-real-token", codes[0])
    assert response.status_code == 404
    assert recovery_codes.remaining(pat_with_2sv) == recovery_codes.COUNT
    assert browser.get(reset_url("not-a-real-token") + "?recovery=1").status_code == 404


class TestOnlyALeftOutMethod:
    """Staff whose only method the policy no longer allows: a reset still asks for it
    (Decisions 20: what is saved is proven, never skipped), and a recovery code still works."""

    @pytest.fixture
    def app_config(self):
        return {"STAFF_METHODS": "totp,sms"}

    def test_the_saved_method_is_offered_and_a_recovery_code_works(self, browser, factory):
        staff = factory.staff(email="sam@example.com", two_step=True)
        VerificationMethod.create(user=staff, kind=EMAIL, destination="sam@example.com")
        codes = recovery_codes.generate(staff)
        token = open_link(browser, "sam@example.com")
        page = text(browser.get(reset_url(token)))
        assert "None of your verification methods can be used here right now." not in page
        assert "Email s\u2022\u2022\u2022@example.com" in page
        assert "Use a recovery code" in page
        assert "New password" in text(use_recovery_code(browser, token, codes[0]))
        assert choose_new_password(browser, token).status_code == 303
        assert has_password(staff, NEW_PASSWORD)


# --- Change password ------------------------------------------------------------------------


def change(browser, current=PASSWORD, new=NEW_PASSWORD, confirm=None, htmx=False):
    return browser.post(
        CHANGE,
        {
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
        },
        htmx=htmx,
    )


def test_change_password_needs_a_sign_in(browser):
    response = browser.get(CHANGE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("htmx", [False, True])
def test_change_password_page(browser, pat, htmx):
    browser.login("pat@example.com")
    assert 'href="/profile/password"' in text(browser.get("/profile"))
    page = browser.get(CHANGE, htmx=htmx)
    body = text(page)
    assert page.status_code == 200
    assert "Current password" in body and "New password" in body
    assert "Confirm new password" in body
    assert is_fragment(page) if htmx else is_full_page(page)


@pytest.mark.parametrize("htmx", [False, True])
def test_change_password_keeps_this_session_and_ends_the_others(browser, new_browser, pat, htmx):
    phone = new_browser()
    phone.login("pat@example.com")
    browser.login("pat@example.com")
    browser.get(CHANGE)
    response = change(browser, htmx=htmx)
    if htmx:
        assert response.status_code == 200 and is_fragment(response)
        assert "Your password was changed" in text(response)
    else:
        assert response.status_code == 303 and response.headers["Location"] == CHANGE
        assert "Your password was changed" in text(browser.get(CHANGE))
    assert has_password(pat, NEW_PASSWORD)
    assert signed_in(browser)
    assert not signed_in(phone)
    assert UserSession.select().count() == 1
    email = OutboxMessage.get(OutboxMessage.subject == password_reset.CHANGED_SUBJECT)
    assert email.to == "pat@example.com"
    assert SecurityEvent.select().where(SecurityEvent.kind == PASSWORD_CHANGED).count() == 1


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("not my password", NEW_PASSWORD, None, "That password is not right."),
        ("", NEW_PASSWORD, None, "Enter your current password."),
        (PASSWORD, "short", None, "Use at least 12 characters."),
        (PASSWORD, "x" * 129, None, "Use at most 128 characters."),
        (PASSWORD, "PAT@example.com", None, "Don't use your email address"),
        (PASSWORD, "Qwerty123456", None, "too common"),
        (PASSWORD, NEW_PASSWORD, "a different phrase", "don't match"),
        (PASSWORD, "x" * 2000, None, "That password is too long."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_change_password_refusals(browser, pat, current, new, confirm, message, htmx):
    browser.login("pat@example.com")
    browser.get(CHANGE)
    response = change(browser, current, new, confirm, htmx=htmx)
    assert response.status_code == 422
    assert message in text(response)
    assert is_fragment(response) if htmx else is_full_page(response)
    assert has_password(pat, PASSWORD)
    assert OutboxMessage.select().count() == 0


def test_change_password_uses_up_reset_links(browser, pat):
    ask_for_link(browser, "pat@example.com")
    token = last_token("pat@example.com")
    browser.login("pat@example.com")
    browser.get(CHANGE)
    change(browser)
    assert browser.get(reset_url(token)).status_code == 410


def test_reset_emails_say_what_to_do(browser, pat, app):
    ask_for_link(browser, "pat@example.com")
    message = reset_emails("pat@example.com")[-1]
    assert "30 minutes" in message.body and "Pat Parent" in message.body
    assert LINK.search(message.html)
    timestamp = PasswordResetToken.get()
    assert timestamp.expires_at - timestamp.created_at == timedelta(minutes=30)
