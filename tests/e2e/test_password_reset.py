"""Forgot password, in a real browser with JavaScript on and off: the link comes by email, the
second step comes before the new password when 2-Step Verification is on, and the new
password then signs in (with a code)."""

import re

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

NEW_PASSWORD = "violet staircase lantern 42"
LINK = re.compile(r"https?://\S+/reset-password/\S+")


def test_forgot_password_asks_for_the_second_step_then_the_new_password_signs_in(
    visitor, people, live_server
):
    parent = people.family(name="Fran Forgets", two_step=True)
    secret = people.add_method(parent, "totp")
    page = visitor.goto("/login")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page.get_by_role("heading", name="Forgot password?")).to_be_visible()
    visitor.check("forgot password")

    page.get_by_label("Email", exact=True).fill(parent.email)
    with visitor.in_place():
        visitor.button("Send link").click()
        expect(page.get_by_role("status").filter(has_text=re.compile("link", re.I))).to_be_visible()
    visitor.check("forgot password: link sent")

    visitor.goto(live_server.wait_for_text(parent.email, LINK))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    authenticator = visitor.button("Authenticator App")
    code_box = page.get_by_label("Verification code")
    expect(authenticator.or_(code_box)).to_be_visible()
    if authenticator.is_visible():
        visitor.check("reset link: method picker")
        with visitor.in_place():
            authenticator.click()
            expect(code_box).to_be_visible()
    visitor.check("reset link: code box")
    with visitor.in_place():
        visitor.enter_code(live_server.totp_code(secret))
        expect(page.get_by_label("New password", exact=True)).to_be_visible()
    visitor.check("reset link: new password")

    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirm new password", exact=True).fill(NEW_PASSWORD)
    with visitor.full_page():
        visitor.button("Change password").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text(re.compile("Your password was changed"))).to_be_visible()
    visitor.check("sign-in: password changed")

    live_server.next_totp_step()
    visitor.sign_in(parent.email, password=NEW_PASSWORD)
    expect(code_box).to_be_visible()
    with visitor.full_page():
        visitor.enter_code(live_server.totp_code(secret))
    visitor.expect_home("Fran Forgets")
