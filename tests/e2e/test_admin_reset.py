"""An admin resets a staff member's 2-Step Verification from the People page, in a real browser,
with JavaScript on and off: the staff member's open session ends, and their next sign-in
forces set-up again."""

import re

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402


def sign_in_with_emailed_code(visitor, user, check_as: str = "") -> None:
    """Password, then the code that was emailed on the way (one method: sent straight away)."""
    visitor.sign_in(user.email)
    expect(visitor.page.get_by_label("Verification code")).to_be_visible()
    if check_as:
        visitor.check(check_as)
    with visitor.full_page():
        visitor.enter_code(visitor.server.last_code(user.email))
    visitor.expect_home(user.name)


def test_admin_resets_a_staff_member_who_is_signed_out_and_must_set_up_again(
    open_browser, js_enabled, people, live_server
):
    admin = people.admin(name="Ada Admin", two_step=True)
    people.add_method(admin, "email", admin.email)
    staff = people.staff(name="Terry Teacher", two_step=True)
    people.add_method(staff, "email", staff.email)

    staff_window = open_browser(js=js_enabled)
    sign_in_with_emailed_code(staff_window, staff, check_as="sign-in: email code box")

    admin_window = open_browser(js=js_enabled)
    live_server.clock.advance(seconds=2)
    sign_in_with_emailed_code(admin_window, admin)
    page = admin_window.page
    page.get_by_role("link", name="People", exact=True).first.click()
    expect(page.get_by_role("heading", name="People", level=1)).to_be_visible()
    admin_window.check("People")

    row = page.get_by_role("row").filter(has_text=staff.email)
    row.get_by_role("link", name="Terry Teacher").click()
    expect(page.get_by_role("heading", name="Terry Teacher", level=1)).to_be_visible()
    admin_window.check("a staff member's page")

    two_step = page.get_by_role("region", name="2-Step Verification")
    with admin_window.in_place():
        two_step.get_by_role("button", name="Reset").click()
        expect(
            page.get_by_role("heading", name="Reset 2-Step Verification for Terry Teacher?")
        ).to_be_visible()
    admin_window.check("reset: confirmation")

    with admin_window.in_place():
        page.get_by_role("region", name="2-Step Verification").get_by_role(
            "button", name="Reset", exact=True
        ).click()
        expect(page.get_by_role("status").filter(has_text="was reset")).to_be_visible()
    expect(page.get_by_text(re.compile("No verification methods saved"))).to_be_visible()
    admin_window.check("reset: done")
    assert people.method_kinds(staff) == set()

    # The staff member's open window is signed out: the next page is the sign-in page.
    staff_window.page.reload()
    expect(staff_window.page.get_by_role("heading", name="Sign in")).to_be_visible()

    staff_window.sign_in(staff.email)
    expect(
        staff_window.page.get_by_role("heading", name="Set up 2-Step Verification to continue")
    ).to_be_visible()
