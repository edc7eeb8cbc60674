"""One whole flow with the keyboard alone (JavaScript on): the sign-in form, the method picker,
the code box taking the focus, the profile menu, the method tabs with the arrow keys, and the
2-Step Verification switch."""

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from tests.e2e.live import PASSWORD  # noqa: E402

MAX_TABS = 40


def tab_to(visitor, locator, key: str = "Tab") -> None:
    """Press Tab until `locator` has the focus (as a keyboard user would), once the page's
    scripts have run (a page just loaded can show before app.js listens for keys)."""
    visitor.page.wait_for_load_state()
    for _ in range(MAX_TABS):
        visitor.page.keyboard.press(key)
        if locator.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{locator} never got the focus with {key}")


def test_a_parent_does_everything_from_the_keyboard(open_browser, people, live_server):
    visitor = open_browser(js=True)
    page = visitor.page
    keys = page.keyboard
    parent = people.family(name="Kim Keys", two_step=True)
    typed, phone = people.phone_number()
    people.add_method(parent, "totp")
    people.add_method(parent, "sms", phone)

    # Sign in: the Email field has the focus already.
    visitor.goto("/login")
    expect(page.get_by_label("Email", exact=True)).to_be_focused()
    keys.type(parent.email)
    keys.press("Tab")
    keys.type(PASSWORD)
    keys.press("Enter")

    # The picker: Tab to a choice, Enter; the code box takes the focus.
    text_message = visitor.button(f"Text Message •••-•••-{phone[-4:]}")
    expect(text_message).to_be_visible()
    tab_to(visitor, text_message)
    keys.press("Enter")
    code_box = page.get_by_label("Verification code")
    expect(code_box).to_be_focused()
    keys.type(live_server.wait_for_codes(phone, 1)[-1])
    keys.press("Enter")
    visitor.expect_home("Kim Keys")

    # Profile menu -> 2-Step Verification.
    tab_to(visitor, page.get_by_label("Profile menu for Kim Keys"))
    keys.press("Enter")
    menu = page.get_by_role("navigation", name="Main")
    tab_to(visitor, menu.get_by_role("link", name="2-Step Verification"))
    keys.press("Enter")
    expect(page.get_by_role("heading", name="2-Step Verification", level=1)).to_be_visible()

    # The tabs open on the first kind not saved yet (Email); only the selected tab is in the
    # Tab order; the arrows move, Enter opens.
    authenticator_tab = page.get_by_role("tab", name="Authenticator App")
    email_tab = page.get_by_role("tab", name="Email")
    expect(email_tab).to_have_attribute("aria-selected", "true")
    tab_to(visitor, email_tab)
    keys.press("ArrowLeft")
    expect(authenticator_tab).to_be_focused()
    keys.press("Enter")
    expect(authenticator_tab).to_have_attribute("aria-selected", "true")
    expect(authenticator_tab).to_be_focused()
    keys.press("ArrowRight")
    expect(email_tab).to_be_focused()
    keys.press("Enter")
    expect(email_tab).to_have_attribute("aria-selected", "true")
    expect(email_tab).to_be_focused()
    visitor.check("Email tab opened from the keyboard")
    email_box = page.get_by_label("Email address", exact=True)
    tab_to(visitor, email_box)
    expect(email_box).to_have_value(parent.email)
    tab_to(visitor, visitor.button("Send code"))
    keys.press("Enter")
    expect(code_box).to_be_focused()
    keys.type(live_server.wait_for_codes(parent.email, 1)[-1])
    keys.press("Enter")
    saved = page.get_by_role("region", name="Your verification methods")
    expect(saved.get_by_role("listitem").filter(has_text="Email")).to_be_visible()

    # The switch: Space turns 2SV off and the focus stays on it; Space turns it on again.
    switch = page.get_by_role("switch", name="2-Step Verification")
    tab_to(visitor, switch, key="Shift+Tab")
    keys.press("Space")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_be_focused()
    visitor.check("switched off from the keyboard")
    keys.press("Space")
    recovery_sheet = page.get_by_role("heading", name="Save your recovery codes")
    switched_on = page.get_by_role("switch", name="2-Step Verification", checked=True)
    expect(recovery_sheet.or_(switched_on)).to_be_visible()
    if recovery_sheet.is_visible():
        tab_to(visitor, visitor.button("I've saved my codes"))
        keys.press("Enter")
    expect(switched_on).to_be_visible()
    assert people.reload(parent).two_step_enabled


def test_arrows_pressed_while_a_tab_opens_keep_the_focus_where_they_put_it(open_browser, people):
    """Enter opens a tab and the Right arrow follows at once, before the swap has settled: the
    focus stays on the tab the arrow reached (it is not pulled back to the one opened), so the
    next Enter opens that one."""
    visitor = open_browser(js=True)
    page = visitor.page
    keys = page.keyboard
    parent = people.family(name="Quinn Quick")
    visitor.sign_in(parent.email)
    visitor.expect_home("Quinn Quick")
    visitor.open_two_step_window("Quinn Quick")
    authenticator_tab = page.get_by_role("tab", name="Authenticator App")
    email_tab = page.get_by_role("tab", name="Email")
    authenticator_tab.focus()
    keys.press("Enter")
    keys.press("ArrowRight")
    expect(authenticator_tab).to_have_attribute("aria-selected", "true")
    page.wait_for_timeout(300)  # well past htmx's settling (20 ms)
    expect(email_tab).to_be_focused()
    keys.press("Enter")
    expect(email_tab).to_have_attribute("aria-selected", "true")


def test_a_tab_swapped_in_answers_at_once(open_browser, people):
    """The tabs a swap brings in are live as soon as they are on the page: a tab opened the
    moment after the swap loads in place, not as a whole new page (htmx would otherwise wire
    new content up only when it settles, 20 ms later, and an Enter pressed in between followed
    the plain link and lost the keyboard's place)."""
    visitor = open_browser(js=True)
    page = visitor.page
    parent = people.family(name="Rory Rapid")
    visitor.sign_in(parent.email)
    visitor.expect_home("Rory Rapid")
    visitor.open_two_step_window("Rory Rapid")
    page.evaluate(
        """() => {
            window.sameDocument = true;
            document.addEventListener("htmx:afterSwap", () => {
                setTimeout(() => document.getElementById("tab-email").click(), 0);
            }, {once: true});
        }"""
    )
    page.get_by_role("tab", name="Authenticator App").click()
    expect(page.get_by_role("tab", name="Email")).to_have_attribute("aria-selected", "true")
    visitor.settle()
    assert page.evaluate("() => window.sameDocument === true"), "the Email tab loaded a new page"
