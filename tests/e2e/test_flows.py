"""Every flow of a person, in a real browser, once with JavaScript on (HTMX swaps in place) and
once with it off (plain forms, full pages). Each page and swapped-in state is checked with axe
and at 360 px and 1280 px wide (Visitor.check)."""

import re

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from services.methods import mask_email  # noqa: E402


def add_authenticator(visitor) -> str:
    """Authenticator App tab: read the key off the page, type the app's code; returns the key."""
    page = visitor.page
    expect(page.get_by_role("tab", name="Authenticator App")).to_have_attribute(
        "aria-selected", "true"
    )
    with visitor.in_place():
        visitor.button("Set up authenticator app").click()
        key = page.locator("#setup-key")
        expect(key).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code", re.I))).to_be_visible()
    visitor.check("authenticator set-up: QR code and key")
    secret = key.inner_text().replace(" ", "")
    with visitor.in_place():
        visitor.enter_code(visitor.server.totp_code(secret))
        expect(saved_methods(page).filter(has_text="Authenticator App")).to_be_visible()
    return secret


def add_by_code(visitor, tab: str, field: str, destination: str, sent_to: str) -> None:
    """Email or Text Message tab: type where the code goes, Send code, type the code back."""
    page = visitor.page
    with visitor.in_place():
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    visitor.check(f"{tab} tab")
    page.get_by_label(field, exact=True).fill(destination)
    with visitor.in_place():
        visitor.button("Send code").click()
        code_box = page.get_by_label("Verification code")
        expect(code_box).to_be_visible()
    if visitor.js:
        expect(code_box).to_be_focused()
    visitor.check(f"{tab} tab: code sent")
    with visitor.in_place():
        visitor.enter_code(visitor.server.last_code(sent_to))
        expect(saved_methods(page).filter(has_text=tab)).to_be_visible()


def saved_methods(page):
    return page.get_by_role("region", name="Your verification methods").get_by_role("listitem")


def turn_on(visitor) -> None:
    """Switch 2SV on. The first time, the recovery codes are shown once (a page of their own);
    otherwise the switch flips in place."""
    page = visitor.page
    switch = page.get_by_role("switch", name="2-Step Verification")
    expect(switch).to_have_attribute("aria-checked", "false")
    marker = visitor.mark_document() if visitor.js else ""
    switch.click()
    switched_on = page.get_by_role("switch", name="2-Step Verification", checked=True)
    visitor.through_recovery_codes(then=switched_on)
    if visitor.js and not visitor.same_document(marker):
        # Only the recovery codes page may come between; otherwise the switch flips in place.
        assert visitor.checked[-1] == "recovery codes, shown once", "The switch reloaded the page"
    visitor.check("2SV window: switched on")


# --- 1. the authenticator app ------------------------------------------------------------


def test_parent_adds_the_authenticator_app_turns_2sv_on_and_signs_in_with_a_code(
    visitor, people, live_server
):
    parent = people.family(name="Pat Parent")
    visitor.sign_in(parent.email, check=True)
    visitor.expect_home("Pat Parent")
    visitor.check("home page")

    visitor.open_two_step_window("Pat Parent")
    visitor.check("2SV window")
    secret = add_authenticator(visitor)
    visitor.check("2SV window: authenticator saved")
    turn_on(visitor)
    visitor.sign_out("Pat Parent")

    live_server.next_totp_step()  # the step used to confirm the app is never accepted again
    visitor.sign_in(parent.email)
    code_box = visitor.page.get_by_label("Verification code")
    expect(code_box).to_be_visible()
    visitor.check("sign-in: authenticator code box")
    with visitor.in_place():
        visitor.enter_code("000000")
        expect(visitor.page.get_by_role("alert").filter(has_text="isn't right")).to_be_visible()
    expect(code_box).to_have_attribute("aria-invalid", "true")
    if visitor.js:
        expect(code_box).to_be_focused()
    visitor.check("sign-in: wrong code")
    with visitor.full_page():
        visitor.enter_code(live_server.totp_code(secret))
    visitor.expect_home("Pat Parent")
    assert people.reload(parent).two_step_enabled


# --- 2. three methods and the picker ---------------------------------------------------


def test_parent_with_three_methods_picks_text_message_and_signs_in_with_the_first_code(
    visitor, people, live_server
):
    parent = people.family(name="Pat Parent")
    people.add_method(parent, "totp")
    visitor.sign_in(parent.email)
    visitor.expect_home("Pat Parent")
    visitor.open_two_step_window("Pat Parent")

    add_by_code(visitor, "Email", "Email address", parent.email, parent.email)
    visitor.check("2SV window: email saved")
    typed, phone = people.phone_number()
    add_by_code(visitor, "Text Message", "Mobile number", typed, phone)
    visitor.check("2SV window: text message saved")
    turn_on(visitor)
    visitor.sign_out("Pat Parent")

    visitor.sign_in(parent.email)
    page = visitor.page
    picker = [
        visitor.button("Authenticator App"),
        visitor.button(f"Email {mask_email(parent.email)}"),
        visitor.button(f"Text Message •••-•••-{phone[-4:]}"),
    ]
    for choice in picker:
        expect(choice).to_be_visible()
    visitor.check("sign-in: method picker")

    live_server.clock.advance(seconds=2)  # a person takes a moment (the resend cooldown is 1 s)
    with visitor.in_place():
        picker[2].click()
        expect(page.get_by_label("Verification code")).to_be_visible()
    if visitor.js:
        expect(page.get_by_label("Verification code")).to_be_focused()
    visitor.check("sign-in: text message code box")
    codes = live_server.wait_for_codes(phone, 2)  # the set-up code, the sign-in code
    first_code = codes[-1]

    live_server.clock.advance(seconds=2)  # past the (lowered) resend cooldown
    with visitor.in_place():
        visitor.button("Send new code").click()
        assert len(live_server.wait_for_codes(phone, 3)) == 3
        expect(page.get_by_role("status").filter(has_text="We sent a code")).to_be_visible()
    visitor.check("sign-in: new code sent")

    with visitor.full_page():
        visitor.enter_code(first_code)
    visitor.expect_home("Pat Parent")


# --- 3. the toggle with no method ------------------------------------------------------


def test_turning_2sv_on_with_no_method_shows_the_error_in_place(visitor, people):
    parent = people.family(name="Nia Newcomer")
    visitor.sign_in(parent.email)
    visitor.expect_home("Nia Newcomer")
    visitor.open_two_step_window("Nia Newcomer")

    switch = visitor.page.get_by_role("switch", name="2-Step Verification")
    with visitor.in_place():
        switch.click()
        alert = visitor.page.get_by_role("alert").filter(has_text="Add a verification method")
        expect(alert).to_be_visible()
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_have_accessible_description(re.compile("Add a verification method"))
    visitor.check("2SV window: toggle error")
    assert not people.reload(parent).two_step_enabled


# --- 4. a staff member's first sign-in ---------------------------------------------------


def test_staff_first_sign_in_forces_set_up_and_the_toggle_is_locked_on(
    visitor, people, live_server
):
    staff = people.staff(name="Terry Teacher")
    visitor.sign_in(staff.email)
    page = visitor.page
    heading = page.get_by_role("heading", name="Set up 2-Step Verification to continue")
    expect(heading).to_be_visible()
    visitor.check("forced set-up")

    with visitor.in_place():
        page.get_by_role("tab", name="Email").click()
        email_box = page.get_by_label("Email address", exact=True)
        expect(email_box).to_have_value(staff.email)  # the login email is filled in already
    visitor.check("forced set-up: Email tab")
    with visitor.in_place():
        visitor.button("Send code").click()
        expect(page.get_by_label("Verification code")).to_be_visible()
    visitor.check("forced set-up: code sent")
    with visitor.full_page():
        visitor.enter_code(live_server.last_code(staff.email))
    visitor.through_recovery_codes(then=visitor.home_heading("Terry Teacher"))

    visitor.open_two_step_window("Terry Teacher")
    switch = page.get_by_role("switch", name="2-Step Verification")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_be_disabled()
    expect(switch).to_have_accessible_description(re.compile("Required for staff"))
    visitor.check("staff 2SV window: locked on")


# --- 6. deleting a method -------------------------------------------------------------


def test_deleting_a_method_asks_for_confirmation_first(visitor, people):
    parent = people.family(name="Dana Delete")
    people.add_method(parent, "email", parent.email)
    people.add_method(parent, "sms", people.phone_number()[1])
    visitor.sign_in(parent.email)
    visitor.expect_home("Dana Delete")
    visitor.open_two_step_window("Dana Delete")
    page = visitor.page
    text_row = saved_methods(page).filter(has_text="Text Message")

    with visitor.in_place():
        text_row.get_by_role("button", name="Delete").click()
        question = page.get_by_text("Delete Text Message?")
        expect(question).to_be_visible()
    visitor.check("delete: confirmation")
    assert people.method_kinds(parent) == {"email", "sms"}  # asking changed nothing

    with visitor.in_place():
        page.get_by_role("button", name="Delete", exact=True).last.click()
        removed = page.get_by_role("status").filter(has_text="Text Message was removed")
        expect(removed).to_be_visible()
    expect(removed).to_have_count(1)  # said once, not again in another card
    expect(saved_methods(page).filter(has_text="Text Message")).to_have_count(0)
    expect(saved_methods(page).filter(has_text="Email")).to_be_visible()
    visitor.check("2SV window: method deleted")
    assert people.method_kinds(parent) == {"email"}
