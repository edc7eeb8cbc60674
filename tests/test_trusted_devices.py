"""Trusted devices: "Don't ask again on this device for 30 days" at the challenge, the cookie,
skipping the code at the next sign-in, the window's list with Revoke and Revoke all, and
every event that revokes them."""

import hashlib
import html
import re
from datetime import timedelta

import pytest
from flask import make_response

from blueprints.web import trust_this_device
from models.events import SIGNED_IN, SecurityEvent
from models.outbox import OutboxMessage
from models.people import User
from models.recovery import TrustedDevice
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import EMAIL, SMS, VerificationMethod
from tests.conftest import PASSWORD

VERIFY = "/login/verify"
WINDOW = "/profile/2sv"
COOKIE = "twostep_trusted"
TRUST_LABEL = "Don't ask again on this device for 30 days"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
SIX_DIGITS = re.compile(r"\b(\d{6})\b")


def text(response):
    return html.unescape(response.get_data(as_text=True))


def last_code(to):
    message = (
        OutboxMessage.select()
        .where(OutboxMessage.to == to)
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return SIX_DIGITS.search(message.body).group(1)


def session_state(browser):
    """ "active", "pending" or None: where this browser stands after its last sign-in."""
    if browser.get("/profile").status_code == 200:
        return ACTIVE
    return PENDING if browser.get(VERIFY).status_code == 200 else None


def sign_in_with_code(browser, email, trust=False, **kwargs):
    """Password, then the emailed code (ticking the box when `trust`)."""
    response = browser.login(email, **kwargs)
    assert response.headers["Location"] == VERIFY
    # Two methods: the picker; choosing email sends the code.
    method_id = str(email_method(User.by_email(email)).id)
    assert (
        browser.post("/login/verify/method", {"method_id": method_id}, **kwargs).status_code == 200
    )
    form = {"code": last_code(email)}
    if trust:
        form["trust"] = "on"
    return browser.post(VERIFY, form, **kwargs)


def skips_the_code(browser, email):
    """Sign out and in again: True if the password alone signed this browser in."""
    browser.logout()
    response = browser.login(email)
    return response.status_code == 303 and response.headers["Location"] == "/"


def email_method(user):
    return VerificationMethod.get(VerificationMethod.user == user, VerificationMethod.kind == EMAIL)


def two_step_person(factory, email="pat@example.com", staff=False):
    make = factory.staff if staff else factory.family
    user = make(email=email, name="Pat Parent", two_step=True)
    VerificationMethod.create(user=user, kind=EMAIL, destination=email)
    VerificationMethod.create(user=user, kind=SMS, destination="+12015550123")
    return user


@pytest.fixture
def pat(factory):
    return two_step_person(factory)


@pytest.fixture
def trusted(browser, pat):
    """Pat signed in with the box ticked, in `browser`."""
    response = sign_in_with_code(browser, "pat@example.com", trust=True)
    assert response.status_code == 303
    return response


# --- the box and the cookie ----------------------------------------------------------------


def test_the_code_box_offers_the_box_to_families(browser, pat):
    browser.login("pat@example.com")
    browser.post("/login/verify/method", {"method_id": str(email_method(pat).id)})
    body = text(browser.get(VERIFY))
    assert TRUST_LABEL in body
    assert re.search(r'<input type="checkbox" id="trust" name="trust" value="on">', body)


def test_a_trusted_device_skips_the_code(browser, pat, trusted, clock):
    cookie = browser.client.get_cookie(COOKIE)
    assert cookie is not None and cookie.http_only and not cookie.secure
    assert cookie.same_site == "Lax" and cookie.path == "/"
    set_cookie = next(
        value for value in trusted.headers.getlist("Set-Cookie") if value.startswith(COOKIE)
    )
    assert "Max-Age=2592000" in set_cookie  # 30 days
    device = TrustedDevice.get()
    assert device.token_hash == hashlib.sha256(cookie.value.encode()).hexdigest()
    assert cookie.value not in device.token_hash
    assert device.created_at == clock()
    assert device.expires_at - device.created_at == timedelta(days=30)
    sent_before = OutboxMessage.select().count()
    clock.advance(hours=1)
    assert skips_the_code(browser, "pat@example.com")
    assert session_state(browser) == ACTIVE
    assert OutboxMessage.select().count() == sent_before  # no code was sent
    event = (
        SecurityEvent.select()
        .where(SecurityEvent.kind == SIGNED_IN)
        .order_by(SecurityEvent.id.desc())[0]
    )
    assert event.method_kind == "trusted_device"
    assert TrustedDevice.get().last_used_at == clock()


def test_without_the_box_the_code_is_asked_again(browser, pat):
    sign_in_with_code(browser, "pat@example.com")
    assert browser.client.get_cookie(COOKIE) is None
    assert TrustedDevice.select().count() == 0
    assert not skips_the_code(browser, "pat@example.com")


def test_the_box_with_a_wrong_code_trusts_nothing(browser, pat):
    browser.login("pat@example.com")
    response = browser.post(VERIFY, {"code": "000000", "trust": "on"})
    assert response.status_code == 422
    assert TrustedDevice.select().count() == 0 and browser.client.get_cookie(COOKIE) is None


def test_the_device_is_trusted_for_30_days(browser, pat, trusted, clock):
    clock.advance(days=29, hours=23)
    assert skips_the_code(browser, "pat@example.com")
    clock.advance(hours=2)
    assert not skips_the_code(browser, "pat@example.com")
    assert session_state(browser) == PENDING


def test_the_cookie_works_only_for_its_own_person(browser, factory, pat, trusted):
    two_step_person(factory, email="sam@example.com")
    assert not skips_the_code(browser, "sam@example.com")
    assert session_state(browser) == PENDING


def test_a_copied_cookie_value_of_another_device_is_useless(browser, new_browser, pat, trusted):
    other = new_browser()
    other.client.set_cookie(COOKIE, "not-the-token")
    other.login("pat@example.com")
    assert session_state(other) == PENDING


def test_the_cookie_is_secure_in_production(app, pat):
    app.config["PRODUCTION"] = True
    with app.test_request_context("/login/verify", headers={"User-Agent": FIREFOX}):
        response = make_response("")
        trust_this_device(response, pat)
    set_cookie = response.headers["Set-Cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie


# --- staff ---------------------------------------------------------------------------------


def test_staff_may_not_by_default(browser, factory):
    staff = two_step_person(factory, email="terry@example.com", staff=True)
    browser.login("terry@example.com")
    browser.post("/login/verify/method", {"method_id": str(email_method(staff).id)})
    assert TRUST_LABEL not in text(browser.get(VERIFY))
    browser.post(VERIFY, {"code": last_code("terry@example.com"), "trust": "on"})
    assert session_state(browser) == ACTIVE
    assert TrustedDevice.select().count() == 0 and browser.client.get_cookie(COOKIE) is None
    assert "Staff accounts are asked for a code at every sign-in" in text(browser.get(WINDOW))


class TestStaffWhenAllowed:
    @pytest.fixture
    def app_config(self):
        return {"TRUSTED_DEVICES_FOR_STAFF": True}

    def test_staff_may_when_the_setting_allows_it(self, app, browser, factory):
        staff = two_step_person(factory, email="terry@example.com", staff=True)
        browser.login("terry@example.com")
        browser.post("/login/verify/method", {"method_id": str(email_method(staff).id)})
        assert TRUST_LABEL in text(browser.get(VERIFY))
        browser.post(VERIFY, {"code": last_code("terry@example.com"), "trust": "on"})
        assert skips_the_code(browser, "terry@example.com")
        # Turning the setting off stops staff devices from skipping at once.
        app.config["TRUSTED_DEVICES_FOR_STAFF"] = False
        assert not skips_the_code(browser, "terry@example.com")

    def test_a_trusted_device_does_not_skip_a_forced_set_up(self, app, browser, factory):
        two_step_person(factory, email="terry@example.com", staff=True)
        sign_in_with_code(browser, "terry@example.com", trust=True)
        app.config["STAFF_METHODS"] = "totp"  # neither of Terry's methods is allowed any more
        browser.logout()
        # The device is not trusted to skip: a saved method is proven first, then the set-up.
        assert browser.login("terry@example.com").headers["Location"] == "/login/verify"
        assert TrustedDevice.get().last_used_at is None


# --- the window ----------------------------------------------------------------------------


def test_the_window_lists_devices_with_a_label(factory, new_browser):
    two_step_person(factory)
    browser = new_browser()
    headers = {"User-Agent": FIREFOX}
    sign_in_with_code(browser, "pat@example.com", trust=True, headers=headers)
    body = text(browser.get(WINDOW, headers=headers))
    assert "Devices you trust" in body and "Firefox on Windows" in body
    assert "This device" in body and "Revoke all" in body
    assert re.search(r"Revoke<span class=\"visually-hidden\"> Firefox on Windows</span>", body)
    assert TrustedDevice.get().label == "Firefox on Windows"


def test_revoke_is_a_fragment_for_htmx(browser, pat, trusted):
    device = TrustedDevice.get()
    response = browser.post(f"{WINDOW}/devices/{device.id}/revoke", htmx=True)
    assert response.status_code == 200 and "<html" not in text(response)
    assert 'id="trusted-devices"' in text(response) and "asked for a code again" in text(response)
    assert TrustedDevice.select().count() == 0


@pytest.mark.parametrize("device_id", ["0", "-1", "abc", "99999", "1e3", "9" * 40])
def test_a_tampered_device_id_is_404(browser, pat, trusted, device_id):
    response = browser.post(f"{WINDOW}/devices/{device_id}/revoke")
    assert response.status_code == 404
    assert TrustedDevice.select().count() == 1


def test_another_persons_device_cannot_be_revoked(browser, new_browser, factory, pat, trusted):
    two_step_person(factory, email="sam@example.com")
    sam = new_browser()
    sign_in_with_code(sam, "sam@example.com")
    device = TrustedDevice.get()
    assert sam.post(f"{WINDOW}/devices/{device.id}/revoke").status_code == 404
    assert TrustedDevice.select().count() == 1


def test_revoking_needs_a_recent_sign_in_and_csrf(browser, pat, trusted, clock):
    device = TrustedDevice.get()
    assert browser.post(f"{WINDOW}/devices/{device.id}/revoke", csrf=False).status_code == 400
    clock.advance(minutes=16)
    browser.get(WINDOW)
    response = browser.post(f"{WINDOW}/devices/revoke-all")
    assert "/confirm-password" in response.headers["Location"]
    assert TrustedDevice.select().count() == 1


# --- every revoking event ------------------------------------------------------------------


def revoke_one(browser, user):
    browser.get(WINDOW)
    device = TrustedDevice.get()
    assert browser.post(f"{WINDOW}/devices/{device.id}/revoke").status_code == 303


def revoke_all(browser, user):
    browser.get(WINDOW)
    response = browser.post(f"{WINDOW}/devices/revoke-all", htmx=True)
    assert "Revoked 1 device" in text(response)


def turn_off_and_on(browser, user):
    browser.get(WINDOW)
    browser.post(f"{WINDOW}/toggle", {"enabled": "off"}, htmx=True)
    assert TrustedDevice.select().count() == 0
    browser.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=True)
    assert User.get_by_id(user.id).two_step_enabled


def remove_a_method(browser, user):
    browser.get(WINDOW)
    sms = VerificationMethod.get(kind=SMS)
    assert browser.post(f"/profile/2sv/methods/{sms.id}/delete").status_code == 303
    assert User.get_by_id(user.id).two_step_enabled


def admin_reset(browser, user):
    from services.admin.reset import reset_two_step
    from tests.conftest import Factory

    admin = Factory().admin(email="ada@example.com")
    reset_two_step(User.get_by_id(user.id), admin)
    # Pat sets 2SV up again.
    User.update(two_step_enabled=True).where(User.id == user.id).execute()
    VerificationMethod.create(user=user, kind=EMAIL, destination=user.email)


NEW_PASSWORD = "a brand new passphrase for 2026"


def change_password(browser, user):
    browser.get("/profile/password")
    response = browser.post(
        "/profile/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 303
    return NEW_PASSWORD


def reset_password_with_a_link(browser, user):
    """ "Forgot password?" on another device: the link, the emailed code, a new password."""
    from flask import current_app

    from services.signin import password_reset
    from tests.conftest import Browser

    current_app.config["CLOCK"].advance(seconds=31)  # past the cooldown of the address
    other = Browser(current_app.test_client())
    other.get("/forgot-password")
    other.post("/forgot-password", {"email": user.email}).close()  # closing runs the delivery
    link = OutboxMessage.get(OutboxMessage.subject == password_reset.RESET_SUBJECT)
    token = re.search(r"/reset-password/([\w-]+)", link.body).group(1)
    url = f"/reset-password/{token}"
    other.get(url)
    other.post(f"{url}/method", {"method_id": email_method(user).id})
    assert other.post(f"{url}/verify", {"code": last_code(user.email)}).status_code == 200
    done = other.post(url, {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert done.status_code == 303
    return NEW_PASSWORD


@pytest.mark.parametrize(
    "revoking_event",
    [
        revoke_one,
        revoke_all,
        turn_off_and_on,
        remove_a_method,
        admin_reset,
        change_password,
        reset_password_with_a_link,
    ],
)
def test_each_revoking_event_stops_the_skipping(browser, pat, trusted, revoking_event):
    assert skips_the_code(browser, "pat@example.com")
    password = revoking_event(browser, pat) or PASSWORD
    assert TrustedDevice.select().count() == 0
    browser.logout()
    response = browser.login("pat@example.com", password=password)
    assert response.headers["Location"] == VERIFY
    assert session_state(browser) == PENDING
    assert UserSession.select().where(UserSession.state == ACTIVE).count() == 0


def test_expired_devices_are_purged(app, browser, pat, trusted, clock):
    from services.housekeeping import purge

    with app.app_context():
        assert purge()["trusted_devices"] == 0
        clock.advance(days=31)
        assert purge()["trusted_devices"] == 1
    assert TrustedDevice.select().count() == 0
