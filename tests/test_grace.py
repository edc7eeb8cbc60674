"""The staff roll-out: "Not now" on the forced set-up for STAFF_SETUP_GRACE_SIGNINS sign-ins."""

import html

import pytest

from models.events import SIGNED_IN, SecurityEvent
from models.people import User
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import EMAIL, VerificationMethod
from tests.conftest import is_fragment, is_full_page

SETUP = "/login/verify/setup"
SKIP = "/login/verify/setup/skip"


@pytest.fixture
def app_config():
    return {"STAFF_SETUP_GRACE_SIGNINS": 2}


def text(response):
    return html.unescape(response.get_data(as_text=True))


def signed_in(browser):
    return browser.get("/profile").status_code == 200


def start_sign_in(browser, email="terry@example.com"):
    """The password step; returns the forced set-up page it leads to."""
    response = browser.login(email)
    assert response.status_code == 303 and response.headers["Location"] == SETUP
    return browser.get(SETUP)


def skip(browser, htmx=False):
    return browser.post(SKIP, htmx=htmx)


def used(user):
    return User.get_by_id(user.id).grace_signins_used


@pytest.fixture
def terry(factory):
    return factory.staff(email="terry@example.com", name="Terry Teacher")


def test_two_grace_sign_ins_then_set_up_is_required(browser, terry):
    page = text(start_sign_in(browser))
    assert "2 more sign-ins before set-up is required." in page
    assert "Not now" in page
    response = skip(browser)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert signed_in(browser)
    assert UserSession.get().state == ACTIVE
    assert used(terry) == 1
    browser.logout()

    page = text(start_sign_in(browser))
    assert "1 more sign-in before set-up is required." in page
    assert skip(browser).status_code == 303 and signed_in(browser)
    browser.logout()

    page = text(start_sign_in(browser))
    assert "Not now" not in page and "before set-up is required" not in page
    refused = skip(browser)
    assert refused.status_code == 409
    assert "can't be postponed any more" in text(refused)
    assert not signed_in(browser)
    assert UserSession.get().state == PENDING
    assert used(terry) == 2


def test_skipping_keeps_where_the_person_was_going(browser, terry):
    browser.get("/login")
    browser.post(
        "/login",
        {"email": "terry@example.com", "password": "correct horse battery", "next": "/profile"},
    )
    browser.get(SETUP)
    assert skip(browser).headers["Location"] == "/profile"


@pytest.mark.parametrize("htmx", [False, True])
def test_the_setup_page_and_not_now_with_and_without_htmx(browser, terry, htmx):
    page = start_sign_in(browser)
    assert is_full_page(page)
    response = skip(browser, htmx=htmx)
    if htmx:
        assert response.headers["HX-Redirect"] == "/"
    else:
        assert response.status_code == 303
    assert signed_in(browser)


def test_a_refused_skip_with_htmx_answers_in_place(browser, terry):
    User.update(grace_signins_used=2).where(User.id == terry.id).execute()
    start_sign_in(browser)
    refused = skip(browser, htmx=True)
    assert refused.status_code == 409 and is_fragment(refused)
    assert "can't be postponed any more" in text(refused)


def test_not_now_needs_csrf(browser, terry):
    start_sign_in(browser)
    assert browser.post(SKIP, csrf=False).status_code == 400
    assert used(terry) == 0 and not signed_in(browser)


def test_skip_needs_a_pending_staff_sign_in_without_a_method(browser, new_browser, factory, terry):
    # Nobody signed in: back to the password.
    assert skip(new_browser()).status_code in (302, 303, 401)
    # A staff member with a method is asked for the code instead.
    ready = factory.staff(email="sam@example.com")
    VerificationMethod.create(user=ready, kind=EMAIL, destination="sam@example.com")
    other = new_browser()
    other.login("sam@example.com")
    assert skip(other).status_code in (302, 303, 401)
    assert not signed_in(other) and used(ready) == 0
    # A family is signed in without any set-up; nothing to skip.
    family = factory.family(email="pat@example.com")
    parent = new_browser()
    parent.login("pat@example.com")
    assert signed_in(parent)
    assert skip(parent).headers["Location"] == "/profile/2sv"
    assert used(family) == 0


def test_an_admin_reset_does_not_grant_new_grace(app, browser, factory, terry):
    from services.admin.reset import reset_two_step

    admin = factory.admin(email="ada@example.com")
    start_sign_in(browser)
    skip(browser)
    browser.logout()
    start_sign_in(browser)
    skip(browser)
    browser.logout()
    # Terry sets up a method, then an admin resets Terry's 2SV.
    VerificationMethod.create(user=terry, kind=EMAIL, destination="terry@example.com")
    with app.test_request_context():
        reset_two_step(User.get_by_id(terry.id), admin)
    assert used(terry) == 2
    page = text(start_sign_in(browser))
    assert "Not now" not in page
    assert skip(browser).status_code == 409
    assert not signed_in(browser)


def test_a_skipped_sign_in_is_recorded(browser, terry):
    start_sign_in(browser)
    skip(browser)
    event = SecurityEvent.get(SecurityEvent.kind == SIGNED_IN)
    assert event.user_id == terry.id and event.method_kind == ""


class TestWithoutGrace:
    @pytest.fixture
    def app_config(self):
        return {"STAFF_SETUP_GRACE_SIGNINS": 0}

    def test_never_skips(self, browser, terry):
        page = text(start_sign_in(browser))
        assert "Not now" not in page and "before set-up is required" not in page
        refused = skip(browser)
        assert refused.status_code == 409
        assert not signed_in(browser)
        assert used(terry) == 0


def test_admins_see_the_grace_left_on_the_people_page(browser, factory, terry):
    ada = factory.admin(email="ada@example.com", name="Ada Admin")
    ready = factory.staff(email="sam@example.com", name="Sam Set-Up")
    VerificationMethod.create(user=ready, kind=EMAIL, destination="sam@example.com")
    factory.family(email="pat@example.com", name="Pat Parent")
    start_sign_in(browser, "ada@example.com")
    skip(browser)  # Ada herself uses one of her two
    for htmx in (False, True):
        page = browser.get("/admin/people?tab=staff", htmx=htmx)
        assert page.status_code == 200
        rows = {
            email: row
            for row in page.get_data(as_text=True).split("<tr ")[1:]
            for email in ("terry@", "ada@", "sam@", "pat@")
            if email in row
        }
        assert "2 more sign-ins before set-up is required" in rows["terry@"]
        assert "1 more sign-in before set-up is required" in rows["ada@"]
        assert "before set-up is required" not in rows["sam@"]
        assert "pat@" not in rows
    assert used(ada) == 1
